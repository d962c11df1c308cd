"""Celery tasks of the labeling app: load by id, call one service."""

from celery import shared_task

from labeling import assignment, services


@shared_task(bind=True, max_retries=3, default_retry_delay=5, acks_late=True)
def compute_image_stats(self, item_ids: list[int] | int) -> dict:
    """Compute statistics and thumbnails for a batch of image items (see the service)."""
    ids = [item_ids] if isinstance(item_ids, int) else list(item_ids)
    statuses = {}
    for item_id in ids:
        item = services.compute_item_image_stats(item_id=item_id)
        statuses[item.pk] = item.stats_status
    return {"items": statuses}


@shared_task(bind=True, max_retries=2, default_retry_delay=30, acks_late=True)
def compute_remote_image_stats(self, item_id: int) -> dict:
    """Fetch an image-URL item's image safely and compute its statistics (see the service)."""
    item = services.compute_remote_item_image_stats(item_id=item_id)
    return {"item": item.pk, "status": item.stats_status}


@shared_task(acks_late=True)
def expire_stale_assignments() -> dict:
    """Periodic: mark abandoned assignments expired (counts already ignore them)."""
    return {"expired": assignment.expire_stale_assignments()}
