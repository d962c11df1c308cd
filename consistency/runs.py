"""Agreement runs: the adapter between the database and the pure core in ``metrics``.

Entry points (every write about agreement runs goes through one of them):

``start_agreement_run``     validate params, create the run (queued), enqueue on commit
``execute_agreement_run``   the whole job: plan, scan, metrics, slices, consensus, store
``compute_agreement_chunk`` one item-id range of a chunked run (a Celery chord member)
``finalize_agreement_run``  merge the chunks' statistics and finish (the chord callback)

How a run reads labels: :func:`consistency.scan.scan_annotations` streams the current
annotations as numpy columns; item ids are used as item codes directly (the core only
needs non-negative integers), labelers are coded by their position in the run's sorted
labeler list, classes by their position in the project's class list after merges
(``merged_into`` chains resolved to their root). Chunks partition the items by id range,
so their :class:`~consistency.metrics.AgreementStats` merge into exactly the single-pass
statistics and every number of a chunked run equals the single-pass number.

This module orchestrates; the work is done by one module per concern:
:mod:`consistency.run_params` (defaults and validation), :mod:`consistency.class_map`
(class codes after merges), :mod:`consistency.chunks` (chunk statistics, their bytes and
merge), :mod:`consistency.results` (metrics, HLP, slices, transcripts) and
:mod:`consistency.consensus_store` (consensus by each method, stored as rows).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from consistency import box_runs, flags
from consistency.chunks import chunk_from_bytes, chunk_stats, chunk_to_bytes, merge_chunks
from consistency.class_map import class_map
from consistency.consensus_store import consensus_part
from consistency.models import AgreementRun, AgreementRunChunk, RunStatus
from consistency.results import metrics_part, transcription_results
from consistency.run_params import chunk_items_setting, validate_params
from consistency.selectors import data_version
from labeling.models import Annotation, Item, Project, TaskType
from provenance import lineage

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ start


@transaction.atomic
def start_agreement_run(
    *, project: Project, params: dict | None = None, created_by: AbstractBaseUser | None = None
) -> AgreementRun:
    """Create a queued agreement run and enqueue it once the transaction commits."""
    clean = validate_params(project, params)
    run = AgreementRun.objects.create(
        project=project,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        params=clean,
        status=RunStatus.QUEUED,
    )

    def enqueue():
        from consistency.tasks import run_agreement

        result = run_agreement.delay(run.pk)
        AgreementRun.objects.filter(pk=run.pk, celery_task_id="").update(
            celery_task_id=result.id or ""
        )

    transaction.on_commit(enqueue)
    return run


# ------------------------------------------------------------------ hooks


def _lineage(run: AgreementRun, event_type: str, error: str | None = None) -> None:
    """OpenLineage run event, when an OpenLineage endpoint or file is configured."""
    lineage.emit_run_event(
        event_type=event_type,
        job_name="agreement_run",
        run_key=f"agreement_run:{run.pk}",
        namespace_suffix=run.project.slug,
        inputs=[f"project/{run.project.slug}/annotations"],
        outputs=[f"agreement_run/{run.pk}"],
        error=error,
    )


# ------------------------------------------------------------------ labelers and data version


def _labelers_and_version(project_id: int) -> tuple[list[int], dict]:
    """Sorted ids of everyone with a current annotation, and the data version, in one pass
    over the partial index (the labeler list is what the run's labeler codes refer to)."""
    table = connection.ops.quote_name(Annotation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT labeler_id, COUNT(*), MAX(id) FROM {table} "  # noqa: S608
            "WHERE project_id = %s AND is_current GROUP BY labeler_id",
            [project_id],
        )
        rows = sorted(cursor.fetchall())
    version = {
        "max_annotation_id": max((r[2] for r in rows), default=None),
        "n_annotations": sum(r[1] for r in rows),
    }
    return [r[0] for r in rows], version


def _is_transcription(project: Project) -> bool:
    return project.task_type == TaskType.TRANSCRIPTION


# ------------------------------------------------------------------ run lifecycle


def _save(run: AgreementRun, **changes) -> None:
    for name, value in changes.items():
        setattr(run, name, value)
    run.save(update_fields=list(changes))


def _set_progress(run: AgreementRun, progress: float) -> None:
    _save(run, progress=round(min(max(progress, 0.0), 1.0), 4))


def fail_agreement_run(run_id: int, message: str) -> None:
    """Mark the run failed with a message a person can act on (idempotent)."""
    AgreementRun.objects.filter(pk=run_id).exclude(status=RunStatus.SUCCEEDED).update(
        status=RunStatus.FAILED, error=message[:4000], finished_at=timezone.now()
    )
    AgreementRunChunk.objects.filter(run_id=run_id).delete()
    run = AgreementRun.objects.select_related("project").filter(pk=run_id).first()
    if run is not None:
        _lineage(run, "FAIL", error=message)


def _error_message(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


def execute_agreement_run(
    run_id: int,
    *,
    dispatch_chunks: Callable[[int, list[tuple[int, int, int]]], None] | None = None,
) -> AgreementRun:
    """Run an agreement job: status running, progress, results, then succeeded or failed.

    Small projects (at most ``chunk_items`` items; param, else the setting
    ``CONCORD_AGREEMENT_CHUNK_ITEMS``) are computed in one pass. Larger ones are split
    into item-id ranges: ``dispatch_chunks(run_id, [(index, first_id, last_id), ...])``
    hands them to parallel workers (a Celery chord whose callback calls
    :func:`finalize_agreement_run`); without it the chunks are computed here one by one,
    through the same serialization, which is what makes the chunked path testable.
    """
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return run  # already finished: a redelivered task must not recompute
    t0 = time.perf_counter()
    try:
        project = run.project
        _save(
            run,
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
            progress=0.01,
            error="",
        )
        _lineage(run, "START")
        labeler_ids, version = _labelers_and_version(project.pk)
        chunk_items = run.params.get("chunk_items") or chunk_items_setting()
        # Transcripts and boxes are computed in one pass (their statistics do not chunk).
        single = _is_transcription(project) or project.task_type == TaskType.DETECTION
        ranges = [] if single else _item_ranges(project, chunk_items)
        _save(
            run,
            data_version={**version, "labeler_ids": labeler_ids},
            n_chunks=max(len(ranges), 1),
            timings={"plan_s": round(time.perf_counter() - t0, 3)},
            progress=0.05,
        )
        if len(ranges) <= 1:
            return _single_pass(run, labeler_ids)
        if dispatch_chunks is not None:
            dispatch_chunks(run.pk, ranges)
            run.refresh_from_db()
            return run
        for index, first, last in ranges:
            compute_agreement_chunk(
                run_id=run.pk, index=index, first_item_id=first, last_item_id=last
            )
        return finalize_agreement_run(run_id=run.pk)
    except Exception as exc:
        logger.exception("agreement run %s failed", run_id)
        fail_agreement_run(run_id, _error_message(exc))
        run.refresh_from_db()
        return run


def _item_ranges(project: Project, chunk_items: int) -> list[tuple[int, int, int]]:
    """``[(index, first_item_id, last_item_id)]`` covering the project's items."""
    table = connection.ops.quote_name(Item._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE project_id = %s ORDER BY id",  # noqa: S608
            [project.pk],
        )
        ids = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return []
    starts = np.arange(0, ids.size, chunk_items)
    ends = np.minimum(starts + chunk_items, ids.size) - 1
    out = [(i, int(ids[s]), int(ids[e])) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    # Open the outer ends so an item created during planning still falls into a chunk.
    out[0] = (0, 0, out[0][2])
    out[-1] = (out[-1][0], out[-1][1], 2**62)
    return out


def _single_pass(run: AgreementRun, labeler_ids: list[int]) -> AgreementRun:
    t0 = time.perf_counter()
    project = run.project
    if _is_transcription(project):
        timings: dict = {}
        results, consensus = transcription_results(run, timings)
        return _complete(run, results, consensus, timings)
    if project.task_type == TaskType.DETECTION:
        timings = {}
        results, consensus = box_runs.detection_results(run, timings)
        return _complete(run, results, consensus, timings)
    level = run.params["level"]
    classes = class_map(project, level)
    chunk = chunk_stats(
        project, level, classes, np.asarray(labeler_ids, dtype=np.int64), None, None
    )
    timings = {"scan_s": round(time.perf_counter() - t0, 3)}
    _set_progress(run, 0.4)
    results, metric_timings = metrics_part(run, chunk, classes)
    _set_progress(run, 0.7)
    consensus, consensus_timings = consensus_part(run, chunk, classes)
    return _complete(run, results, consensus, {**timings, **metric_timings, **consensus_timings})


def compute_agreement_chunk(
    *, run_id: int, index: int, first_item_id: int, last_item_id: int
) -> int | None:
    """Statistics of the run's items with ids in [first, last]; stored for the merge.

    Returns the number of labels in the chunk, or None if the run is not running.
    """
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return None
    try:
        level = run.params["level"]
        classes = class_map(run.project, level)
        labeler_ids = np.asarray(run.data_version.get("labeler_ids", []), dtype=np.int64)
        chunk = chunk_stats(run.project, level, classes, labeler_ids, first_item_id, last_item_id)
        AgreementRunChunk.objects.update_or_create(
            run=run,
            index=index,
            defaults={
                "first_item_id": first_item_id,
                "last_item_id": min(last_item_id, 2**62),
                "n_annotations": chunk.stats.n_annotations,
                "payload": chunk_to_bytes(chunk),
            },
        )
        share = 0.45 / max(run.n_chunks, 1)
        AgreementRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            progress=F("progress") + share
        )
        return chunk.stats.n_annotations
    except Exception as exc:
        logger.exception("agreement run %s chunk %s failed", run_id, index)
        fail_agreement_run(
            run_id, f"chunk {index} (items {first_item_id}..): " + _error_message(exc)
        )
        return None


MERGED_INDEX = 1_000_000  # AgreementRunChunk.index of the merged statistics
PARTS = ("metrics", "consensus")  # the final stage, computed in parallel
PART_INDEX = {"metrics": 1_000_001, "consensus": 1_000_002}


def finalize_agreement_run(
    *, run_id: int, dispatch_parts: Callable[[int], None] | None = None
) -> AgreementRun:
    """Merge the stored chunk statistics, then compute the final stage's parts.

    The parts (metrics + slices, consensus) only read the merged statistics, so
    ``dispatch_parts(run_id)`` can run them in parallel workers (a chord whose callback
    calls :func:`complete_agreement_run`); without it they run here one after the other.
    """
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return run
    try:
        t0 = time.perf_counter()
        rows = list(
            AgreementRunChunk.objects.filter(run=run, index__lt=MERGED_INDEX).order_by("index")
        )
        if len(rows) != run.n_chunks:
            raise RuntimeError(f"{len(rows)} of {run.n_chunks} chunks were computed")
        merged = merge_chunks([chunk_from_bytes(r.payload) for r in rows])
        with transaction.atomic():
            AgreementRunChunk.objects.filter(run=run).delete()
            AgreementRunChunk.objects.create(
                run=run,
                index=MERGED_INDEX,
                first_item_id=rows[0].first_item_id,
                last_item_id=rows[-1].last_item_id,
                n_annotations=merged.stats.n_annotations,
                payload=chunk_to_bytes(merged),
            )
        timings = {**(run.timings or {}), "merge_s": round(time.perf_counter() - t0, 3)}
        _save(run, timings=timings, progress=0.55)
    except Exception as exc:
        logger.exception("agreement run %s failed while merging", run_id)
        fail_agreement_run(run_id, _error_message(exc))
        run.refresh_from_db()
        return run
    if dispatch_parts is not None:
        dispatch_parts(run_id)
        run.refresh_from_db()
        return run
    for part in PARTS:
        compute_agreement_part(run_id=run_id, part=part)
    return complete_agreement_run(run_id=run_id)


def compute_agreement_part(*, run_id: int, part: str) -> bool:
    """One part of a chunked run's final stage, from the merged statistics; its output
    (JSON) is stored for :func:`complete_agreement_run`. Returns False on failure."""
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return False
    try:
        t0 = time.perf_counter()
        row = AgreementRunChunk.objects.get(run=run, index=MERGED_INDEX)
        merged = chunk_from_bytes(row.payload)
        classes = class_map(run.project, run.params["level"])
        load_s = round(time.perf_counter() - t0, 3)
        if part == "metrics":
            output, timings = metrics_part(run, merged, classes)
        elif part == "consensus":
            output, timings = consensus_part(run, merged, classes)
        else:
            raise ValueError(f"unknown part {part!r}")
        timings[f"{part}_load_s"] = load_s
        payload = json.dumps({"output": output, "timings": timings}, allow_nan=False)
        AgreementRunChunk.objects.update_or_create(
            run=run,
            index=PART_INDEX[part],
            defaults={
                "first_item_id": row.first_item_id,
                "last_item_id": row.last_item_id,
                "payload": payload.encode(),
            },
        )
        AgreementRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            progress=F("progress") + 0.2
        )
        return True
    except Exception as exc:
        logger.exception("agreement run %s part %s failed", run_id, part)
        fail_agreement_run(run_id, f"{part}: " + _error_message(exc))
        return False


def complete_agreement_run(*, run_id: int) -> AgreementRun:
    """Assemble the parts' outputs into the run's results and finish the run."""
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return run
    try:
        rows = {
            r.index: json.loads(bytes(r.payload))
            for r in AgreementRunChunk.objects.filter(run=run, index__in=PART_INDEX.values())
        }
        missing = [p for p in PARTS if PART_INDEX[p] not in rows]
        if missing:
            raise RuntimeError(f"parts not computed: {', '.join(missing)}")
        metrics, consensus = (rows[PART_INDEX[p]] for p in PARTS)
        timings = {**metrics["timings"], **consensus["timings"]}
        done = _complete(run, metrics["output"], consensus["output"], timings)
        AgreementRunChunk.objects.filter(run=run).delete()
        return done
    except Exception as exc:
        logger.exception("agreement run %s failed while completing", run_id)
        fail_agreement_run(run_id, _error_message(exc))
        run.refresh_from_db()
        return run


# ------------------------------------------------------------------ completion


def _complete(run: AgreementRun, results: dict, consensus: dict, timings: dict) -> AgreementRun:
    """Store the assembled results and mark the run succeeded."""
    results["consensus"] = consensus
    now_version = data_version(run.project)
    snapshot = {k: run.data_version.get(k) for k in ("max_annotation_id", "n_annotations")}
    results["data_version"] = {
        **snapshot,
        "changed_during_run": now_version != snapshot,
        "note": "labels the run read: highest current annotation id and count; compare with "
        "the project's current values to tell whether the results are stale",
    }
    results["params"] = run.params
    _save(
        run,
        results=results,
        status=RunStatus.SUCCEEDED,
        progress=1.0,
        finished_at=timezone.now(),
        timings={**(run.timings or {}), **timings},
    )
    _lineage(run, "COMPLETE")
    try:
        # Flags are advice on top of the results: a fault here must not fail the run.
        flags.generate_flags(run)
    except Exception:
        logger.exception("flag generation failed for agreement run %s", run.pk)
    return run
