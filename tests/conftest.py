"""Shared fixtures: factories for users and projects, eager Celery for unit tests, a
per-test media folder, and a real Celery worker process for integration tests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings
from PIL import Image

from config.celery import app as celery_app
from labeling import services
from labeling.models import Role

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def celery_mode(request):
    """Unit tests run tasks eagerly in-process; tests marked ``integration`` get the real
    broker and a separate worker process instead."""
    eager = request.node.get_closest_marker("integration") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = previous


def png_bytes(width=64, height=48, color=(120, 130, 140)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_user(django_user_model):
    counter = {"n": 0}

    def make(username=None, password="pw-for-tests-123", **extra):
        counter["n"] += 1
        username = username or f"user{counter['n']}"
        return django_user_model.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def manager(make_user):
    return make_user("manager")


@pytest.fixture
def project(manager):
    return services.create_project(
        name="Phone defects",
        classes=[
            {"key": "no_defect", "name": "No defect"},
            {"key": "scratch", "name": "Scratch"},
            {"key": "dent", "name": "Dent"},
            {"key": "borderline", "name": "Borderline", "is_borderline": True},
        ],
        overlap=3,
        created_by=manager,
        guideline_text="Label the most severe visible defect.",
    )


@pytest.fixture
def labelers(project, make_user):
    users = [make_user(f"labeler{i}") for i in range(1, 4)]
    for user in users:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    return users


def subprocess_env(**extra) -> dict:
    """This process's environment for a child process, less what only tests may set."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(extra)
    return env


def _worker_env() -> dict:
    """Environment for a worker process that uses the test database and broker."""
    env = subprocess_env()
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["CONCORD_SQLITE_PATH"] = str(db["NAME"])
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    return env


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real ``celery worker`` process on the configured broker (filesystem or Redis)."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--hostname",
        f"itest-{os.getpid()}@localhost",
    ]
    if not settings.REDIS_URL:
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    # Messages left on the broker by earlier tests must not reach this worker.
    celery_app.control.purge()
    log_path = Path(settings.VAR_DIR) / f"worker-{os.getpid()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_worker_env(), stdout=log, stderr=log)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout=60.0, interval=0.2, proc=None, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with code {proc.returncode} before {what}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- Browser tests: headless Chromium (Debian's package) driven by Playwright -------
# Without the browser they skip with a reason, unless CONCORD_REQUIRE_BROWSER=1 (CI), in
# which case they fail. One Playwright instance serves the whole session: its sync API
# cannot be started twice in one thread.
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
    # are still plain synchronous code. (Subprocesses started by tests get an environment
    # without this variable: see ``subprocess_env``.)
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
