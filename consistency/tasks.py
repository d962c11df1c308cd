"""Celery tasks of the consistency app: each loads by id and calls one service."""

from __future__ import annotations

from celery import chord, shared_task

from consistency import services


def dispatch_chunks(run_id: int, ranges: list[tuple[int, int, int]]) -> None:
    """Compute the chunks in parallel (a chord); its callback merges and finishes the run."""
    header = [
        compute_agreement_chunk.s(run_id, index, first, last) for index, first, last in ranges
    ]
    chord(header)(finalize_agreement_run.s(run_id))


@shared_task(acks_late=True)
def run_agreement(run_id: int) -> str:
    """Execute an agreement run (single pass, or fan out into chunks)."""
    run = services.execute_agreement_run(run_id, dispatch_chunks=dispatch_chunks)
    return run.status


@shared_task(acks_late=True)
def compute_agreement_chunk(run_id: int, index: int, first_item_id: int, last_item_id: int):
    """Statistics of one item-id range; returns its label count (small message)."""
    return services.compute_agreement_chunk(
        run_id=run_id, index=index, first_item_id=first_item_id, last_item_id=last_item_id
    )


@shared_task(acks_late=True)
def finalize_agreement_run(chunk_counts: list, run_id: int) -> str:
    """Chord callback: merge the chunks' statistics and store the results."""
    return services.finalize_agreement_run(run_id=run_id).status
