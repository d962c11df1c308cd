"""The schema tells the truth (issue 13, finding 8): paginated lists are documented as
``{count, next, previous, results}`` and ``GET .../tokens/`` as an array, matching what
the endpoints return."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from labeling import services

pytestmark = pytest.mark.django_db

PAGINATED = [
    "/api/v1/projects/",
    "/api/v1/projects/{project_id}/items/",
    "/api/v1/projects/{project_id}/annotations/",
    "/api/v1/projects/{project_id}/agreement-runs/",
    "/api/v1/agreement-runs/{run_id}/consensus/",
    "/api/v1/projects/{project_id}/flags/",
    "/api/v1/projects/{project_id}/datasets/",
    "/api/v1/projects/{project_id}/model-runs/",
]
ARRAYS = ["/api/v1/projects/{project_id}/tokens/"]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def get_200(schema, path):
    content = schema["paths"][path]["get"]["responses"]["200"]["content"]
    return resolve(schema, content["application/json"]["schema"])


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_lists_are_documented_as_pages(schema, path):
    body = get_200(schema, path)
    assert body["type"] == "object"
    assert {"count", "next", "previous", "results"} <= set(body["properties"])
    assert body["properties"]["results"]["type"] == "array"
    assert body["properties"]["next"].get("nullable") is True


@pytest.mark.parametrize("path", ARRAYS)
def test_plain_lists_are_documented_as_arrays(schema, path):
    assert get_200(schema, path)["type"] == "array"


def test_the_responses_have_the_documented_shape(api, project, manager):
    client = api.as_user(manager)
    for template in PAGINATED:
        if "{run_id}" in template:
            continue  # needs a finished run; its shape is the same paginator's
        body = client.get(template.format(project_id=project.pk)).json()
        assert set(body) == {"count", "next", "previous", "results"}, template
    tokens = client.get(ARRAYS[0].format(project_id=project.pk))
    assert tokens.status_code == 200 and isinstance(tokens.json(), list)


# --- Every documented response, checked against the schema ---------------------------
# The same validation schemathesis applies on a live server (tests/api/test_schemathesis.py),
# here in-process on fixed requests: each response found wrong once stays checked.
def conforms(openapi, method: str, template: str, response) -> None:
    """Fail when ``response`` (a Django test response to ``method template``) has a
    status, content type or body the schema does not document (the status and content
    type checked here, the body by schemathesis)."""
    import requests
    from schemathesis.core.transport import Response

    url = "http://testserver" + template
    sent = requests.Request(method, url).prepare()
    answer = Response(
        status_code=response.status_code,
        headers={k: [v] for k, v in response.headers.items()},
        content=response.content if not response.streaming else b"".join(response),
        request=sent,
        elapsed=0.0,
        verify=True,
    )
    operation = openapi[template][method]
    documented = operation.definition.raw["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method} {template}: {status} not in {sorted(documented)}"
    media_types = set(documented[status].get("content", {}))
    if media_types:
        sent_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        assert sent_type in media_types, f"{method} {template}: {sent_type} not in {media_types}"
    operation.validate_response(answer)


@pytest.fixture
def openapi(api, manager):
    import schemathesis

    body = api.as_user(manager).get("/api/v1/schema/?format=json").json()
    api.as_user(None)  # the tests below authenticate with each role's header
    return schemathesis.openapi.from_dict(body)


@pytest.fixture
def rich(project, manager, labelers, make_user):
    from tests.api.test_schemathesis import build_world

    return build_world(project, manager, labelers, make_user)


def test_every_get_of_a_rich_project_matches_the_schema(api, openapi, rich):
    """A manager's GET of every documented read, with real objects behind every path
    parameter (a run with results and flags, dataset versions, model runs)."""
    checked = []
    for result in openapi.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET":
            continue
        path = operation.path.format(**rich["path_parameters"])
        response = api.generic("GET", path, HTTP_AUTHORIZATION=rich["credentials"]["manager"])
        assert response.status_code < 500, (path, response.status_code)
        conforms(openapi, "GET", operation.path, response)
        checked.append((operation.path, response.status_code))
    ok = [p for p, code in checked if code == 200]
    assert len(ok) >= 25, checked


def test_dataset_version_class_counts_are_documented_per_split(api, openapi, rich):
    """Regression (found by schemathesis): ``class_counts`` is ``{all, by_split}``, was
    documented as a flat ``{label: count}``."""
    dataset = rich["path_parameters"]["dataset_id"]
    response = api.generic(
        "GET", f"/api/v1/datasets/{dataset}/", HTTP_AUTHORIZATION=rich["credentials"]["pipeline"]
    )
    assert set(response.json()["class_counts"]) == {"all", "by_split"}
    conforms(openapi, "GET", "/api/v1/datasets/{dataset_id}/", response)


def test_boxes_of_a_detection_label_are_documented(api, openapi, make_user, manager):
    """A detection label's value is a list of boxes: the annotation list, the labeler's
    own answer and the item history document it (they said class key, number or text)."""
    from labeling import assignment
    from labeling.models import Item, PayloadKind, Role

    project = services.create_project(
        name="Iguanas", task_type="detection", classes=[{"key": "iguana"}], created_by=manager
    )
    item = Item.objects.create(
        project=project, external_id="i1", kind=PayloadKind.IMAGE, width=200, height=100
    )
    labeler = make_user("boxer")
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    boxes = [{"class": "iguana", "x": 5, "y": 6, "w": 7, "h": 8}]
    handed = assignment.next_item_for(project, labeler)
    submitted = api.as_user(labeler).post(
        f"/api/v1/items/{item.pk}/annotations/",
        data={"value": boxes, "assignment": handed.pk},
        format="json",
    )
    assert submitted.status_code == 201, submitted.content
    conforms(openapi, "POST", "/api/v1/items/{item_id}/annotations/", submitted)
    listed = api.as_user(manager).get(f"/api/v1/projects/{project.pk}/annotations/")
    assert listed.json()["results"][0]["value"][0]["w"] == 7
    conforms(openapi, "GET", "/api/v1/projects/{project_id}/annotations/", listed)
    history = api.as_user(manager).get(f"/api/v1/items/{item.pk}/history/")
    assert history.status_code == 200
    conforms(openapi, "GET", "/api/v1/items/{item_id}/history/", history)


def test_every_kind_of_write_answers_as_documented(api, openapi, rich, manager):
    """The success answers of the writes, which generated input rarely reaches: each
    request below is valid, and its 2xx body must match the schema."""
    manager.is_staff = True  # may create projects
    manager.save(update_fields=["is_staff"])
    p = rich["path_parameters"]
    jsonl = b'{"external_id": "new-1", "text": "hello", "metadata": {"factory": "A"}}\n'
    labels = b'{"item": "item-001", "labeler": "labeler9", "value": "dent"}\n'
    predictions = {"name": "m3", "predictions": [{"item": "item-002", "value": "scratch"}]}
    writes = [
        # (role, method, template, body, content type, status)
        (
            "labeler",
            "POST",
            "/api/v1/items/{item_id}/annotations/",
            {"value": "scratch", "time_spent_ms": 1200, "assignment": p["assignment_id"]},
            None,
            201,
        ),
        (
            "manager",
            "POST",
            "/api/v1/projects/",
            {"name": "Another", "classes": [{"key": "a"}]},
            None,
            201,
        ),
        ("manager", "PATCH", "/api/v1/projects/{project_id}/", {"overlap": 2}, None, 200),
        ("manager", "POST", "/api/v1/projects/{project_id}/classes/", {"key": "crack"}, None, 201),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/guidelines/",
            {"text": "v2", "example_items": ["item-003"]},
            None,
            201,
        ),
        (
            "manager",
            "POST",
            "/api/v1/users/",
            {"username": "newbie", "password": "pw-9x!long"},
            None,
            201,
        ),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/members/",
            {"user": "newbie", "role": "labeler"},
            None,
            201,
        ),
        ("manager", "PATCH", "/api/v1/users/{username}/", {"is_active": False}, None, 200),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/items/tags/",
            {"items": ["item-004"], "add": ["blurry"]},
            None,
            200,
        ),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/items/import/",
            jsonl,
            "application/x-ndjson",
            201,
        ),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/annotations/import/",
            labels,
            "application/x-ndjson",
            201,
        ),
        (
            "manager",
            "POST",
            "/api/v1/projects/{project_id}/relabel/",
            {"items": ["item-005"], "reason": "unclear"},
            None,
            201,
        ),
        ("sme", "POST", "/api/v1/projects/{project_id}/agreement-runs/", {}, None, 202),
        ("sme", "POST", "/api/v1/projects/{project_id}/datasets/", {}, None, 202),
        ("sme", "POST", "/api/v1/projects/{project_id}/model-runs/", predictions, None, 201),
        (
            "sme",
            "POST",
            "/api/v1/flags/{flag_id}/resolve/",
            {"action": "set_label", "label": "scratch", "rationale": "clear scratch"},
            None,
            200,
        ),
        ("manager", "POST", "/api/v1/projects/{project_id}/tokens/", {"name": "ci"}, None, 201),
        ("manager", "DELETE", "/api/v1/tokens/{token_id}/", None, None, 204),
        ("manager", "DELETE", "/api/v1/projects/{project_id}/members/{username}/", None, None, 204),
    ]
    for role, method, template, body, raw_type, expected in writes:
        path = template.format(**p)
        if raw_type is None:
            data = json.dumps(body).encode() if body is not None else b""
        else:
            data = body
        response = api.generic(
            method,
            path,
            data,
            content_type=raw_type or "application/json",
            HTTP_AUTHORIZATION=rich["credentials"][role],
        )
        assert response.status_code == expected, (template, response.content[:500])
        conforms(openapi, method, template, response)


def test_changing_a_members_role_is_a_documented_200(api, openapi, rich):
    """Regression: adding a member is 201, changing the role of one is 200; only 201 was
    documented."""
    template = "/api/v1/projects/{project_id}/members/"
    path = template.format(**rich["path_parameters"])
    response = api.generic(
        "POST",
        path,
        json.dumps({"user": "spare", "role": "sme"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=rich["credentials"]["manager"],
    )
    assert response.status_code == 200, response.content
    conforms(openapi, "POST", template, response)


def test_an_unchanged_export_is_a_documented_304(api, openapi, rich):
    template = "/api/v1/datasets/{dataset_id}/export/"
    path = template.format(**rich["path_parameters"])
    auth = rich["credentials"]["pipeline"]
    first = api.generic("GET", path, HTTP_AUTHORIZATION=auth)
    again = api.generic("GET", path, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    conforms(openapi, "GET", template, again)
