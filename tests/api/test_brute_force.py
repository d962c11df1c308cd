"""Brute-force limits that hold (issue 13, finding 6): failed passwords counted per account
and per client address in the shared cache, on the log-in page and the token endpoint;
``X-Forwarded-For`` believed only from a trusted proxy."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings
from django.test import Client

from api.auth import ClientAddressThrottle
from config import ratelimit

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"  # tests.conftest.make_user
TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def own_counters(monkeypatch):
    """Counts of this test only (a Redis cache outlives the test's transaction), and a
    per-address request rate (30/minute) that does not answer before the failure counts."""
    test_id = uuid.uuid4().hex
    monkeypatch.setattr(ratelimit, "KEY_NAMESPACE", f"login-fail-{test_id}")
    monkeypatch.setattr(ClientAddressThrottle, "THROTTLE_RATES", {"auth": "10000/minute"})
    monkeypatch.setattr(
        ClientAddressThrottle, "cache_format", f"throttle-{test_id}_%(scope)s_%(ident)s"
    )


def ask_token(api, username, password, **extra):
    return api.post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


def test_the_cache_is_shared_between_processes():
    backend = django_settings.CACHES["default"]["BACKEND"]
    assert backend in {
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    }


def test_thirty_wrong_passwords_lock_the_token_endpoint_until_the_window_passes(
    api, manager, monkeypatch
):
    for _ in range(30):
        assert ask_token(api, "manager", "wrong").status_code in (400, 429)
    refused = ask_token(api, "manager", PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed log-in attempts" in refused.json()["detail"]
    later = ratelimit.time.time() + django_settings.CONCORD_LOGIN_WINDOW_SECONDS + 1
    monkeypatch.setattr(ratelimit.time, "time", lambda: later)
    assert ask_token(api, "manager", PASSWORD).status_code == 200


def test_the_account_limit_holds_across_addresses(api, manager):
    limit = django_settings.CONCORD_LOGIN_MAX_FAILURES_PER_ACCOUNT
    for i in range(limit):
        ask_token(api, "manager", "wrong", REMOTE_ADDR=f"10.0.0.{i + 1}")
    refused = ask_token(api, "manager", PASSWORD, REMOTE_ADDR="10.0.1.1")
    assert refused.status_code == 429 and "this account" in refused.json()["detail"]


def test_changing_x_forwarded_for_does_not_reset_the_address_count(api, make_user):
    make_user("victim")
    for i in range(30):
        # a different account each time, so only the address count can refuse
        ask_token(api, f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    refused = ask_token(api, "victim", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert refused.status_code == 429 and "your address" in refused.json()["detail"]


def test_x_forwarded_for_is_the_client_behind_a_trusted_proxy(api, make_user, settings):
    settings.CONCORD_TRUSTED_PROXIES = ["127.0.0.1/32"]
    make_user("victim")
    for i in range(30):
        ask_token(api, f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR="203.0.113.9")
    other_client = ask_token(api, "victim", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert other_client.status_code == 200
    same_client = ask_token(api, "victim", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert same_client.status_code == 429


def test_client_address_takes_the_rightmost_untrusted_hop(rf, settings):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9, 10.0.0.2")
    request.META["REMOTE_ADDR"] = "10.0.0.1"
    assert ratelimit.client_address(request) == "10.0.0.1"  # no trusted proxies
    settings.CONCORD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ratelimit.client_address(request) == "203.0.113.9"


def test_thirty_wrong_passwords_lock_the_web_log_in_page(manager):
    client = Client()
    for _ in range(30):
        response = client.post("/login/", {"username": "manager", "password": "wrong"}, secure=True)
        assert response.status_code in (200, 429)
    response = client.post("/login/", {"username": "manager", "password": PASSWORD}, secure=True)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed log-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_a_right_password_under_the_limit_logs_in_and_clears_the_account(manager):
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "manager", "password": "wrong"}, secure=True)
    response = client.post("/login/", {"username": "manager", "password": PASSWORD}, secure=True)
    assert response.status_code == 302
    assert ratelimit.refusal("manager", "127.0.0.1") is None
