"""The tags page ``/projects/<id>/tags/``: counts for review roles, bulk add/remove for
managers by external ids or one metadata filter."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling import selectors, services
from labeling.models import Item, PayloadKind, Role, Tag

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(project):
    return [
        Item.objects.create(
            project=project,
            external_id=f"x{n}",
            kind=PayloadKind.TEXT,
            text="t",
            metadata={"factory": factory},
        )
        for n, factory in enumerate(["A", "A", "B", "B", "B"], start=1)
    ]


def url(project):
    return f"/projects/{project.pk}/tags/"


class SecureClient(Client):
    """Every request over HTTPS: the settings redirect plain HTTP."""

    def get(self, *args, **kwargs):
        return super().get(*args, secure=True, **kwargs)

    def post(self, *args, **kwargs):
        return super().post(*args, secure=True, **kwargs)


def client_for(user):
    client = SecureClient()
    client.force_login(user)
    return client


def counts(response) -> dict[str, int]:
    return {t["name"]: t["n_items"] for t in response.context["tags"]}


def test_manager_tags_three_items_by_external_id_and_sees_the_counts(project, manager, items):
    client = client_for(manager)
    assert counts(client.get(url(project))) == {}
    response = client.post(
        url(project), {"action": "add", "tag": "Night Shift", "items": "x1\nx2, x3\n\n"}
    )
    assert response.status_code == 302
    assert response["Location"] == url(project)
    page = client.get(url(project))
    assert counts(page) == {"night-shift": 3}
    assert "Tag night-shift added to 3 items (3 selected)." in page.content.decode()
    assert sorted(
        Item.objects.filter(tags__name="night-shift").values_list("external_id", flat=True)
    ) == ["x1", "x2", "x3"]

    # Adding again to x3..x5 changes only the two that lack it; removing by filter
    # factory=A takes it off x1 and x2.
    client.post(url(project), {"action": "add", "tag": "night-shift", "items": "x3,x4,x5"})
    page = client.get(url(project))
    assert counts(page) == {"night-shift": 5}
    assert "added to 2 items (3 selected)" in page.content.decode()
    client.post(url(project), {"action": "remove", "tag": "night-shift", "filter": "factory=A"})
    page = client.get(url(project))
    assert counts(page) == {"night-shift": 3}
    assert "removed from 2 items (2 selected)" in page.content.decode()


def test_unknown_external_id_is_shown_beside_the_field_and_changes_nothing(project, manager, items):
    client = client_for(manager)
    response = client.post(url(project), {"action": "add", "tag": "car", "items": "x1\nnope"})
    assert response.status_code == 400
    assert response.context["errors"] == {"items": ["items[1]: unknown item 'nope'"]}
    assert 'id="items-errors"' in response.content.decode()
    assert "nope" in response.content.decode()  # the textarea keeps what was typed
    assert not Tag.objects.filter(project=project).exists()
    assert not Item.tags.through.objects.filter(item__project=project).exists()


def test_bad_tag_name_and_bad_filter_are_errors_of_their_fields(project, manager, items):
    client = client_for(manager)
    response = client.post(url(project), {"action": "add", "tag": "!!!", "items": "x1"})
    assert response.status_code == 400
    assert list(response.context["errors"]) == ["tag"]
    response = client.post(url(project), {"action": "add", "tag": "a", "filter": "factory"})
    assert list(response.context["errors"]) == ["filter"]
    response = client.post(url(project), {"action": "add", "tag": "a", "filter": "factory=Z"})
    assert response.context["errors"] == {"filter": ["no item selected"]}
    assert not Tag.objects.filter(project=project).exists()


def test_viewer_sees_the_counts_but_may_not_post(project, manager, make_user, items):
    services.change_item_tags(project=project, external_ids=["x1", "x2"], add=["car"])
    viewer = make_user("viewer")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    client = client_for(viewer)
    page = client.get(url(project))
    assert page.status_code == 200
    assert counts(page) == {"car": 2}
    assert b"tags-form" not in page.content
    response = client.post(url(project), {"action": "add", "tag": "x", "items": "x3"})
    assert response.status_code == 403
    assert counts(client.get(url(project))) == {"car": 2}


def test_home_links_the_tags_page_for_reviewers(project, manager):
    assert url(project).encode() in client_for(manager).get("/").content


def test_tag_counts_is_one_query_and_counts_unused_tags_as_zero(
    project, items, django_assert_num_queries
):
    services.change_item_tags(project=project, external_ids=["x1", "x2", "x5"], add=["b", "a"])
    services.change_item_tags(project=project, external_ids=["x2"], remove=["a"])
    services.change_item_tags(project=project, external_ids=["x1"], remove=["b"])
    services.change_item_tags(project=project, external_ids=["x1"], add=["c"])
    services.change_item_tags(project=project, external_ids=["x1"], remove=["c"])
    with django_assert_num_queries(1):
        rows = selectors.tag_counts(project)
    assert rows == [
        {"name": "a", "n_items": 2},
        {"name": "b", "n_items": 2},
        {"name": "c", "n_items": 0},
    ]
