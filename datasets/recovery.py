"""The dataset-build reaper: builds whose worker stopped heartbeating are re-queued or
failed with the reason (run by Celery beat; the lease protocol is in consistency.jobs).

A build writes its rows and publishes in one transaction, so a build that died left no
rows behind: building it again is safe and cannot duplicate a row.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from consistency import jobs
from datasets import lineage
from datasets.models import DatasetStatus, DatasetVersion
from provenance import events

log = logging.getLogger(__name__)


def _send(version_id: int) -> None:
    from datasets.tasks import build_dataset_version

    build_dataset_version.delay(version_id)


def reap_stalled_dataset_builds() -> dict:
    """Recover builds whose heartbeat is older than ``CONCORD_JOB_STALE_SECONDS``.

    Queued ones are sent again (their message may have died with a worker that had
    reserved it; a duplicate is a no-op, the build is claimed once). Building ones go back
    to queued and are sent again, or are failed with the reason once they have used
    ``CONCORD_JOB_MAX_ATTEMPTS`` builds. Returns counts per action, for the log.
    """
    cutoff = jobs.stale_before()
    counts = {"resent": 0, "requeued": 0, "failed": 0}
    stalled = DatasetVersion.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff),
        status__in=[DatasetStatus.QUEUED, DatasetStatus.BUILDING],
    ).only("pk", "status", "attempts", "heartbeat_at", "project_id", "created_by_id")
    for version in stalled:
        still = DatasetVersion.objects.filter(
            pk=version.pk,
            status=version.status,
            attempts=version.attempts,
            heartbeat_at=version.heartbeat_at,
        )
        now = timezone.now()
        if version.status == DatasetStatus.QUEUED:
            if still.update(heartbeat_at=now):
                _send(version.pk)
                counts["resent"] += 1
            continue
        since = f"{version.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if version.heartbeat_at else "?"
        why = f"the worker building it stopped responding (no heartbeat since {since})"
        with transaction.atomic():
            if version.attempts >= jobs.max_attempts():
                error = f"{why}; gave up after {version.attempts} attempts"
                if not still.update(status=DatasetStatus.FAILED, error=error, finished_at=now):
                    continue
                events.dataset_failed(
                    project_id=version.project_id,
                    actor_id=version.created_by_id,
                    dataset_version_id=version.pk,
                    reason=error,
                )
                counts["failed"] += 1
                transaction.on_commit(
                    lambda v=version.pk, e=error: lineage.emit_dataset_build(
                        DatasetVersion.objects.get(pk=v), "FAIL", error=e
                    )
                )
            else:
                error = f"re-queued (attempt {version.attempts + 1}): {why}"
                if not still.update(status=DatasetStatus.QUEUED, error=error, heartbeat_at=now):
                    continue
                counts["requeued"] += 1
                transaction.on_commit(lambda v=version.pk: _send(v))
    if any(counts.values()):
        log.warning("dataset build reaper: %s", counts)
    return counts
