"""Tags in bulk: ``POST /api/v1/projects/{id}/items/tags/`` by external ids or filters."""

from __future__ import annotations

import pytest

from labeling import services
from labeling.models import Item, PayloadKind, Role, Tag
from provenance.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(project):
    made = {}
    for n, factory in enumerate(["A", "A", "B", "B", "B"], start=1):
        made[f"x{n}"] = Item.objects.create(
            project=project,
            external_id=f"x{n}",
            kind=PayloadKind.TEXT,
            text="t",
            metadata={"factory": factory},
        )
    return made


def tags_of(item):
    return sorted(item.tags.values_list("name", flat=True))


def url(project):
    return f"/api/v1/projects/{project.pk}/items/tags/"


def test_add_and_remove_by_external_ids_with_counts(api, project, manager, items):
    client = api.as_user(manager)
    response = client.post(
        url(project), {"items": ["x1", "x2", "x3"], "add": ["car_noise", "night"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["n_items"] == 3
    assert body["added"] == {"car_noise": 3, "night": 3}
    assert body["tag_counts"] == {"car_noise": 3, "night": 3}
    assert tags_of(items["x1"]) == ["car_noise", "night"]

    # Adding again changes nothing; removing one tag from two items.
    again = client.post(url(project), {"items": ["x1", "x2"], "add": ["night"]}, format="json")
    assert again.json()["added"] == {"night": 0}
    removed = client.post(url(project), {"items": ["x1", "x2"], "remove": ["night"]}, format="json")
    assert removed.status_code == 200
    assert removed.json()["removed"] == {"night": 2}
    assert removed.json()["tag_counts"] == {"car_noise": 3, "night": 1}
    assert tags_of(items["x1"]) == ["car_noise"] and tags_of(items["x3"]) == ["car_noise", "night"]
    assert Event.objects.filter(verb="items.tags_changed").count() == 3


def test_by_metadata_filter(api, project, manager, items):
    response = api.as_user(manager).post(
        url(project), {"filters": {"metadata.factory": "B"}, "add": ["low_light"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["n_items"] == 3
    assert sorted(
        Item.objects.filter(tags__name="low_light").values_list("external_id", flat=True)
    ) == ["x3", "x4", "x5"]


def test_unknown_items_are_a_400_naming_them_and_nothing_is_written(api, project, manager, items):
    events_before = Event.objects.count()
    response = api.as_user(manager).post(
        url(project), {"items": ["x1", "nope", "x2", "ghost"], "add": ["car_noise"]}, format="json"
    )
    assert response.status_code == 400
    messages = response.json()["errors"]["items"]
    assert [m.split(":")[0] for m in messages] == ["items[1]", "items[3]"]
    assert "nope" in messages[0] and "ghost" in messages[1]
    assert not Tag.objects.filter(project=project).exists()
    assert Event.objects.count() == events_before


def test_an_item_of_another_project_is_unknown_here(api, project, manager, items, make_user):
    other = services.create_project(name="Other", classes=[{"key": "a"}], created_by=manager)
    Item.objects.create(project=other, external_id="elsewhere", kind=PayloadKind.TEXT, text="t")
    response = api.as_user(manager).post(
        url(project), {"items": ["elsewhere"], "add": ["car_noise"]}, format="json"
    )
    assert response.status_code == 400


def test_only_managers_change_tags(api, project, items, make_user):
    sme = make_user("sme-tags")
    services.set_membership(project=project, user=sme, role=Role.SME)
    response = api.as_user(sme).post(url(project), {"items": ["x1"], "add": ["a"]}, format="json")
    assert response.status_code == 403
    assert not Tag.objects.filter(project=project).exists()
