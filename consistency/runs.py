"""Agreement runs: the adapter between the database and the pure core in ``metrics``.

Entry points (every write about agreement runs goes through one of them):

``start_agreement_run``     validate params, create the run (queued), enqueue on commit
``execute_agreement_run``   the whole job: plan, scan, metrics, slices, consensus, store
``compute_agreement_chunk`` one item-id range of a chunked run (one task per chunk)
``finalize_agreement_run``  merge the chunks' statistics and finish (after the last chunk)
``reap_stalled_agreement_runs``  re-queue or fail runs whose worker died (Celery beat)

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

import logging
import time
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from consistency import box_runs, flags, jobs
from consistency.chunks import (
    chunk_from_bytes,
    chunk_stats,
    chunk_to_bytes,
    merge_chunks,
    merge_in_order,
)
from consistency.class_map import class_map
from consistency.consensus_store import consensus_part
from consistency.models import AgreementRun, AgreementRunChunk, RunStatus
from consistency.results import metrics_part, transcription_results
from consistency.run_params import chunk_items_setting, max_chunk_items_setting, validate_params
from consistency.scan import item_id_ranges
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
        heartbeat_at=timezone.now(),  # queued since: the reaper re-sends a lost message
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
#
# An execution *claims* the run (queued -> running, ``attempts`` + 1 in one UPDATE) and
# every later write is guarded by that token (``_mine``), so an execution the reaper gave
# up for dead changes nothing when it comes back. A heartbeat thread keeps the lease
# while the execution works; see consistency.jobs for the protocol.


class ChunkState:
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


def _mine(run: AgreementRun):
    """The run's row, as long as this execution (token ``run.attempts``) holds it."""
    return AgreementRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts)


def _save(run: AgreementRun, **changes) -> None:
    """Write ``changes`` to the run if this execution still holds it, else Superseded."""
    if not _mine(run).update(**changes):
        raise jobs.Superseded(f"agreement run {run.pk} attempt {run.attempts}")
    for name, value in changes.items():
        setattr(run, name, value)


def _set_progress(run: AgreementRun, progress: float) -> None:
    _save(run, progress=round(min(max(progress, 0.0), 1.0), 4))


def fail_agreement_run(run_id: int, message: str, *, attempt: int | None = None) -> bool:
    """Mark the run failed with a message a person can act on; with ``attempt``, only if
    that execution still holds the run. Returns whether the run was marked failed."""
    qs = AgreementRun.objects.filter(pk=run_id).exclude(status=RunStatus.SUCCEEDED)
    if attempt is not None:
        qs = qs.filter(attempts=attempt)
    if not qs.update(
        status=RunStatus.FAILED, error=message[:4000], finished_at=timezone.now(), phase=""
    ):
        return False
    AgreementRunChunk.objects.filter(run_id=run_id).delete()
    run = AgreementRun.objects.select_related("project").filter(pk=run_id).first()
    if run is not None:
        _lineage(run, "FAIL", error=message)
    return True


def _error_message(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


def _claim(run_id: int) -> AgreementRun | None:
    """Take a queued run for this execution; None if it is not queued (finished, or held
    by another execution: a redelivered message is then a no-op)."""
    now = timezone.now()
    claimed = AgreementRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        phase="plan",
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=now,
        progress=0.01,
        error="",
    )
    if not claimed:
        return None
    return AgreementRun.objects.select_related("project").get(pk=run_id)


def execute_agreement_run(
    run_id: int,
    *,
    dispatch_chunks: Callable[[int, int, list[int]], None] | None = None,
) -> AgreementRun:
    """Run an agreement job: status running, progress, results, then succeeded or failed.

    Small projects (at most ``chunk_items`` items; param, else the setting
    ``CONCORD_AGREEMENT_CHUNK_ITEMS``) are computed in one pass. Larger ones are split
    into item-id ranges, stored as pending chunks: ``dispatch_chunks(run_id, attempt,
    [index, ...])`` hands them to parallel workers (Celery tasks calling
    :func:`compute_agreement_chunk`; the one that completes the last chunk finalizes);
    without it the chunks are computed here one by one, through the same serialization,
    which is what makes the chunked path testable.

    A run that is not queued is returned unchanged: it finished, or another execution
    holds it (a redelivered message); the reaper recovers runs whose execution died.
    """
    run = _claim(run_id)
    if run is None:
        return AgreementRun.objects.select_related("project").get(pk=run_id)
    t0 = time.perf_counter()
    with jobs.Heartbeat(_mine(run)) as heartbeat:
        try:
            project = run.project
            _lineage(run, "START")
            # Transcripts and boxes are computed in one pass (their statistics do not chunk).
            one_pass_only = _is_transcription(project) or project.task_type == TaskType.DETECTION
            ranges = [] if one_pass_only else _plan_ranges(project, run.params)
            chunked = len(ranges) > 1
            # A single pass plans from its own scan (labelers, label count); chunks must
            # agree on the labeler codes before they start, so a chunked run (and a
            # transcript or box run) reads them first, in one GROUP BY over the partial
            # index.
            labeler_ids, version = (
                _labelers_and_version(project.pk) if chunked or one_pass_only else (None, None)
            )
            with transaction.atomic():
                _save(
                    run,
                    data_version={**version, "labeler_ids": labeler_ids} if version else {},
                    n_chunks=max(len(ranges), 1),
                    timings={"plan_s": round(time.perf_counter() - t0, 3)},
                    progress=0.05,
                    phase="chunks" if chunked else "single",
                )
                AgreementRunChunk.objects.filter(run=run).delete()
                if chunked:
                    AgreementRunChunk.objects.bulk_create(
                        AgreementRunChunk(
                            run=run,
                            index=index,
                            first_item_id=first,
                            last_item_id=last,
                            payload=b"",
                            attempt=run.attempts,
                            state=ChunkState.PENDING,
                        )
                        for index, first, last in ranges
                    )
            if not chunked:
                return _single_pass(run, heartbeat)
        except jobs.Superseded:
            return AgreementRun.objects.get(pk=run_id)
        except Exception as exc:
            logger.exception("agreement run %s failed", run_id)
            fail_agreement_run(run_id, _error_message(exc), attempt=run.attempts)
            return AgreementRun.objects.get(pk=run_id)
    indices = [index for index, _, _ in ranges]
    if dispatch_chunks is not None:
        dispatch_chunks(run.pk, run.attempts, indices)
    else:
        for index in indices:
            compute_agreement_chunk(run_id=run.pk, attempt=run.attempts, index=index)
    return AgreementRun.objects.get(pk=run_id)


def _plan_ranges(project: Project, params: dict) -> list[tuple[int, int, int]]:
    """The item-id ranges of a run: one (a single pass) unless splitting pays.

    ``chunk_items`` in the params is obeyed as asked. Otherwise a run is split when
    more than one worker process can take its chunks (``CONCORD_AGREEMENT_PARALLEL_WORKERS``,
    the deployment's worker processes; 1 for the embedded default) and it has at least
    ``CONCORD_AGREEMENT_CHUNK_ITEMS`` items per chunk, into one chunk per worker (chunks
    beyond the workers only add serialization and a merge, which is why the benchmark
    found the chunked path slower than one pass on one machine) -- but never into chunks
    of more than ``CONCORD_AGREEMENT_MAX_CHUNK_ITEMS`` items, whatever the workers: a
    chunk's scan and statistics hold a few hundred bytes per label at once, so that cap
    is what bounds a chunk task's memory (at 5 labels an item, 200,000 items ~ 250 MB).
    """
    explicit = params.get("chunk_items")
    if explicit:
        return _item_ranges(project, explicit)
    workers = int(getattr(settings, "CONCORD_AGREEMENT_PARALLEL_WORKERS", 1))
    n_items = Item.objects.filter(project=project).count()
    n_chunks = min(workers, n_items // max(chunk_items_setting(), 1)) if workers > 1 else 1
    n_chunks = max(n_chunks, -(-n_items // max(max_chunk_items_setting(), 1)))
    if n_chunks <= 1:
        return []
    return _item_ranges(project, -(-n_items // n_chunks))


def _item_ranges(project: Project, chunk_items: int) -> list[tuple[int, int, int]]:
    """``[(index, first_item_id, last_item_id)]`` covering the project's items."""
    return [
        (index, first, last)
        for index, (first, last) in enumerate(item_id_ranges(project.pk, chunk_items))
    ]


def _max_annotation_id(project_id: int) -> int | None:
    table = connection.ops.quote_name(Annotation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX(id) FROM {table} WHERE project_id = %s AND is_current",  # noqa: S608
            [project_id],
        )
        return cursor.fetchone()[0]


def _single_pass(run: AgreementRun, heartbeat: jobs.Heartbeat) -> AgreementRun:
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
    # Read before the scan: a label added in between makes the run look stale (it is
    # compared with the project's current values), never fresher than it is.
    max_id = _max_annotation_id(project.pk)
    chunk = chunk_stats(project, level, classes, None, None, None)
    labeler_ids = chunk.labeler_ids.tolist()
    _save(
        run,
        data_version={
            "max_annotation_id": max_id if chunk.n_scanned else None,
            "n_annotations": chunk.n_scanned,
            "labeler_ids": labeler_ids,
        },
    )
    timings = {"scan_s": round(time.perf_counter() - t0, 3)}
    jobs.failpoint("agreement.single")
    heartbeat.check()
    _set_progress(run, 0.4)
    results, metric_timings = metrics_part(run, chunk, classes)
    chunk.guideline = None  # read by the slices only
    jobs.release_freed_memory()  # the metrics' temporaries, before consensus
    _set_progress(run, 0.7)
    consensus, consensus_timings = consensus_part(run, chunk, classes)
    del chunk  # the labels' arrays, freed before flags load them again (see _complete)
    return _complete(run, results, consensus, {**timings, **metric_timings, **consensus_timings})


def compute_agreement_chunk(*, run_id: int, attempt: int, index: int) -> int | None:
    """Statistics of one pending chunk of the run's execution ``attempt``, stored on its
    row (a redelivered or re-sent chunk replaces its payload, never adds a row); the call
    that completes the last chunk then finalizes the run (:func:`finalize_agreement_run`).

    Returns the number of labels in the chunk, or None if there was nothing to do (the
    run or the chunk is not this execution's to compute).
    """
    run = (
        AgreementRun.objects.select_related("project")
        .filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt)
        .first()
    )
    if run is None:
        return None
    chunk_row = AgreementRunChunk.objects.filter(
        run_id=run_id, index=index, attempt=attempt, state=ChunkState.PENDING
    )
    if not chunk_row.update(
        state=ChunkState.RUNNING, tries=F("tries") + 1, heartbeat_at=timezone.now()
    ):
        return None  # done, or being computed by a live execution
    row = AgreementRunChunk.objects.get(run_id=run_id, index=index)
    held = AgreementRunChunk.objects.filter(pk=row.pk, attempt=attempt, state=ChunkState.RUNNING)
    with jobs.Heartbeat(_mine(run), held) as heartbeat:
        try:
            level = run.params["level"]
            classes = class_map(run.project, level)
            labeler_ids = np.asarray(run.data_version.get("labeler_ids", []), dtype=np.int64)
            chunk = chunk_stats(
                run.project, level, classes, labeler_ids, row.first_item_id, row.last_item_id
            )
            jobs.failpoint("agreement.chunk")
            heartbeat.check()
            stored = held.update(
                n_annotations=chunk.stats.n_annotations,
                payload=chunk_to_bytes(chunk),
                state=ChunkState.DONE,
                heartbeat_at=timezone.now(),
            )
            if not stored:
                return None
            share = 0.45 / max(run.n_chunks, 1)
            _mine(run).update(progress=F("progress") + share)
        except jobs.Superseded:
            return None
        except Exception as exc:
            logger.exception("agreement run %s chunk %s failed", run_id, index)
            fail_agreement_run(
                run_id,
                f"chunk {index} (items {row.first_item_id}..): " + _error_message(exc),
                attempt=attempt,
            )
            return None
    finalize_agreement_run(run_id=run_id, attempt=attempt)
    return chunk.stats.n_annotations


def finalize_agreement_run(*, run_id: int, attempt: int) -> AgreementRun:
    """Once every chunk of execution ``attempt`` is done: merge their statistics, compute
    metrics, slices and consensus, and complete the run. Exactly one caller gets to do it
    (the phase moves from ``chunks`` to ``final`` in one UPDATE); the others return."""
    pending = (
        AgreementRunChunk.objects.filter(run_id=run_id, attempt=attempt)
        .exclude(state=ChunkState.DONE)
        .exists()
    )
    moved = not pending and AgreementRun.objects.filter(
        pk=run_id, status=RunStatus.RUNNING, attempts=attempt, phase="chunks"
    ).update(phase="final", heartbeat_at=timezone.now())
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    if not moved:
        return run
    with jobs.Heartbeat(_mine(run)) as heartbeat:
        part = "merge"
        try:
            t0 = time.perf_counter()
            rows = list(
                AgreementRunChunk.objects.filter(run=run, attempt=attempt)
                .order_by("index")
                .values_list("pk", "n_annotations")
            )
            if len(rows) != run.n_chunks:
                raise RuntimeError(f"{len(rows)} of {run.n_chunks} chunks were computed")
            merged = _merge_stored_chunks(run, [pk for pk, _ in rows], sum(n for _, n in rows))
            jobs.release_freed_memory()  # the payloads read one by one (24 MB each at 10M)
            classes = class_map(run.project, run.params["level"])
            timings = {"merge_s": round(time.perf_counter() - t0, 3)}
            jobs.failpoint("agreement.final")
            heartbeat.check()
            _set_progress(run, 0.55)
            part = "metrics"
            results, metric_timings = metrics_part(run, merged, classes)
            merged.guideline = None  # read by the slices only
            jobs.release_freed_memory()  # the metrics' temporaries, before consensus
            _set_progress(run, 0.75)
            part = "consensus"
            consensus, consensus_timings = consensus_part(run, merged, classes)
            del merged  # freed before flags load the labels again (see _complete)
            done = _complete(
                run, results, consensus, {**timings, **metric_timings, **consensus_timings}
            )
            AgreementRunChunk.objects.filter(run=run).delete()
            return done
        except jobs.Superseded:
            return AgreementRun.objects.get(pk=run_id)
        except Exception as exc:
            logger.exception("agreement run %s failed in %s", run_id, part)
            fail_agreement_run(run_id, f"{part}: " + _error_message(exc), attempt=attempt)
            return AgreementRun.objects.get(pk=run_id)


def _merge_stored_chunks(run: AgreementRun, chunk_pks: list[int], n_labels: int):
    """The merged statistics of the run's stored chunks (in index order). Categorical
    runs read one chunk's payload at a time and merge it in place
    (:func:`~consistency.chunks.merge_in_order`), so the worker never holds every
    payload and every decoded chunk at once; interval and ratio runs (whose value points
    are unified across chunks) decode them all and merge as before."""

    def load(pk: int):
        payload = AgreementRunChunk.objects.filter(pk=pk).values_list("payload", flat=True).get()
        return chunk_from_bytes(payload)

    if run.params["level"] in ("nominal", "ordinal"):
        return merge_in_order((load(pk) for pk in chunk_pks), n_labels)
    return merge_chunks([load(pk) for pk in chunk_pks])


# ------------------------------------------------------------------ the reaper


def _send(task_name: str, *args) -> None:
    from consistency import tasks

    getattr(tasks, task_name).delay(*args)


def reap_stalled_agreement_runs() -> dict:
    """Find runs whose worker stopped heartbeating and recover them (Celery beat).

    - queued for longer than the stale limit: its message may have died with a worker
      that had reserved it; send it again (a duplicate is a no-op: the run is claimed
      once);
    - running, chunk phase: chunks whose execution stopped heartbeating go back to
      pending (at most ``CONCORD_JOB_MAX_ATTEMPTS`` tries each) and every pending chunk
      is sent again; a run whose chunks are all done is finalized;
    - running, any other phase: re-queued as a new execution (chunks and partial
      consensus are replaced, never added to), or failed with the reason once it has
      used its attempts.

    Returns counts per action, for the log.
    """
    cutoff = jobs.stale_before()
    counts = {"resent": 0, "requeued": 0, "failed": 0, "chunks_resent": 0}
    stalled = AgreementRun.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff),
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
    ).defer("results")
    for run in stalled:
        still = AgreementRun.objects.filter(
            pk=run.pk, status=run.status, attempts=run.attempts, heartbeat_at=run.heartbeat_at
        )
        if run.status == RunStatus.QUEUED:
            if still.update(heartbeat_at=timezone.now()):
                _send("run_agreement", run.pk)
                counts["resent"] += 1
        elif run.phase == "chunks":
            action = _reap_chunks(run, still, cutoff)
            counts[action] = counts.get(action, 0) + 1
        else:
            action = _requeue_or_fail(
                run,
                still,
                f"the worker executing it stopped responding (no heartbeat since "
                f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC, in phase {run.phase or 'plan'})",
            )
            counts[action] += 1
    if any(counts.values()):
        logger.warning("agreement run reaper: %s", counts)
    return counts


def _requeue_or_fail(run: AgreementRun, still, why: str) -> str:
    if run.attempts >= jobs.max_attempts():
        message = f"{why}; gave up after {run.attempts} attempts"
        if still.update(status=RunStatus.FAILED, error=message, finished_at=timezone.now()):
            fail_agreement_run(run.pk, message)  # chunks, lineage
            return "failed"
        return "skipped"
    with transaction.atomic():
        if not still.update(
            status=RunStatus.QUEUED,
            phase="",
            progress=0.0,
            heartbeat_at=timezone.now(),
            error=f"re-queued (attempt {run.attempts + 1}): {why}",
        ):
            return "skipped"
        AgreementRunChunk.objects.filter(run=run).delete()
        transaction.on_commit(lambda: _send("run_agreement", run.pk))
    return "requeued"


def _reap_chunks(run: AgreementRun, still, cutoff) -> str:
    chunks = list(AgreementRunChunk.objects.filter(run=run).defer("payload").order_by("index"))
    if not chunks or any(c.attempt != run.attempts for c in chunks):
        return _requeue_or_fail(run, still, "its chunks were lost")
    resend = []
    for c in chunks:
        stalled = c.state == ChunkState.RUNNING and (
            c.heartbeat_at is None or c.heartbeat_at < cutoff
        )
        if stalled and c.tries >= jobs.max_attempts():
            why = f"chunk {c.index} lost its worker {c.tries} times"
            return "failed" if fail_agreement_run(run.pk, why, attempt=run.attempts) else "skipped"
        if stalled:
            AgreementRunChunk.objects.filter(
                pk=c.pk, state=ChunkState.RUNNING, heartbeat_at=c.heartbeat_at
            ).update(state=ChunkState.PENDING)
            resend.append(c.index)
        elif c.state == ChunkState.PENDING:
            resend.append(c.index)
    if not still.update(heartbeat_at=timezone.now()):
        return "skipped"
    if all(c.state == ChunkState.DONE for c in chunks):
        _send("finalize_agreement_run", run.pk, run.attempts)
        return "finalize_resent"
    for index in resend:
        _send("compute_agreement_chunk", run.pk, run.attempts, index)
    return "chunks_resent"


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
        phase="",
        error="",
    )
    _lineage(run, "COMPLETE")
    # The final stage's arrays are gone: give their pages back before flags load the
    # labels again, so that the two peaks do not stack.
    jobs.release_freed_memory()
    try:
        # Flags are advice on top of the results: a fault here must not fail the run.
        flags.generate_flags(run)
    except Exception:
        logger.exception("flag generation failed for agreement run %s", run.pk)
    return run
