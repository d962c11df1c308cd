"""REST for detection projects: create one, submit boxes, read them back; bad boxes are 400."""

from __future__ import annotations

import json

from labeling import services
from labeling.models import Annotation, Item, PayloadKind, Role


def test_a_labeler_submits_boxes_and_reads_them_back(api, make_user):
    manager = make_user("lead", is_staff=True)
    created = api.as_user(manager).post(
        "/api/v1/projects/",
        data={
            "name": "Iguanas",
            "task_type": "detection",
            "classes": [{"key": "iguana"}, {"key": "Tail only"}],
            "box_iou_threshold": 0.4,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["task_type"] == "detection"
    assert created.json()["box_iou_threshold"] == 0.4
    project_id = created.json()["id"]
    item = Item.objects.create(
        project_id=project_id, external_id="i1", kind=PayloadKind.IMAGE, width=200, height=100
    )
    labeler = make_user("lab")
    services.set_membership(project=item.project, user=labeler, role=Role.LABELER)
    url = f"/api/v1/items/{item.pk}/annotations/"
    boxes = [{"class": "Tail only", "x": 5, "y": 6, "w": 7, "h": 8}]
    response = api.as_user(labeler).post(url, data={"value": boxes}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["value"] == [
        {"class": "Tail only", "x": 5.0, "y": 6.0, "w": 7.0, "h": 8.0}
    ]

    bad = api.as_user(labeler).post(
        url, data={"value": [{"class": "iguana", "x": 0, "y": 0, "w": -1, "h": 2}]}, format="json"
    )
    assert bad.status_code == 400
    assert "box 1: w and h must be positive" in json.dumps(bad.json())
    assert Annotation.objects.filter(item=item, is_current=True).count() == 1

    listed = api.as_user(labeler).get(f"/api/v1/projects/{project_id}/annotations/")
    assert listed.json()["results"][0]["value"][0]["class"] == "Tail only"
