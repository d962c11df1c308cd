"""Celery tasks of the datasets app: load by id, call one service."""

from celery import shared_task
from django.db import OperationalError

from datasets import services


@shared_task(
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=2,
    retry_backoff=10,
    acks_late=True,
)
def build_dataset_version(self, dataset_version_id: int) -> dict:
    """Build a queued dataset version (a published version is left as it is).

    The service records a failed build itself; what reaches the task is a database error
    before the build or while recording its failure. Running it again is safe: a published
    version is returned unchanged and anything else is built again in one transaction.
    """
    version = services.build_dataset_version(dataset_version_id=dataset_version_id)
    return {"dataset_version": version.pk, "status": version.status}
