"""Celery tasks of the labeling app: load by id, call one service.

Retries are for transient database errors only (``OperationalError``: a dropped connection,
a failover). The image services are safe to run again: each item's statistics and thumbnail
are stored with their event in one transaction, so a failed attempt leaves nothing behind.
"""

from celery import shared_task
from django.db import OperationalError

from labeling import assignment, services


@shared_task(bind=True, max_retries=3, default_retry_delay=5, acks_late=True)
def compute_image_stats(self, item_ids: list[int] | int) -> dict:
    """Compute statistics and thumbnails for a batch of image items (see the service).

    On a transient database error the task is retried with the items not yet done, so an
    item already stored is not recomputed (nor its ``item.image_stats`` event written twice).
    """
    ids = [item_ids] if isinstance(item_ids, int) else list(item_ids)
    statuses = {}
    for index, item_id in enumerate(ids):
        try:
            item = services.compute_item_image_stats(item_id=item_id)
        except OperationalError as exc:
            raise self.retry(
                args=[ids[index:]],
                exc=exc,
                countdown=self.default_retry_delay * 2**self.request.retries,
            ) from exc
        statuses[item.pk] = item.stats_status
    return {"items": statuses}


@shared_task(
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=2,
    retry_backoff=30,
    acks_late=True,
)
def compute_remote_image_stats(self, item_id: int) -> dict:
    """Fetch an image-URL item's image safely and compute its statistics (see the service).

    A refused or broken fetch is not retried: the service records it on the item."""
    item = services.compute_remote_item_image_stats(item_id=item_id)
    return {"item": item.pk, "status": item.stats_status}


@shared_task(acks_late=True)
def expire_stale_assignments() -> dict:
    """Periodic: mark abandoned assignments expired (counts already ignore them)."""
    return {"expired": assignment.expire_stale_assignments()}
