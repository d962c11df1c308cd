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

from consistency import runs


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


@shared_task
def reap_stalled_agreement_runs() -> dict:
    """Celery beat: recover runs whose worker stopped heartbeating."""
    return runs.reap_stalled_agreement_runs()
