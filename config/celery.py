"""The Celery application; tasks are discovered in each app's ``tasks.py``."""

import os

from celery import Celery

from config.broker import SCHEME  # noqa: F401  (registers the concordfs:// broker transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.include = ["config.diagnostics"]
