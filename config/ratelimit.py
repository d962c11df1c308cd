"""Brute-force limits on passwords: per account and per client address, in the shared cache.

Every failed password (web log-in page or ``POST /api/v1/auth/token/``) counts against
the account named and against the client's address, in Django's cache — the database
table or Redis (``settings.CACHES``), shared by every web process. Once an account has
``CONCORD_LOGIN_MAX_FAILURES_PER_ACCOUNT`` failures, or an address
``CONCORD_LOGIN_MAX_FAILURES_PER_ADDRESS``, within ``CONCORD_LOGIN_WINDOW_SECONDS`` of
the first, further attempts are refused (429, ``Retry-After``) — with the right password
too — until the window has passed.

The client address is ``REMOTE_ADDR``. ``X-Forwarded-For`` is believed only when the
request comes from a proxy listed in ``CONCORD_TRUSTED_PROXIES`` (addresses or networks);
then the client is the right-most address of the header that is not itself a trusted
proxy. Otherwise anyone could reset their count by sending a new header each time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


def _networks() -> list:
    return [ipaddress.ip_network(entry, strict=False) for entry in settings.CONCORD_TRUSTED_PROXIES]


def _trusted(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or from ``X-Forwarded-For`` when the
    request came through a trusted proxy (``CONCORD_TRUSTED_PROXIES``)."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    networks = _networks()
    if not networks or not _trusted(remote, networks):
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _trusted(address, networks):
            return address
    return remote


# Cache keys start with this (tests give each test its own, since a Redis cache is not
# rolled back with the test's transaction).
KEY_NAMESPACE = "login-fail"


@dataclass(frozen=True)
class Refusal:
    """Why attempts are refused and for how long (seconds, rounded up)."""

    message: str
    retry_after: int


def _keys(username: str, address: str) -> list[tuple[str, int, str]]:
    account = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()
    return [
        (
            f"{KEY_NAMESPACE}:account:{account}",
            settings.CONCORD_LOGIN_MAX_FAILURES_PER_ACCOUNT,
            "account",
        ),
        (
            f"{KEY_NAMESPACE}:address:{address}",
            settings.CONCORD_LOGIN_MAX_FAILURES_PER_ADDRESS,
            "address",
        ),
    ]


def refusal(username: str, address: str) -> Refusal | None:
    """A :class:`Refusal` when ``username`` or ``address`` is over its limit, else None."""
    now = time.time()
    for key, limit, what in _keys(username, address):
        state = cache.get(key)
        if state is None:
            continue
        count, started = state
        ends = started + settings.CONCORD_LOGIN_WINDOW_SECONDS
        if count >= limit and ends > now:
            who = "this account" if what == "account" else "your address"
            wait = max(1, math.ceil(ends - now))
            return Refusal(
                f"Too many failed log-in attempts for {who}. Try again in {wait} seconds.",
                wait,
            )
    return None


def record_failure(username: str, address: str) -> None:
    """Count one failed password against ``username`` and ``address``.

    The window starts at the first failure and is not extended by later ones. (Two
    processes counting at the same instant may lose one increment: a limit off by one,
    never a lock-out that does not end.)
    """
    window = settings.CONCORD_LOGIN_WINDOW_SECONDS
    now = time.time()
    for key, _limit, _what in _keys(username, address):
        state = cache.get(key)
        if state is None or state[1] + window <= now:
            count, started = 0, now
        else:
            count, started = state
        remaining = max(1, math.ceil(started + window - now))
        cache.set(key, (count + 1, started), timeout=remaining)


def clear_account(username: str) -> None:
    """Forget the failures of ``username`` (after a successful log-in)."""
    cache.delete(_keys(username, "")[0][0])
