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


def _worker_env() -> dict:
    """Environment for a worker process that uses the test database and broker."""
    env = dict(os.environ)
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
