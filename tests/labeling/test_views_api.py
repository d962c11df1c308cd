"""REST labeling loop: next-item, submit (revision on the second POST), skip, relabel,
roles, and blindness to other labelers' labels."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from labeling import services
from labeling.models import Annotation, Assignment, AssignmentStatus, Item, PayloadKind, Role
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db


class HttpsApiClient(APIClient):
    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


def api(user=None):
    client = HttpsApiClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def text_items(project, n):
    return [
        Item.objects.create(
            project=project, external_id=f"t{i}", kind=PayloadKind.TEXT, text=f"text {i}"
        )
        for i in range(n)
    ]


def next_url(project):
    return f"/api/v1/projects/{project.pk}/next-item/"


def test_next_item_shape(project, labelers):
    item = services.create_image_item(
        project=project, external_id="img-1", image_bytes=png_bytes(), metadata={"line": "A1"}
    )
    response = api(labelers[0]).get(next_url(project))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"assignment", "item", "guideline", "classes", "progress"}
    assert body["item"]["id"] == item.pk and body["item"]["external_id"] == "img-1"
    assert body["item"]["image"].endswith(f"/items/{item.pk}/image/")
    assert body["item"]["metadata"] == {"line": "A1"}
    assert body["guideline"] == {"version": 1, "text": "Label the most severe visible defect."}
    assert [c["key"] for c in body["classes"]] == ["no_defect", "scratch", "dent", "borderline"]
    assert body["progress"] == {"done": 0, "total": 1, "total_is_lower_bound": False}
    assert body["assignment"]["id"] and body["assignment"]["expires_at"]


def test_next_item_204_when_nothing_left(project, labelers):
    assert api(labelers[0]).get(next_url(project)).status_code == 204


def test_viewer_gets_403_and_non_member_404(project, make_user):
    text_items(project, 1)
    viewer, stranger = make_user("vic"), make_user("stranger")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    assert api(viewer).get(next_url(project)).status_code == 403
    assert api(stranger).get(next_url(project)).status_code == 404
    assert api().get(next_url(project)).status_code in (401, 403)


def test_submit_then_revise(project, labelers):
    text_items(project, 1)
    client = api(labelers[0])
    handed = client.get(next_url(project)).json()
    url = f"/api/v1/items/{handed['item']['id']}/annotations/"
    first = client.post(
        url,
        {"value": "dent", "time_spent_ms": 1200, "assignment": handed["assignment"]["id"]},
        format="json",
    )
    assert first.status_code == 201, first.content
    assert first.json()["value"] == "dent" and first.json()["time_spent_ms"] == 1200
    assert Assignment.objects.get(pk=handed["assignment"]["id"]).status == "submitted"
    second = client.post(url, {"value": "scratch", "comment": "looked again"}, format="json")
    assert second.status_code == 201
    assert second.json()["supersedes"] == first.json()["id"]
    rows = Annotation.objects.filter(labeler=labelers[0]).order_by("id")
    assert [r.is_current for r in rows] == [False, True]


def test_submit_unknown_class_is_400_naming_the_classes(project, labelers):
    (item,) = text_items(project, 1)
    response = api(labelers[0]).post(
        f"/api/v1/items/{item.pk}/annotations/", {"value": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert "unknown class" in response.json()["detail"]


def test_submit_roles(project, make_user):
    (item,) = text_items(project, 1)
    viewer, stranger = make_user("vic"), make_user("stranger")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    url = f"/api/v1/items/{item.pk}/annotations/"
    assert api(viewer).post(url, {"value": "dent"}, format="json").status_code == 403
    assert api(stranger).post(url, {"value": "dent"}, format="json").status_code == 404
    assert not Annotation.objects.exists()


def test_responses_never_include_other_labelers_labels(project, labelers):
    (item,) = text_items(project, 1)
    services.submit_annotation(
        item=item, labeler=labelers[1], value="scratch", comment="BEN-SECRET"
    )
    client = api(labelers[0])
    nxt = client.get(next_url(project))
    posted = client.post(f"/api/v1/items/{item.pk}/annotations/", {"value": "dent"}, format="json")
    for response in (nxt, posted):
        text = json.dumps(response.json())
        assert "BEN-SECRET" not in text
        assert labelers[1].username not in text
    assert "scratch" not in json.dumps(nxt.json()["item"])
    assert posted.json()["labeler"] == labelers[0].username


def test_skip_own_assignment_only(project, labelers):
    text_items(project, 1)
    handed = api(labelers[0]).get(next_url(project)).json()
    url = f"/api/v1/assignments/{handed['assignment']['id']}/skip/"
    assert api(labelers[1]).post(url, {}, format="json").status_code == 404
    assert api(labelers[0]).post(url, {"reason": "blurry"}, format="json").status_code == 204
    assert Assignment.objects.get(pk=handed["assignment"]["id"]).status == AssignmentStatus.SKIPPED
    assert api(labelers[0]).get(next_url(project)).status_code == 204
    assert api(labelers[1]).get(next_url(project)).status_code == 200


def test_relabel_is_for_managers(project, labelers, manager):
    (item,) = text_items(project, 1)
    services.submit_annotation(item=item, labeler=labelers[0], value="dent")
    url = f"/api/v1/projects/{project.pk}/relabel/"
    payload = {"items": ["t0"], "labelers": [labelers[0].username], "reason": "v2 guideline"}
    assert api(labelers[0]).post(url, payload, format="json").status_code == 403
    response = api(manager).post(url, payload, format="json")
    assert response.status_code == 201 and response.json()["n_assignments"] == 1
    nxt = api(labelers[0]).get(next_url(project)).json()
    assert nxt["item"]["external_id"] == "t0" and nxt["assignment"]["reason"] == "relabel"
    bad = api(manager).post(url, {"items": ["nope"], "reason": "x"}, format="json")
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]


def test_query_counts_of_the_loop_do_not_grow_with_the_project(project, labelers):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cycle_queries(labeler):
        client = api(labeler)
        with CaptureQueriesContext(connection) as nxt:
            body = client.get(next_url(project)).json()
        with CaptureQueriesContext(connection) as sub:
            response = client.post(
                f"/api/v1/items/{body['item']['id']}/annotations/",
                {"value": "dent", "assignment": body["assignment"]["id"]},
                format="json",
            )
        assert response.status_code == 201
        return len(nxt), len(sub)

    text_items(project, 3)
    small = cycle_queries(labelers[0])
    Item.objects.bulk_create(
        Item(project=project, external_id=f"more{i}", kind=PayloadKind.TEXT, text="x")
        for i in range(60)
    )
    large = cycle_queries(labelers[1])
    assert small == large
    # A labeler's first hand-out creates their counters (LabelerState); a submit recounts
    # the item's own rows (three reads, one update). Neither grows with the project.
    assert large[0] <= 28 and large[1] <= 21, large
