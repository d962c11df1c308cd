"""Production settings pass Django's deployment checks; migrations match the models."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parent.parent


# Production defaults for the deploy check, whatever the calling shell (CI's PostgreSQL leg
# turns HTTPS redirects off for the test client) has set.
PRODUCTION_SECURITY = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")


def _manage(*args, **env):
    full_env = {k: v for k, v in subprocess_env(**env).items() if k not in PRODUCTION_SECURITY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x" * 20 + "a-long-random-secret-from-the-environment-9f8e7d6c",
        ALLOWED_HOSTS="concord.example.com",
        CONCORD_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_key_refuses_to_start(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            **env,
            "DEBUG": "0",
            "DATABASE_URL": "postgres://u:p@localhost:5/concord",
            "CONCORD_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_makemigrations_finds_nothing_to_do(tmp_path):
    result = _manage("makemigrations", "--check", "--dry-run", CONCORD_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_describes_web_worker_redis_and_postgres_sharing_one_config():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "redis", "postgres"} <= set(services)
    assert "celery" in services["worker"]["command"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert "media:/var/lib/concord/media" in services[name]["volumes"]
    assert services["web"]["environment"] is services["worker"]["environment"]


def test_health_endpoint_answers_when_the_database_does(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
