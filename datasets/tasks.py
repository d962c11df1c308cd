"""Celery tasks of the datasets app: load by id, call one service."""

from celery import shared_task
from django.db import OperationalError

from datasets import recovery, services


@shared_task(
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=2,
    retry_backoff=10,
    acks_late=True,
    reject_on_worker_lost=True,
)
def build_dataset_version(self, dataset_version_id: int) -> dict:
    """Build a queued dataset version (a published version is left as it is).

    The service records a failed build itself; what reaches the task is a database error
    before the build or while recording its failure. Running it again is safe: the build
    is claimed once (a version that is not queued is returned unchanged) and its rows are
    written in one transaction; a build whose worker died is recovered by the reaper.
    """
    version = services.build_dataset_version(dataset_version_id=dataset_version_id)
    return {"dataset_version": version.pk, "status": version.status}


@shared_task
def reap_stalled_dataset_builds() -> dict:
    """Celery beat: re-queue or fail builds whose worker stopped heartbeating."""
    return recovery.reap_stalled_dataset_builds()
