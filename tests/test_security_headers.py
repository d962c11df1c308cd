"""Security headers (issue 13, finding 7): a Content-Security-Policy without inline script
on every HTML page, a Referrer-Policy and a Permissions-Policy everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
HANDLER_ATTRIBUTE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.fixture
def client():
    return Client()


@pytest.mark.parametrize("path", ["/login/", "/api/v1/schema/ui/", "/api/v1/schema/redoc/"])
def test_html_pages_carry_a_policy_without_inline_script(client, manager, path):
    client.force_login(manager)
    response = client.get(path, secure=True)
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert "http" not in response["Content-Security-Policy"]  # no CDN
    assert not INLINE_SCRIPT.search(response.content.decode())


def test_the_labeling_home_page_carries_the_policy(client, manager, project):
    client.force_login(manager)
    response = client.get("/", secure=True)
    assert response.status_code == 200 and "Content-Security-Policy" in response


def test_referrer_and_permissions_policy_on_json_too(client):
    response = client.get("/api/v1/projects/", secure=True)
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "Content-Security-Policy" not in response  # JSON is not rendered as a page


def test_no_template_has_inline_script_or_event_handler_attributes():
    templates = [p for d in settings.TEMPLATES[0]["DIRS"] for p in Path(d).rglob("*.html")]
    templates += list(ROOT.glob("*/templates/**/*.html"))
    assert templates
    offenders = [
        str(p.relative_to(ROOT))
        for p in templates
        if INLINE_SCRIPT.search(p.read_text()) or HANDLER_ATTRIBUTE.search(p.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("public", [True, False])
def test_the_schema_is_served_to_anonymous_users_by_a_setting(client, settings, public):
    settings.CONCORD_SCHEMA_PUBLIC = public
    for path in ("/api/v1/schema/", "/api/v1/schema/ui/"):
        response = client.get(path, secure=True)
        assert (response.status_code == 200) is public, (path, response.status_code)
        if not public:
            assert response.status_code in (401, 403)
