"""The Django admin writes domain state through the services, so it writes their events."""

from __future__ import annotations

import pytest
from django.forms import MultiWidget
from django.test import Client
from django.urls import reverse

from labeling.models import LabelClass, ProjectMembership, Role
from provenance.models import Event, Verb


@pytest.fixture
def admin_client_(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123")
    client = Client()
    client.force_login(root)
    client.root = root
    return client


def _form_data(form) -> dict:
    """What a browser posts for ``form`` unchanged (checkboxes: present when checked)."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None or value is False:
            continue
        if isinstance(field.widget, MultiWidget):  # e.g. a split date and time
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{form.add_prefix(name)}_{i}"] = part
            continue
        data[form.add_prefix(name)] = "on" if value is True else value
    return data


def _change_page_data(response) -> dict:
    """The POST data of an admin change page as rendered: the form and every inline."""
    data = _form_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    return data


def _events(verb: Verb, **filters):
    return Event.objects.filter(verb=verb, **filters)


@pytest.mark.django_db
def test_adding_a_membership_in_the_admin_writes_member_added(admin_client_, project, make_user):
    newcomer = make_user("newcomer")
    response = admin_client_.post(
        reverse("admin:labeling_projectmembership_add"),
        {"project": project.pk, "user": newcomer.pk, "role": Role.LABELER},
        secure=True,
    )
    assert response.status_code == 302, response.content
    assert ProjectMembership.objects.get(project=project, user=newcomer).role == Role.LABELER
    event = _events(Verb.MEMBER_ADDED, project=project, subject_id=str(newcomer.pk)).get()
    assert event.actor_id == admin_client_.root.pk
    assert event.after == {"role": Role.LABELER, "username": "newcomer"}


@pytest.mark.django_db
def test_changing_a_role_in_the_admin_writes_member_changed(admin_client_, project, labelers):
    membership = ProjectMembership.objects.get(project=project, user=labelers[0])
    response = admin_client_.post(
        reverse("admin:labeling_projectmembership_change", args=[membership.pk]),
        {"role": Role.SME},
        secure=True,
    )
    assert response.status_code == 302, response.content
    event = _events(Verb.MEMBER_CHANGED, subject_id=str(labelers[0].pk)).get()
    assert (event.before, event.after["role"]) == ({"role": Role.LABELER}, Role.SME)


@pytest.mark.django_db
def test_deleting_a_membership_in_the_admin_writes_member_removed(admin_client_, project, labelers):
    membership = ProjectMembership.objects.get(project=project, user=labelers[0])
    response = admin_client_.post(
        reverse("admin:labeling_projectmembership_delete", args=[membership.pk]),
        {"post": "yes"},
        secure=True,
    )
    assert response.status_code == 302
    assert not ProjectMembership.objects.filter(pk=membership.pk).exists()
    event = _events(Verb.MEMBER_REMOVED, subject_id=str(labelers[0].pk)).get()
    assert event.before == {"role": Role.LABELER, "username": labelers[0].username}
    assert event.actor_id == admin_client_.root.pk


@pytest.mark.django_db
def test_the_delete_action_removes_memberships_through_the_service(
    admin_client_, project, labelers
):
    chosen = ProjectMembership.objects.filter(project=project, user__in=labelers[:2])
    response = admin_client_.post(
        reverse("admin:labeling_projectmembership_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [m.pk for m in chosen],
            "post": "yes",
        },
        secure=True,
    )
    assert response.status_code == 302
    removed = set(_events(Verb.MEMBER_REMOVED).values_list("subject_id", flat=True))
    assert removed == {str(u.pk) for u in labelers[:2]}
    assert ProjectMembership.objects.filter(project=project).count() == 2  # manager, labeler3


@pytest.mark.django_db
def test_the_last_manager_cannot_be_deleted_in_the_admin(admin_client_, project, manager):
    membership = ProjectMembership.objects.get(project=project, user=manager)
    admin_client_.post(
        reverse("admin:labeling_projectmembership_delete", args=[membership.pk]),
        {"post": "yes"},
        secure=True,
    )
    assert ProjectMembership.objects.filter(pk=membership.pk).exists()
    assert not _events(Verb.MEMBER_REMOVED).exists()


@pytest.mark.django_db
def test_project_page_inlines_write_membership_and_class_events(
    admin_client_, project, labelers, make_user
):
    url = reverse("admin:labeling_project_change", args=[project.pk])
    data = _change_page_data(admin_client_.get(url, secure=True))
    # A new member on the membership inline, one deleted, one role changed.
    newcomer = make_user("newcomer")
    members = {m.user_id: i for i, m in enumerate(project.memberships.order_by("pk"))}
    total = int(data["memberships-TOTAL_FORMS"])
    data["memberships-TOTAL_FORMS"] = str(total + 1)
    data[f"memberships-{total}-user"] = newcomer.pk
    data[f"memberships-{total}-role"] = Role.LABELER
    data[f"memberships-{members[labelers[0].pk]}-DELETE"] = "on"
    data[f"memberships-{members[labelers[1].pk]}-role"] = Role.SME
    # A new class on the class inline.
    n_classes = int(data["classes-TOTAL_FORMS"])
    data["classes-TOTAL_FORMS"] = str(n_classes + 1)
    data[f"classes-{n_classes}-key"] = "crack"
    data[f"classes-{n_classes}-name"] = "Crack"
    data[f"classes-{n_classes}-order"] = "4"
    # And a setting.
    data["overlap"] = "4"
    response = admin_client_.post(url, data, secure=True)
    assert response.status_code == 302, response.context["errors"]

    def subjects(verb):
        return set(_events(verb, project=project).values_list("subject_id", flat=True))

    assert str(newcomer.pk) in subjects(Verb.MEMBER_ADDED)
    assert subjects(Verb.MEMBER_REMOVED) == {str(labelers[0].pk)}
    assert subjects(Verb.MEMBER_CHANGED) == {str(labelers[1].pk)}
    crack = LabelClass.objects.get(project=project, key="crack")
    assert subjects(Verb.CLASS_CREATED) == {str(crack.pk)}
    updated = _events(Verb.PROJECT_UPDATED, project=project).get()
    assert (updated.before, updated.after) == ({"overlap": 3}, {"overlap": 4})
    assert updated.actor_id == admin_client_.root.pk


@pytest.mark.django_db
def test_merged_into_is_not_editable_in_the_admin(admin_client_, project):
    scratch = LabelClass.objects.get(project=project, key="scratch")
    dent = LabelClass.objects.get(project=project, key="dent")
    url = reverse("admin:labeling_labelclass_change", args=[scratch.pk])
    page = admin_client_.get(url, secure=True)
    assert "merged_into" not in page.context["adminform"].form.fields
    data = _form_data(page.context["adminform"].form)
    response = admin_client_.post(url, {**data, "merged_into": dent.pk}, secure=True)
    assert response.status_code == 302
    scratch.refresh_from_db()
    assert scratch.merged_into_id is None

    project_page = admin_client_.get(
        reverse("admin:labeling_project_change", args=[project.pk]), secure=True
    )
    class_inline = next(
        i for i in project_page.context["inline_admin_formsets"] if i.formset.model is LabelClass
    )
    assert all("merged_into" not in form.fields for form in class_inline.formset.forms)
    assert not class_inline.formset.can_delete


@pytest.mark.django_db
def test_deactivating_an_account_in_the_admin_writes_user_deactivated(admin_client_, labelers):
    user = labelers[0]
    url = reverse("admin:auth_user_change", args=[user.pk])
    data = _form_data(admin_client_.get(url, secure=True).context["adminform"].form)
    data.pop("is_active")
    response = admin_client_.post(url, data, secure=True)
    assert response.status_code == 302, response.context["errors"]
    user.refresh_from_db()
    assert not user.is_active
    event = _events(Verb.USER_DEACTIVATED, subject_id=str(user.pk)).get()
    assert (event.before, event.after) == ({"is_active": True}, {"is_active": False})


@pytest.mark.django_db
def test_creating_an_account_in_the_admin_writes_user_created(admin_client_):
    response = admin_client_.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newlabeler",
            "usable_password": "true",
            "password1": "a-long-Passphrase-93",
            "password2": "a-long-Passphrase-93",
        },
        secure=True,
    )
    assert response.status_code == 302, response.context["errors"]
    event = _events(Verb.USER_CREATED).get()
    assert event.after["username"] == "newlabeler" and event.after["has_password"]
    assert event.actor_id == admin_client_.root.pk
