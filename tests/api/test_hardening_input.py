"""Nothing a user sends crashes a process (issue 13, findings 2 and 4): deep JSON, lone
surrogates, out-of-range numbers and bodies of the wrong shape are 400s naming the field."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from labeling import safe_json, services
from labeling.models import (
    MAX_ASSIGNMENT_TTL_MINUTES,
    MAX_COMMENT_CHARS,
    MAX_TIME_SPENT_MS,
    Annotation,
    Item,
    PayloadKind,
    Project,
)

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000  # json.loads raises RecursionError on this


def post_raw(client, path, text, content_type="application/json"):
    return client.post(path, data=text.encode("utf-8"), content_type=content_type)


def text_item(project, external_id="t0"):
    return Item.objects.create(
        project=project, external_id=external_id, kind=PayloadKind.TEXT, text="a text"
    )


# --- Depth and text at parse time -------------------------------------------------------
def test_nesting_depth_counts_brackets_outside_strings():
    assert safe_json.nesting_depth('[1, {"a": [2, "[[[[{{"]}]') == 3
    assert safe_json.nesting_depth('"just [ a string"') == 0
    assert safe_json.nesting_depth('{"k": "esc \\" [[["}') == 1


def test_deep_json_is_a_400_on_the_anonymous_token_endpoint(api):
    response = post_raw(api, "/api/v1/auth/token/", '{"username": ' + DEEP + "}")
    assert response.status_code == 400
    assert "nested 5001 levels deep" in response.json()["detail"]


def test_deep_json_is_a_400_on_annotation_submit(api, project, labelers):
    item = text_item(project)
    client = api.as_user(labelers[0])
    response = post_raw(client, f"/api/v1/items/{item.pk}/annotations/", '{"value": ' + DEEP + "}")
    assert response.status_code == 400 and "nested" in response.json()["detail"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_deep_json_is_a_400_on_imports(manager_api, project, content_type):
    row = {"external_id": "a", "text": "x", "metadata": {}}
    deep_row = '{"external_id": "b", "text": "x", "metadata": {"k": ' + DEEP + "}}"
    if content_type == "application/json":
        body = "[" + json.dumps(row) + ", " + deep_row + "]"
    else:
        body = json.dumps(row) + "\n" + deep_row + "\n"
    response = post_raw(
        manager_api, f"/api/v1/projects/{project.pk}/items/import/", body, content_type
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert "nested" in body["detail"] or any("nested" in e["message"] for e in body["errors"])
    if content_type == "application/x-ndjson":
        assert [e["row"] for e in body["errors"]] == [2]
    assert not Item.objects.filter(project=project).exists()


def test_lone_surrogate_is_a_400_naming_the_row_in_an_import(manager_api, project):
    body = '[{"external_id": "a", "text": "fine"}, {"external_id": "b", "text": "bad \\ud800"}]'
    response = post_raw(manager_api, f"/api/v1/projects/{project.pk}/items/import/", body)
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (2, "text")
    assert not Item.objects.filter(project=project).exists()


def test_a_valid_surrogate_pair_is_text_not_an_error():
    assert safe_json.loads('{"t": "\\ud83d\\ude00"}') == {"t": "\U0001f600"}


def test_lone_surrogate_is_a_400_naming_the_field_in_a_request(api, project, labelers):
    item = text_item(project)
    client = api.as_user(labelers[0])
    body = '{"value": "dent", "comment": "x \\udc00"}'
    response = post_raw(client, f"/api/v1/items/{item.pk}/annotations/", body)
    assert response.status_code == 400 and "comment" in response.json()["detail"]
    assert not Annotation.objects.exists()


# --- Numbers bounded and cross-checked --------------------------------------------------
def patch_project(client, project, body):
    return client.patch(
        f"/api/v1/projects/{project.pk}/", data=json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize("ttl", [0, MAX_ASSIGNMENT_TTL_MINUTES + 1, 5_000_000_000])
def test_assignment_ttl_out_of_range_is_a_400(manager_api, project, ttl):
    response = patch_project(manager_api, project, {"assignment_ttl_minutes": ttl})
    assert response.status_code == 400
    assert "assignment_ttl_minutes" in response.json()["errors"]
    project.refresh_from_db()
    assert project.assignment_ttl_minutes == 30


def test_assignment_ttl_bound_holds_in_the_service(project):
    with pytest.raises(services.ValidationError) as exc:
        services.update_project(project=project, assignment_ttl_minutes=5_000_000_000)
    assert "assignment_ttl_minutes" in exc.value.message_dict


def test_overlap_above_max_overlap_is_a_400(manager_api, project):
    response = patch_project(manager_api, project, {"overlap": 50, "max_overlap": 2})
    assert response.status_code == 400 and "overlap" in response.json()["errors"]
    project.refresh_from_db()
    assert (project.overlap, project.max_overlap) == (3, 5)
    # both raised together are fine
    assert patch_project(manager_api, project, {"overlap": 8, "max_overlap": 8}).status_code == 200


def test_dynamic_overlap_needs_min_at_most_overlap(manager_api, project):
    response = patch_project(
        manager_api, project, {"dynamic_overlap": True, "min_overlap": 4, "overlap": 3}
    )
    assert response.status_code == 400 and "overlap" in response.json()["errors"]


def test_creating_a_project_with_a_large_overlap_raises_max_overlap(manager):
    project = services.create_project(
        name="Big", classes=[{"key": "a"}], overlap=10, created_by=manager
    )
    assert (project.overlap, project.max_overlap) == (10, 10)


@pytest.mark.parametrize("body", [[1, 2], 7, "text", None])
def test_patch_project_with_a_body_that_is_not_an_object_is_a_400(manager_api, project, body):
    response = patch_project(manager_api, project, body)
    assert response.status_code == 400, response.content
    assert "JSON object" in response.json()["detail"]


@pytest.mark.parametrize("spent", [-1, MAX_TIME_SPENT_MS + 1, 9223372036854775808])
def test_time_spent_out_of_range_is_a_400(api, project, labelers, spent):
    item = text_item(project)
    client = api.as_user(labelers[0])
    response = client.post(
        f"/api/v1/items/{item.pk}/annotations/",
        {"value": "dent", "time_spent_ms": spent},
        format="json",
    )
    assert response.status_code == 400 and "time_spent_ms" in response.json()["errors"]
    assert not Annotation.objects.exists()


def test_time_spent_and_comment_bounds_hold_in_the_service(project, labelers):
    item = text_item(project)
    with pytest.raises(services.ValidationError, match="time_spent_ms"):
        services.submit_annotation(
            item=item, labeler=labelers[0], value="dent", time_spent_ms=MAX_TIME_SPENT_MS + 1
        )
    with pytest.raises(services.ValidationError, match="comment"):
        services.submit_annotation(
            item=item, labeler=labelers[0], value="dent", comment="x" * (MAX_COMMENT_CHARS + 1)
        )


def test_a_long_comment_is_a_400(api, project, labelers):
    item = text_item(project)
    response = api.as_user(labelers[0]).post(
        f"/api/v1/items/{item.pk}/annotations/",
        {"value": "dent", "comment": "x" * (MAX_COMMENT_CHARS + 1)},
        format="json",
    )
    assert response.status_code == 400 and "comment" in response.json()["errors"]


def test_relabel_with_a_labeler_listed_twice_is_a_400(manager_api, project, labelers):
    item = text_item(project)
    services.submit_annotation(item=item, labeler=labelers[0], value="dent")
    name = labelers[0].username
    response = manager_api.post(
        f"/api/v1/projects/{project.pk}/relabel/",
        {"items": ["t0"], "labelers": [name, name], "reason": "v2"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "labelers" in response.json()["errors"]


@override_settings(CONCORD_AGREEMENT_MIN_CHUNK_ITEMS=1000)
@pytest.mark.parametrize("chunk", [1, 999, True, "5000"])
def test_tiny_or_malformed_chunk_items_is_a_400(api, project, manager, chunk):
    response = api.as_user(manager).post(
        f"/api/v1/projects/{project.pk}/agreement-runs/", {"chunk_items": chunk}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "chunk_items" in response.json()["errors"]


def test_projects_table_untouched_by_refused_settings(manager_api, project):
    patch_project(manager_api, project, {"assignment_ttl_minutes": 10**12})
    assert Project.objects.get(pk=project.pk).assignment_ttl_minutes == 30


def test_nan_and_infinity_are_not_json(api, project, labelers):
    item = text_item(project)
    client = api.as_user(labelers[0])
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"value": "dent", "time_spent_ms": ' + constant + "}"
        response = post_raw(client, f"/api/v1/items/{item.pk}/annotations/", body)
        assert response.status_code == 400 and constant in response.json()["detail"]


def test_a_huge_class_rank_is_a_400(manager_api, project):
    response = manager_api.post(
        f"/api/v1/projects/{project.pk}/classes/",
        {"key": "huge", "rank": 2**63},
        format="json",
    )
    assert response.status_code == 400 and "rank" in response.json()["errors"]
