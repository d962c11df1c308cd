"""Celery tasks of the datasets app: load by id, call one service."""

from celery import shared_task

from datasets import services


@shared_task(bind=True, max_retries=2, default_retry_delay=10, acks_late=True)
def build_dataset_version(self, dataset_version_id: int) -> dict:
    """Build a queued dataset version (a published version is left as it is)."""
    version = services.build_dataset_version(dataset_version_id=dataset_version_id)
    return {"dataset_version": version.pk, "status": version.status}
