"""Celery tasks of the consistency app: each loads by id and calls one service.

A large run fans out twice: its item-id chunks are computed in parallel (a chord whose
callback merges them), then the final stage's parts -- metrics with slices, and
consensus -- run in parallel (a second chord whose callback assembles the results).
"""

from __future__ import annotations

from celery import chord, shared_task

from consistency import monitoring, pause_flags, runs


def dispatch_chunks(run_id: int, ranges: list[tuple[int, int, int]]) -> None:
    """Compute the chunks in parallel; the callback merges them."""
    header = [
        compute_agreement_chunk.s(run_id, index, first, last) for index, first, last in ranges
    ]
    chord(header)(finalize_agreement_run.s(run_id))


def dispatch_parts(run_id: int) -> None:
    """Compute the final stage's parts in parallel; the callback assembles the results."""
    header = [compute_agreement_part.s(run_id, part) for part in runs.PARTS]
    chord(header)(complete_agreement_run.si(run_id))


@shared_task(acks_late=True)
def run_agreement(run_id: int) -> str:
    """Execute an agreement run (single pass, or fan out into chunks)."""
    return runs.execute_agreement_run(run_id, dispatch_chunks=dispatch_chunks).status


@shared_task(acks_late=True)
def compute_agreement_chunk(run_id: int, index: int, first_item_id: int, last_item_id: int):
    """Statistics of one item-id range; returns its label count (a small message)."""
    return runs.compute_agreement_chunk(
        run_id=run_id, index=index, first_item_id=first_item_id, last_item_id=last_item_id
    )


@shared_task(acks_late=True)
def finalize_agreement_run(chunk_counts: list, run_id: int) -> str:
    """Chord callback: merge the chunks' statistics, then fan out the final stage."""
    return runs.finalize_agreement_run(run_id=run_id, dispatch_parts=dispatch_parts).status


@shared_task(acks_late=True)
def compute_agreement_part(run_id: int, part: str) -> bool:
    """One part of the final stage (metrics + slices, or consensus)."""
    return runs.compute_agreement_part(run_id=run_id, part=part)


@shared_task(acks_late=True)
def complete_agreement_run(run_id: int) -> str:
    """Chord callback: assemble the parts into the run's results."""
    return runs.complete_agreement_run(run_id=run_id).status


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
