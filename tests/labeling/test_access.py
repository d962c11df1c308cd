"""The one gate: role_in_project for users and pipeline tokens, and the scoping helpers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling import access, services
from labeling.models import Item, ProjectMembership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(make_user):
    return services.create_project(
        name="Other", classes=[{"key": "a"}], created_by=make_user("other-manager")
    )


def token(project, *scopes):
    """Stands in for a pipeline token: all the gate reads is its project and scopes."""
    return SimpleNamespace(project_id=project.pk, scopes=list(scopes))


def test_roles_of_members_superusers_and_strangers(project, manager, make_user, other):
    viewer = make_user("viewer")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    root = make_user("root", is_superuser=True)
    assert access.role_in_project(manager, project) == Role.MANAGER
    assert access.role_in_project(viewer, project.pk) == Role.VIEWER
    assert access.role_in_project(viewer, other) is None
    assert access.role_in_project(root, other) == Role.MANAGER
    assert access.role_in_project(AnonymousUser(), project) is None


def test_a_token_has_a_fixed_role_on_its_own_project_only(project, other):
    assert access.role_in_project(token(project, "read"), project) == Role.VIEWER
    assert access.role_in_project(token(project, "read", "write"), project) == Role.SME
    assert access.role_in_project(token(project, "read", "write"), other) is None
    assert list(access.visible_projects(token(project, "read"))) == [project]
    assert not access.visible_projects(token(project, "read"), roles=access.SME_ROLES).exists()
    with pytest.raises(Http404):
        access.project_for(token(project, "read"), other.pk, access.READ_ROLES)


def test_project_for_hides_from_strangers_and_names_the_roles_to_members(
    project, labelers, make_user
):
    with pytest.raises(Http404):
        access.project_for(make_user("stranger"), project.pk, access.READ_ROLES)
    with pytest.raises(Http404):
        access.project_for(labelers[0], 999_999, access.READ_ROLES)
    with pytest.raises(PermissionDenied, match="allowed: manager, sme"):
        access.project_for(labelers[0], project.pk, access.SME_ROLES)
    found, role = access.project_for(labelers[0], project.pk, access.LABEL_ROLES)
    assert (found, role) == (project, Role.LABELER)


def test_object_for_checks_through_the_objects_project(project, labelers, other, make_user):
    item = Item.objects.create(project=project, external_id="a", kind="image")
    elsewhere = Item.objects.create(project=other, external_id="b", kind="image")
    obj, owner, role = access.object_for(labelers[0], Item, item.pk, access.READ_ROLES)
    assert (obj, owner, role) == (item, project, Role.LABELER)
    with pytest.raises(Http404):
        access.object_for(labelers[0], Item.objects.all(), elsewhere.pk, access.READ_ROLES)
    with pytest.raises(PermissionDenied):
        access.object_for(labelers[0], Item, item.pk, access.REVIEW_ROLES)


def test_scope_queryset_keeps_the_rows_of_visible_projects(project, labelers, other, manager):
    rows = ProjectMembership.objects.all()
    assert set(access.scope_queryset(labelers[0], rows).values_list("project_id", flat=True)) == {
        project.pk
    }
    managed = access.scope_queryset(labelers[0], rows, roles=access.MANAGER_ROLES)
    assert not managed.exists()
    assert access.roles_in_projects(manager, [project, other]) == {project.pk: Role.MANAGER}


def test_the_viewer_is_a_review_role_everywhere():
    # One definition: the review pages, the API and the home page agree on it.
    assert Role.VIEWER in access.REVIEW_ROLES
    assert Role.LABELER not in access.REVIEW_ROLES
