"""Headless Chromium (Debian's package) driven by Playwright against pytest-django's
live server.

Without ``/usr/bin/chromium`` the browser tests skip with a reason, unless
``CONCORD_REQUIRE_BROWSER=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test.utils import override_settings

CHROMIUM = os.environ.get("CONCORD_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--no-first-run",
]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests"
    if os.environ.get("CONCORD_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (CONCORD_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def http_live_server(request):
    """The live server over plain HTTP: with DEBUG off the production settings would
    redirect to HTTPS and mark cookies Secure, which a browser on http:// drops.
    The override is in place before the server thread builds its handler."""
    _require_chromium()
    override = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        SECURE_HSTS_SECONDS=0,
    )
    override.enable()
    request.addfinalizer(override.disable)
    return request.getfixturevalue("live_server")


@pytest.fixture(scope="session")
def chromium():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are still plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where screenshots go: ``$CONCORD_SCREENSHOTS`` if set, else the test's tmp dir."""
    path = Path(os.environ.get("CONCORD_SCREENSHOTS", tmp_path))
    path.mkdir(parents=True, exist_ok=True)
    return path
