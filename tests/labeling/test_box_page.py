"""The labeling page of a detection project, without a browser: what it renders (blind,
the example boxes) and what a posted form stores."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from labeling import assignment as A
from labeling import services
from labeling.models import Annotation, GoldSource, Role, TaskType
from tests.conftest import png_bytes
from tests.labeling.test_views import HttpsClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(manager, make_user):
    project = services.create_project(
        name="Boxes",
        task_type=TaskType.DETECTION,
        classes=[{"key": "scratch", "name": "Scratch"}, {"key": "dent", "name": "Dent"}],
        overlap=3,
        created_by=manager,
    )
    items = []
    for n in range(3):
        item = services.create_image_item(
            project=project, external_id=f"i{n}", image_bytes=png_bytes(200, 100)
        )
        item.width, item.height = 200, 100
        item.save(update_fields=["width", "height"])
        items.append(item)
    services.set_gold_label(
        item=items[2],
        value=[{"class": "dent", "x": 50, "y": 25, "w": 100, "h": 50}],
        source=GoldSource.IMPORT,
        actor=manager,
    )
    services.publish_guideline(
        project=project, text="Box defects.", published_by=manager, example_item_ids=[items[2].pk]
    )
    other, ana = make_user("otto"), make_user("ana")
    for user in (other, ana):
        services.set_membership(project=project, user=user, role=Role.LABELER)
    for item in items:
        services.submit_annotation(
            item=item,
            labeler=other,
            value=[{"class": "scratch", "x": 12.34, "y": 5, "w": 6, "h": 7}],
        )
    client = HttpsClient()
    client.force_login(ana)
    return project, items, ana, client


def state(html: str) -> dict:
    start = html.index('<script id="box-state" type="application/json">') + len(
        '<script id="box-state" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_page_is_blind_and_shows_the_examples_reference_boxes(setup):
    project, _, _, client = setup
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert state(html)["boxes"] == []
    assert [c["key"] for c in state(html)["classes"]] == ["scratch", "dent"]
    assert "12.34" not in html  # otto's box
    # The example's dent (x 50 of 200, y 25 of 100, 100 x 50) as percent of the image.
    assert 'style="left: 25.0%; top: 25.0%; width: 50.0%; height: 50.0%"' in html
    assert "1 box" in html
    assert "concord/boxes.js" in html and "concord/label.js" in html


def test_posted_boxes_are_stored_and_nothing_there_is_an_empty_list(setup):
    project, items, ana, client = setup
    handed = A.next_item_for(project, ana)
    boxes = [{"class": "dent", "x": 1.5, "y": 2, "w": 30, "h": 40}]
    response = client.post(
        reverse("label", args=[project.pk]),
        {"item": handed.item.pk, "assignment": handed.pk, "value": json.dumps(boxes)},
    )
    assert response.status_code == 302
    stored = Annotation.objects.get(item=handed.item, labeler=ana)
    assert stored.value_boxes == [{"class": "dent", "x": 1.5, "y": 2.0, "w": 30.0, "h": 40.0}]

    handed = A.next_item_for(project, ana)
    client.post(
        reverse("label", args=[project.pk]),
        {"item": handed.item.pk, "assignment": handed.pk, "value": "", "nothing": "1"},
    )
    assert Annotation.objects.get(item=handed.item, labeler=ana).value_boxes == []

    # Revising shows the labeler's own boxes, and only those.
    html = client.get(
        reverse("label", args=[project.pk]) + f"?revise={stored.item_id}"
    ).content.decode()
    assert state(html)["boxes"] == stored.value_boxes
    assert state(html)["revising"] is True


def test_a_box_outside_the_image_or_bad_json_is_refused_with_a_message(setup):
    project, _, ana, client = setup
    handed = A.next_item_for(project, ana)
    url = reverse("label", args=[project.pk])
    for value in ("[{", json.dumps([{"class": "dent", "x": 190, "y": 0, "w": 30, "h": 10}])):
        response = client.post(
            url, {"item": handed.item.pk, "assignment": handed.pk, "value": value}, follow=True
        )
        messages = [str(m) for m in response.context["messages"]]
        assert messages and ("list of boxes" in messages[0] or "outside" in messages[0])
    assert not Annotation.objects.filter(labeler=ana).exists()


def test_class_pages_do_not_load_the_box_script(client, labelers, project):
    client = HttpsClient()
    client.force_login(labelers[0])
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "boxes.js" not in html and 'id="box-state"' not in html
