"""Request bodies bounded per endpoint (issue 13, finding 3): small for log-in, tokens and
one annotation, the import limit for imports, a default for the rest; 413 with JSON."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from labeling.models import Annotation, Item, PayloadKind

pytestmark = pytest.mark.django_db

KIB = 1024


def json_body(padding_bytes: int, **fields) -> bytes:
    return json.dumps({**fields, "pad": "x" * padding_bytes}).encode()


def test_an_oversized_token_request_is_a_413_with_json(api, settings):
    body = json_body(settings.CONCORD_MAX_SMALL_BODY_BYTES, username="a", password="b")
    response = api.post("/api/v1/auth/token/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "at most 65536 bytes" in response.json()["detail"]


def test_a_small_token_request_still_reaches_the_view(api):
    response = api.post(
        "/api/v1/auth/token/",
        data=json_body(1000, username="nobody", password="x"),
        content_type="application/json",
    )
    assert response.status_code == 400  # wrong credentials, not a size refusal


def test_an_oversized_annotation_is_a_413_and_nothing_is_stored(api, project, labelers):
    item = Item.objects.create(project=project, external_id="t0", kind=PayloadKind.TEXT)
    response = api.as_user(labelers[0]).post(
        f"/api/v1/items/{item.pk}/annotations/",
        data=json.dumps({"value": "dent", "comment": "c" * (100 * KIB)}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert not Annotation.objects.exists()


def test_an_oversized_login_form_is_a_413():
    client = Client()
    response = client.post("/login/", {"username": "u", "password": "p" * (80 * KIB)}, secure=True)
    assert response.status_code == 413


def test_other_endpoints_take_the_default_limit(manager_api, project, settings):
    body = json_body(settings.CONCORD_MAX_BODY_BYTES, description="d")
    response = manager_api.patch(
        f"/api/v1/projects/{project.pk}/", data=body, content_type="application/json"
    )
    assert response.status_code == 413


def test_an_import_larger_than_the_default_limit_is_accepted(manager_api, project, settings):
    rows = [{"external_id": f"e{i}", "text": "w" * 1000} for i in range(3000)]
    body = json.dumps(rows).encode()
    assert len(body) > settings.CONCORD_MAX_BODY_BYTES
    response = manager_api.post(
        f"/api/v1/projects/{project.pk}/items/import/", data=body, content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    assert Item.objects.filter(project=project).count() == 3000


def test_an_import_over_the_import_limit_is_a_413(manager_api, project, settings):
    settings.CONCORD_MAX_IMPORT_BYTES = 100 * KIB
    body = json.dumps([{"external_id": "a", "text": "w" * (200 * KIB)}]).encode()
    response = manager_api.post(
        f"/api/v1/projects/{project.pk}/items/import/", data=body, content_type="application/json"
    )
    assert response.status_code == 413
