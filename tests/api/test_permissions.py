"""Role × endpoint: every endpoint of api/projects.py answered for every kind of caller.

Non-members get 404 on project-scoped URLs (a project's existence is not leaked);
members whose role may not do the operation get 403; anonymous callers get 401.
"""

from __future__ import annotations

import json

import pytest

from labeling import services
from labeling.models import Item, Role
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db

ANON, OUT, VIEW, LAB, SME, MAN, SU = (
    "anonymous",
    "non_member",
    "viewer",
    "labeler",
    "sme",
    "manager",
    "superuser",
)
ORDER = (ANON, OUT, VIEW, LAB, SME, MAN, SU)


def expect(*codes):
    return dict(zip(ORDER, codes, strict=True))


MEMBER_READ = expect(401, 404, 200, 200, 200, 200, 200)
MANAGER_WRITE = expect(401, 404, 403, 403, 403, 201, 201)
MANAGER_CHANGE = expect(401, 404, 403, 403, 403, 200, 200)

# (name, method, path template, body, content type, expected statuses)
ENDPOINTS = [
    ("projects-list", "get", "/api/v1/projects/", None, None, expect(*[401] + [200] * 6)),
    (
        "projects-create",
        "post",
        "/api/v1/projects/",
        {"name": "New", "classes": [{"key": "a"}]},
        "json",
        # Staff or superusers create projects; a project manager is not staff.
        expect(401, 403, 403, 403, 403, 403, 201),
    ),
    ("project-get", "get", "/api/v1/projects/{p}/", None, None, MEMBER_READ),
    ("project-patch", "patch", "/api/v1/projects/{p}/", {"overlap": 2}, "json", MANAGER_CHANGE),
    ("classes-list", "get", "/api/v1/projects/{p}/classes/", None, None, MEMBER_READ),
    (
        "classes-create",
        "post",
        "/api/v1/projects/{p}/classes/",
        {"key": "crack"},
        "json",
        MANAGER_WRITE,
    ),
    ("guidelines-list", "get", "/api/v1/projects/{p}/guidelines/", None, None, MEMBER_READ),
    (
        "guidelines-publish",
        "post",
        "/api/v1/projects/{p}/guidelines/",
        {"text": "v2", "example_items": ["e1"]},
        "json",
        MANAGER_WRITE,
    ),
    (
        "users-create",
        "post",
        "/api/v1/users/",
        {"username": "fresh", "email": "fresh@example.org"},
        "json",
        expect(401, 403, 403, 403, 403, 201, 201),
    ),
    (
        "user-activate",
        "patch",
        "/api/v1/users/imported/",
        {"is_active": True},
        "json",
        expect(401, 403, 403, 403, 403, 200, 200),
    ),
    (
        "members-list",
        "get",
        "/api/v1/projects/{p}/members/",
        None,
        None,
        expect(401, 404, 200, 403, 200, 200, 200),
    ),
    (
        "members-add",
        "post",
        "/api/v1/projects/{p}/members/",
        {"user": "newcomer", "role": "labeler"},
        "json",
        MANAGER_WRITE,
    ),
    (
        "member-remove",
        "delete",
        "/api/v1/projects/{p}/members/imported/",
        None,
        None,
        expect(401, 404, 403, 403, 403, 204, 204),
    ),
    ("items-list", "get", "/api/v1/projects/{p}/items/", None, None, MEMBER_READ),
    ("item-get", "get", "/api/v1/projects/{p}/items/{i}/", None, None, MEMBER_READ),
    ("item-by-id", "get", "/api/v1/items/{i}/", None, None, MEMBER_READ),
    ("annotations-list", "get", "/api/v1/projects/{p}/annotations/", None, None, MEMBER_READ),
    ("progress", "get", "/api/v1/projects/{p}/progress/", None, None, MEMBER_READ),
    (
        "items-import",
        "post",
        "/api/v1/projects/{p}/items/import/",
        [{"external_id": "n1", "text": "hello"}],
        "json",
        MANAGER_WRITE,
    ),
    (
        "items-tags",
        "post",
        "/api/v1/projects/{p}/items/tags/",
        {"items": ["e1"], "add": ["car_noise"]},
        "json",
        MANAGER_CHANGE,
    ),
    (
        "annotations-import",
        "post",
        "/api/v1/projects/{p}/annotations/import/",
        [{"item": "e1", "labeler": "hist", "value": "dent"}],
        "json",
        MANAGER_WRITE,
    ),
]


@pytest.fixture
def world(project, role_users, make_user):
    item = services.create_image_item(project=project, external_id="e1", image_bytes=png_bytes())
    services.submit_annotation(item=item, labeler=role_users[LAB], value="dent")
    make_user("newcomer")
    imported = make_user("imported", is_active=False)
    services.set_membership(project=project, user=imported, role=Role.LABELER)
    return {"project": project, "item": item, "users": role_users}


@pytest.mark.parametrize("role", ORDER)
@pytest.mark.parametrize(
    "name, method, template, body, content, expected",
    ENDPOINTS,
    ids=[e[0] for e in ENDPOINTS],
)
def test_role_endpoint_matrix(api, world, role, name, method, template, body, content, expected):
    client = api.as_user(world["users"][role])
    path = template.format(p=world["project"].pk, i=world["item"].pk)
    kwargs = {}
    if body is not None:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == expected[role], (name, role, response.content[:300])


def test_every_url_of_the_module_is_in_the_matrix():
    from api import projects

    covered = {
        "/api/v1/" + p.pattern._route
        for p in projects.urlpatterns  # noqa: SLF001 - the route string is what we compare
    }
    templates = {
        e[2]
        .replace("{p}", "<int:project_id>")
        .replace("{i}", "<int:item_id>")
        .replace("imported/", "<str:username>/")
        for e in ENDPOINTS
    }
    assert covered <= templates, covered - templates


def test_a_non_member_cannot_tell_a_project_exists(api, world):
    client = api.as_user(world["users"][OUT])
    missing = client.get("/api/v1/projects/999999/items/")
    hidden = client.get(f"/api/v1/projects/{world['project'].pk}/items/")
    assert missing.status_code == hidden.status_code == 404


def test_manager_cannot_activate_accounts_outside_their_projects(api, world, make_user):
    stranger = make_user("stranger", is_active=False)
    client = api.as_user(world["users"][MAN])
    response = client.patch(
        "/api/v1/users/stranger/", data={"is_active": True}, content_type="application/json"
    )
    assert response.status_code == 404
    stranger.refresh_from_db()
    assert not stranger.is_active


def test_manager_cannot_deactivate_a_superuser_member(api, world, project):
    services.set_membership(project=project, user=world["users"][SU], role=Role.LABELER)
    client = api.as_user(world["users"][MAN])
    response = client.patch(
        "/api/v1/users/root/", data={"is_active": False}, content_type="application/json"
    )
    assert response.status_code == 404


def test_labeler_sees_only_their_own_annotations(api, world, make_user, project):
    other = make_user("other_labeler")
    services.set_membership(project=project, user=other, role=Role.LABELER)
    services.submit_annotation(item=world["item"], labeler=other, value="scratch")
    url = f"/api/v1/projects/{project.pk}/annotations/"
    own = api.as_user(world["users"][LAB]).get(url).json()["results"]
    assert [a["labeler"] for a in own] == ["a_labeler"]
    # Asking for someone else's labels by name yields nothing, not their labels.
    asked = api.as_user(world["users"][LAB]).get(url + "?labeler=other_labeler").json()
    assert asked["results"] == []
    seen_by_sme = api.as_user(world["users"][SME]).get(url).json()["results"]
    assert sorted(a["labeler"] for a in seen_by_sme) == ["a_labeler", "other_labeler"]


def test_labeler_progress_shows_only_their_own_row(api, world, project):
    body = api.as_user(world["users"][LAB]).get(f"/api/v1/projects/{project.pk}/progress/").json()
    assert [r["labeler"] for r in body["labelers"]] == ["a_labeler"]
    assert body["labelers"][0]["n_current"] == 1
    assert body["project"]["n_items"] == Item.objects.filter(project=project).count()
    everyone = api.as_user(world["users"][MAN]).get(f"/api/v1/projects/{project.pk}/progress/")
    assert len(everyone.json()["labelers"]) >= 5


def test_manager_cannot_deactivate_a_fellow_manager(api, world, project, make_user):
    fellow = make_user("fellow")
    services.set_membership(project=project, user=fellow, role=Role.MANAGER)
    client = api.as_user(world["users"][MAN])
    response = client.patch(
        "/api/v1/users/fellow/", data={"is_active": False}, content_type="application/json"
    )
    assert response.status_code == 403
    fellow.refresh_from_db()
    assert fellow.is_active
