"""Concord settings: everything that differs between machines comes from the environment.

Embedded default (no variables set): SQLite in ``var/`` and a Celery broker on the local
filesystem, so one command runs the web server and a real worker with no server to install.
``DATABASE_URL`` switches to PostgreSQL and ``REDIS_URL`` to Redis; no code path differs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONCORD_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = env_bool("DEBUG", False)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")


def _secret_key() -> str:
    """The secret key from the environment; on the embedded default a per-install random one.

    There is no built-in default key: a deployment past one machine (``DATABASE_URL`` set)
    must give ``SECRET_KEY`` so that every web and worker process shares it. On one machine
    a random key is generated once and kept in ``var/secret_key`` (never committed).
    """
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if DATABASE_URL and not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DATABASE_URL is set and DEBUG is off: every web and "
            "worker process of a deployment has to share one secret."
        )
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "labeling",
    "consistency",
    "review",
    "provenance",
    "datasets",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: a body over the view's limit is refused before anything reads it.
    "config.limits.BodySizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
SQLITE_PATH = Path(os.environ.get("CONCORD_SQLITE_PATH", VAR_DIR / "concord.sqlite3"))
# The web server and the worker write concurrently: WAL lets readers go on while one
# writer commits, IMMEDIATE takes the write lock at BEGIN (no deadlocking lock upgrades)
# and the timeout waits instead of failing.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA busy_timeout=30000;"
        "PRAGMA foreign_keys=ON;"
    ),
}


def database_config(database_url: str, *, sqlite_path: Path, var_dir: Path) -> dict:
    """The ``default`` database: ``database_url`` parsed, or SQLite at ``sqlite_path``.

    Whenever the engine is SQLite — the embedded default or a ``sqlite:///`` URL — it gets
    :data:`SQLITE_OPTIONS` (options given in the URL's query win) and a test database in a
    file under ``var_dir``, not in memory, so a worker started by an integration test
    opens the very database the test writes.
    """
    if database_url:
        config = dj_database_url.parse(database_url, conn_max_age=60)
    else:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path}
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
        config.setdefault("TEST", {})["NAME"] = str(var_dir / "test_concord.sqlite3")
        # A connection kept open across requests holds SQLite's file locks for nothing.
        config["CONN_MAX_AGE"] = 0
    return config


DATABASES = {"default": database_config(DATABASE_URL, sqlite_path=SQLITE_PATH, var_dir=VAR_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared by every process (log-in failure counts, API throttles) -------------
# Redis when there is one, else a table of the database (created by ``migrate``, see
# api.apps); never per-process memory, whose counts an attacker spreads over processes.
CACHE_KEY_PREFIX = os.environ.get("CONCORD_CACHE_PREFIX", "concord")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "concord_cache",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or not env_bool("CONCORD_STATIC_MANIFEST", True)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Uploads: limits in bytes and pixels ----------------------------------------------
CONCORD_MAX_IMAGE_BYTES = env_int("CONCORD_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
CONCORD_MAX_IMAGE_PIXELS = env_int("CONCORD_MAX_IMAGE_PIXELS", 50_000_000)
CONCORD_MAX_IMPORT_BYTES = env_int("CONCORD_MAX_IMPORT_BYTES", 512 * 1024 * 1024)
CONCORD_THUMBNAIL_SIZE = (256, 256)
# Bodies per endpoint (config.limits): small for log-in, tokens and one annotation, the
# import limit for imports (streamed), this default for everything else.
CONCORD_MAX_SMALL_BODY_BYTES = env_int("CONCORD_MAX_SMALL_BODY_BYTES", 64 * 1024)
CONCORD_MAX_BODY_BYTES = env_int("CONCORD_MAX_BODY_BYTES", 2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = CONCORD_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Celery ---------------------------------------------------------------------------
BROKER_DIR = Path(os.environ.get("CONCORD_BROKER_DIR", VAR_DIR / "broker"))
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A message taken by a worker that dies comes back after the visibility timeout. It
    # must outlast the longest single task (else Redis hands a running task to a second
    # worker; harmless, since job claims make it a no-op, but wasted), and recovery does
    # not wait for it: the job reapers re-queue a stalled job after
    # CONCORD_JOB_STALE_SECONDS (see consistency.jobs).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        "visibility_timeout": env_int("CONCORD_BROKER_VISIBILITY_TIMEOUT", 2 * 3600)
    }
else:
    # kombu's filesystem transport: a real broker between separate processes with no
    # server of its own (files moved atomically between folders), with messages
    # published atomically too (config.broker).
    from config.broker import folder_transport_options

    CELERY_BROKER_URL = "concordfs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **folder_transport_options(BROKER_DIR),
        "polling_interval": 0.1,
    }
# One queue name per deployment; tests give each test process its own (config.testing), so
# parallel test processes sharing one Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CONCORD_QUEUE", "celery")
# Task state and results live in the database so pages and the API can show them.
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# A task is acknowledged when it finishes, and a task whose pool process died (the OOM
# killer, SIGKILL) goes back to the queue instead of being acknowledged and lost; each
# worker process reserves one message at a time, so a dead worker strands few.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Project-scoped pipeline tokens (cnc_...) first: TokenAuthentication would refuse
        # them as unknown personal tokens.
        "datasets.authentication.PipelineTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested at most 64 levels and holding storable text (api.parsers): a 400, never
    # a RecursionError.
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.schema.ConcordAutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": "30/minute"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Concord API",
    "DESCRIPTION": "Labeling, agreement, SME resolution and versioned datasets.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["api.schema.SchemaAccess"],
    # Several nouns have a "status": give each choice set its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "consistency.models.RunStatus",
        "ConsensusStatusEnum": "consistency.models.ConsensusStatus",
        "FlagStatusEnum": "consistency.models.FlagStatus",
    },
    # Swagger UI and Redoc served from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security (production: DEBUG off) -------------------------------------------------
# Brute force (config.ratelimit): failed passwords per account and per client address.
CONCORD_LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("CONCORD_LOGIN_MAX_FAILURES_PER_ACCOUNT", 10)
CONCORD_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("CONCORD_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
CONCORD_LOGIN_WINDOW_SECONDS = env_int("CONCORD_LOGIN_WINDOW_SECONDS", 15 * 60)
# Proxies (addresses or networks) whose X-Forwarded-For is believed; none by default.
CONCORD_TRUSTED_PROXIES = env_list("CONCORD_TRUSTED_PROXIES")
# Whether anonymous visitors may read the OpenAPI schema and its pages (api.schema).
CONCORD_SCHEMA_PUBLIC = env_bool("CONCORD_SCHEMA_PUBLIC", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Concord --------------------------------------------------------------------------
CONCORD_ASSIGNMENT_TTL_MINUTES = env_int("CONCORD_ASSIGNMENT_TTL_MINUTES", 30)
# Agreement runs are split into chunks computed in parallel only when more than one worker
# process can take them (PARALLEL_WORKERS: the deployment's worker processes, e.g. workers
# x concurrency; 1 = one pass, the embedded default) and each chunk gets at least
# CHUNK_ITEMS items; never more chunks than workers, except that no chunk holds more than
# MAX_CHUNK_ITEMS items: that cap bounds a chunk task's memory, so a large run gets more
# chunks than workers (consistency.runs._plan_ranges).
CONCORD_AGREEMENT_CHUNK_ITEMS = env_int("CONCORD_AGREEMENT_CHUNK_ITEMS", 50_000)
CONCORD_AGREEMENT_MAX_CHUNK_ITEMS = env_int("CONCORD_AGREEMENT_MAX_CHUNK_ITEMS", 200_000)
CONCORD_AGREEMENT_PARALLEL_WORKERS = env_int("CONCORD_AGREEMENT_PARALLEL_WORKERS", 1)
# The smallest chunk a request may ask for: tiny chunks make a run of thousands of tasks.
CONCORD_AGREEMENT_MIN_CHUNK_ITEMS = env_int("CONCORD_AGREEMENT_MIN_CHUNK_ITEMS", 1000)
CONCORD_FETCH_TIMEOUT_SECONDS = env_int("CONCORD_FETCH_TIMEOUT_SECONDS", 10)
CONCORD_MAX_ZIP_UNCOMPRESSED_BYTES = env_int(
    "CONCORD_MAX_ZIP_UNCOMPRESSED_BYTES", 4 * CONCORD_MAX_IMPORT_BYTES
)

# Long jobs (agreement runs, dataset builds) heartbeat while a worker executes them; one
# whose heartbeat is older than the stale limit lost its worker and is re-queued by the
# reapers below, at most CONCORD_JOB_MAX_ATTEMPTS executions, then failed with the reason.
CONCORD_JOB_HEARTBEAT_SECONDS = env_int("CONCORD_JOB_HEARTBEAT_SECONDS", 10)
CONCORD_JOB_STALE_SECONDS = env_int("CONCORD_JOB_STALE_SECONDS", 180)
CONCORD_JOB_MAX_ATTEMPTS = env_int("CONCORD_JOB_MAX_ATTEMPTS", 3)
CONCORD_JOB_REAPER_SECONDS = env_int("CONCORD_JOB_REAPER_SECONDS", 60)

# Periodic housekeeping (run by `celery beat`; `make run` embeds it in its one worker).
CELERY_BEAT_SCHEDULE = {
    "reap-stalled-agreement-runs": {
        "task": "consistency.tasks.reap_stalled_agreement_runs",
        "schedule": float(CONCORD_JOB_REAPER_SECONDS),
    },
    "reap-stalled-dataset-builds": {
        "task": "datasets.tasks.reap_stalled_dataset_builds",
        "schedule": float(CONCORD_JOB_REAPER_SECONDS),
    },
    "expire-stale-assignments": {
        "task": "labeling.tasks.expire_stale_assignments",
        "schedule": 300.0,
    },
    # Hourly tick; each project on the daily monitoring schedule runs once a day.
    "run-due-monitoring": {"task": "consistency.tasks.run_due_monitoring", "schedule": 3600.0},
    # Pauses made on the labeling page get their manager's flag within 5 minutes.
    "sync-pause-flags": {"task": "consistency.tasks.sync_all_pause_flags", "schedule": 300.0},
}
