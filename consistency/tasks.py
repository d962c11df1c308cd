"""Celery tasks of the consistency app: each loads by id and calls one service.

A large run fans out into one task per item-id chunk; the task that completes the last
chunk merges them and finishes the run (no chord: its bookkeeping would die with a
killed worker, while chunk rows in the database survive it). Every task is safe to run
twice: the run and each chunk are claimed once per execution (``consistency.jobs``), so a
redelivered or re-sent message is a no-op, and the reaper (Celery beat) recovers work
whose worker died.
"""

from __future__ import annotations

from celery import shared_task

from consistency import monitoring, pause_flags, runs


def dispatch_chunks(run_id: int, attempt: int, indices: list[int]) -> None:
    """Send one task per pending chunk of the run's execution ``attempt``."""
    for index in indices:
        compute_agreement_chunk.delay(run_id, attempt, index)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_agreement(run_id: int) -> str:
    """Execute an agreement run (single pass, or fan out into chunks)."""
    return runs.execute_agreement_run(run_id, dispatch_chunks=dispatch_chunks).status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def compute_agreement_chunk(run_id: int, attempt: int, index: int):
    """Statistics of one chunk; the last chunk finalizes the run. Returns its label count."""
    return runs.compute_agreement_chunk(run_id=run_id, attempt=attempt, index=index)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def finalize_agreement_run(run_id: int, attempt: int) -> str:
    """Merge the chunks and finish the run (sent by the reaper when the last chunk's
    worker died between storing it and finalizing)."""
    return runs.finalize_agreement_run(run_id=run_id, attempt=attempt).status


# Image statistics are computed by the worker after an import; a monitoring run started
# meanwhile waits for them (up to ~10 minutes) rather than judging brightness on half the
# items. After that it runs anyway and its results say how many were still missing.
MONITORING_STATS_WAIT_SECONDS = 15
MONITORING_STATS_MAX_WAITS = 40


@shared_task(bind=True, acks_late=True, max_retries=MONITORING_STATS_MAX_WAITS)
def run_monitoring(self, run_id: int) -> str:
    """Execute a monitoring run (after the project's pending image statistics)."""
    from consistency.models import MonitoringRun

    run = MonitoringRun.objects.filter(pk=run_id).values("project_id", "status").first()
    if run is None:
        return "missing"
    if (
        run["status"] == "queued"
        and self.request.retries < MONITORING_STATS_MAX_WAITS
        and not self.request.is_eager
        and monitoring.pending_image_stats(run["project_id"])
    ):
        raise self.retry(countdown=MONITORING_STATS_WAIT_SECONDS)
    return monitoring.execute_monitoring_run(run_id).status


@shared_task(acks_late=True)
def run_due_monitoring() -> list[int]:
    """Periodic (celery beat): start a monitoring run for every project that is due."""
    return monitoring.start_due_monitoring_runs()


@shared_task(acks_late=True)
def sync_all_pause_flags() -> int:
    """Periodic (celery beat): the manager's flag for every labeler paused by the
    ground-truth checks (``consistency.pause_flags``); returns how many were raised."""
    return pause_flags.sync_all_pause_flags()


@shared_task
def reap_stalled_agreement_runs() -> dict:
    """Celery beat: recover runs whose worker stopped heartbeating."""
    return runs.reap_stalled_agreement_runs()
