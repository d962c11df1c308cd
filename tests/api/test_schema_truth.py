"""The schema tells the truth (issue 13, finding 8): paginated lists are documented as
``{count, next, previous, results}`` and ``GET .../tokens/`` as an array, matching what
the endpoints return."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

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
