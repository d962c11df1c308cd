"""The Celery application; tasks are discovered in each app's ``tasks.py``."""

import os

from celery import Celery
from celery.signals import task_postrun

from config.broker import SCHEME  # noqa: F401  (registers the concordfs:// broker transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.include = ["config.diagnostics"]


@task_postrun.connect
def _release_freed_memory(**_):
    """After every task: freed memory back to the OS, so that one large job (a 10M-label
    agreement run) does not leave the worker holding its peak until it restarts."""
    from consistency.jobs import release_freed_memory

    release_freed_memory()
