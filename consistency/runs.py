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
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.db.models.fields.json import KT
from django.utils import timezone

from consistency import normalization, review
from consistency.chunks import (
    ChunkStats,
    chunk_from_bytes,
    chunk_stats,
    chunk_to_bytes,
    merge_chunks,
)
from consistency.class_map import ClassMap, class_map
from consistency.metrics import (
    AgreementStats,
    dawid_skene,
    majority_consensus,
    normalization_rules,
    normalize_transcript,
    slice_summary,
    summarize,
    transcription_agreement,
)
from consistency.models import (
    AgreementRun,
    AgreementRunChunk,
    Consensus,
    ConsensusStatus,
    RunStatus,
)
from consistency.run_params import SPECIAL_SLICES, chunk_items_setting, validate_params
from consistency.scan import scan_annotations
from labeling.models import (
    Annotation,
    GoldLabel,
    Guideline,
    Item,
    Project,
    TaskType,
)
from provenance import lineage

logger = logging.getLogger(__name__)
User = get_user_model()

MAX_SLICE_VALUES = 60
MISSING = "(missing)"


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


def sme_overrides(project: Project) -> dict[int, int]:
    """``{item_id: label_class_id}`` decided by an SME (already mapped through merges);
    they override every consensus method."""
    return review.sme_overrides(project)


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


def data_version(project: Project | int) -> dict:
    """Snapshot of the project's current labels: highest annotation id and count."""
    project_id = project.pk if isinstance(project, Project) else project
    agg = Annotation.objects.filter(project_id=project_id, is_current=True).aggregate(
        max_id=Max("id"), n=Count("id")
    )
    return {"max_annotation_id": agg["max_id"], "n_annotations": agg["n"]}


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
        ranges = [] if _is_transcription(project) else _item_ranges(project, chunk_items)
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
        results, consensus = _transcription_results(run, timings)
        return _complete(run, results, consensus, timings)
    level = run.params["level"]
    classes = class_map(project, level)
    chunk = chunk_stats(
        project, level, classes, np.asarray(labeler_ids, dtype=np.int64), None, None
    )
    timings = {"scan_s": round(time.perf_counter() - t0, 3)}
    _set_progress(run, 0.4)
    results, metric_timings = _metrics_part(run, chunk, classes)
    _set_progress(run, 0.7)
    consensus, consensus_timings = _consensus_part(run, chunk, classes)
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
            output, timings = _metrics_part(run, merged, classes)
        elif part == "consensus":
            output, timings = _consensus_part(run, merged, classes)
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


# ------------------------------------------------------------------ results


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
        review.generate_flags(run)
    except Exception:
        logger.exception("flag generation failed for agreement run %s", run.pk)
    return run


def _labeler_names(labeler_ids: Sequence[int]) -> list[str]:
    names = dict(User.objects.filter(pk__in=list(labeler_ids)).values_list("pk", "username"))
    return [names.get(i, f"user {i}") for i in labeler_ids]


def _gold(project: Project, level: str, classes: ClassMap) -> dict:
    rows = GoldLabel.objects.filter(item__project=project).values_list(
        "item_id", "label_class_id", "value_number"
    )
    gold = {}
    for item_id, class_id, number in rows:
        if level in ("nominal", "ordinal"):
            code = classes.code_of.get(class_id) if class_id is not None else None
            if code is not None:
                gold[int(item_id)] = code
        else:
            value = number
            if value is None and class_id is not None and class_id in classes.code_of:
                value = classes.metric_value[classes.code_of[class_id]]
            if value is not None and math.isfinite(value):
                gold[int(item_id)] = float(value)
    return gold


def _metrics_part(run, chunk: ChunkStats, classes: ClassMap) -> tuple[dict, dict]:
    """Every metric, HLP and the slices: (results without consensus, timings)."""
    project, params = run.project, run.params
    level = params["level"]
    stats = chunk.stats
    timings: dict = {}
    labeler_ids = list(run.data_version.get("labeler_ids", []))
    names = _labeler_names(labeler_ids)
    categorical = level in ("nominal", "ordinal")
    gold = _gold(project, level, classes)
    if not categorical:
        # Gold values the labels never used cannot be coded into value points.
        points = stats.value_points
        gold = {k: v for k, v in gold.items() if np.isin(v, points)}
    t0 = time.perf_counter()
    empty = stats.n_annotations == 0
    if empty:
        results = _empty_results(level)
    else:
        results = summarize(
            stats,
            classes=classes.keys if categorical else None,
            labeler_names=names,
            gold=gold or None,
            n_bootstrap=params["n_bootstrap"],
            seed=params["seed"],
        )
    ids_by_name = dict(zip(names, labeler_ids, strict=True))
    for entry in results.get("per_labeler", []):
        entry["labeler_id"] = ids_by_name.get(entry["labeler"])
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    slices = [] if empty else _slices(run, stats, chunk.guideline, gold or None, names)
    results["slices"] = slices
    results["hlp"]["per_slice"] = [
        {
            "key": s["key"],
            "value": s["value"],
            "n_items": s["n_items"],
            "hlp": s["hlp"],
            "hlp_ci": s["hlp_ci"],
            "method": s["hlp_method"],
            "reasons": {k: v for k, v in s["reasons"].items() if k.startswith("hlp")},
        }
        for s in slices
    ]
    timings["slices_s"] = round(time.perf_counter() - t0, 3)
    results["classes"] = [
        {"key": k, "name": n, "is_borderline": bool(b)}
        for k, n, b in zip(classes.keys, classes.names, classes.borderline, strict=True)
    ]
    results["merges"] = classes.merges
    results["labels_dropped"] = {
        "n": chunk.n_dropped,
        "reason": "labels without a value usable at this level (no class, or no number)",
    }
    results["task_type"] = project.task_type
    return results, timings


def _consensus_part(run, chunk: ChunkStats, classes: ClassMap) -> tuple[dict, dict]:
    """Consensus by each method, stored as Consensus rows: (summary, timings)."""
    stats = chunk.stats
    categorical = run.params["level"] in ("nominal", "ordinal")
    t0 = time.perf_counter()
    summary, blocks = (
        ({}, []) if stats.n_annotations == 0 else _consensus(run, stats, classes, categorical)
    )
    timings = {"consensus_s": round(time.perf_counter() - t0, 3)}
    t0 = time.perf_counter()
    _store_consensus(run, blocks)
    timings["store_consensus_s"] = round(time.perf_counter() - t0, 3)
    return summary, timings


def _empty_results(level: str) -> dict:
    why = "the project has no current annotations"
    return {
        "overall": {
            "krippendorff_alpha": None,
            "krippendorff_alpha_ci": None,
            "fleiss_kappa": None,
            "percent_agreement": None,
            "mean_pairwise_cohen_kappa": None,
            "n_items": 0,
            "n_annotations": 0,
            "n_labelers": 0,
            "level": level,
            "reasons": dict.fromkeys(
                (
                    "krippendorff_alpha",
                    "krippendorff_alpha_ci",
                    "fleiss_kappa",
                    "percent_agreement",
                    "mean_pairwise_cohen_kappa",
                ),
                why,
            ),
        },
        "per_class": [],
        "per_labeler": [],
        "pairwise": {"labelers": [], "cohen_kappa": [], "n_shared": [], "reasons": {}},
        "confusion": {"classes": [], "counts": [], "reasons": {"counts": why}},
        "hlp": {"value": None, "method": "pairwise", "ci": None, "reasons": {"value": why}},
    }


# ------------------------------------------------------------------ slices


def _item_metadata(project: Project, keys: Sequence[str]) -> pd.DataFrame:
    """Per item id (index): the metadata values of ``keys`` as text, in one query.

    Values are extracted by the database (JSON key transforms); ``(missing)`` where absent.
    """
    if not keys:
        return pd.DataFrame()
    names = [f"k{i}" for i in range(len(keys))]
    rows = (
        Item.objects.filter(project=project)
        .annotate(**{n: KT(f"metadata__{k}") for n, k in zip(names, keys, strict=True)})
        .values_list("id", *names)
    )
    frame = pd.DataFrame.from_records(list(rows.iterator(chunk_size=20_000)), columns=["id", *keys])
    return frame.set_index("id").fillna(MISSING).astype(str)


def _item_groups(
    run, key: str, stats: AgreementStats, names: list[str], metadata: pd.DataFrame
) -> dict[str, np.ndarray]:
    """``{slice value: item ids}`` for an item-level slice key."""
    project = run.project
    item_ids = stats.item[np.r_[True, stats.item[1:] != stats.item[:-1]]]  # sorted by item
    if key == "tag":
        through = Item.tags.through
        rows = through.objects.filter(item__project=project).values_list("item_id", "tag__name")
        groups: dict[str, list] = {}
        tagged = set()
        for item_id, tag in rows:
            groups.setdefault(tag, []).append(item_id)
            tagged.add(item_id)
        out = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        untagged = item_ids[~np.isin(item_ids, np.fromiter(tagged, dtype=np.int64))]
        out["(no tag)"] = untagged
        return out
    if key == "labeler":
        out = {}
        for code, name in enumerate(names):
            out[name] = np.unique(stats.item[stats.labeler == code])
        return out
    if key == "captured_week":
        raw = metadata["captured_at"]
        when = pd.to_datetime(raw.where(raw != MISSING), utc=True, errors="coerce")
        iso = when.dt.isocalendar()
        week = iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)
        values = week.fillna(MISSING).astype(str)
    else:
        values = metadata[key]
    groups_s = pd.Series(values.index.to_numpy(np.int64), index=values.to_numpy())
    return {str(v): g.to_numpy(np.int64) for v, g in groups_s.groupby(level=0)}


def _slice_entry(key: str, value: str, summary: dict) -> dict:
    reasons = dict(summary.get("reasons", {}))
    hlp = summary["hlp"]
    for k, v in hlp.get("reasons", {}).items():
        reasons[f"hlp_{k}" if k != "value" else "hlp"] = v
    if summary["krippendorff_alpha"] is not None and summary["krippendorff_alpha_ci"] is None:
        reasons.setdefault("krippendorff_alpha_ci", "no bootstrap requested (n_bootstrap=0)")
    return {
        "key": key,
        "value": value,
        "n_items": summary["n_items"],
        "n_annotations": summary["n_annotations"],
        "krippendorff_alpha": summary["krippendorff_alpha"],
        "krippendorff_alpha_ci": summary["krippendorff_alpha_ci"],
        "percent_agreement": summary["percent_agreement"],
        "hlp": hlp["value"],
        "hlp_ci": hlp["ci"],
        "hlp_method": hlp["method"],
        "hlp_n_items": hlp.get("n_items"),
        "reasons": reasons,
    }


def _slices(run, stats: AgreementStats, guideline: np.ndarray, gold, names) -> list[dict]:
    params = run.params
    n_boot, seed = params["n_bootstrap"], params["seed"]
    out: list[dict] = []
    size = int(stats.item.max()) + 1 if stats.item.size else 0
    meta_keys = [k for k in params["slices"] if k not in SPECIAL_SLICES]
    if "captured_week" in params["slices"]:
        meta_keys.append("captured_at")
    metadata = _item_metadata(run.project, meta_keys)
    for key in params["slices"]:
        if key == "guideline_version":
            out += _guideline_slices(run, stats, guideline, gold, n_boot, seed)
            continue
        groups = _item_groups(run, key, stats, names, metadata)
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1].size, kv[0]))
        for value, ids in ranked[:MAX_SLICE_VALUES]:
            mask = np.zeros(size, dtype=bool)
            mask[ids[ids < size]] = True
            summary = slice_summary(stats, mask, gold=gold, n_bootstrap=n_boot, seed=seed)
            if summary["n_items"] == 0:
                continue
            out.append(_slice_entry(key, value, summary))
        if len(ranked) > MAX_SLICE_VALUES:
            out.append(
                {
                    "key": key,
                    "value": None,
                    "n_items": None,
                    "krippendorff_alpha": None,
                    "krippendorff_alpha_ci": None,
                    "hlp": None,
                    "hlp_ci": None,
                    "hlp_method": None,
                    "reasons": {
                        "value": f"{len(ranked) - MAX_SLICE_VALUES} more values of {key!r} "
                        f"not shown (only the {MAX_SLICE_VALUES} largest)"
                    },
                }
            )
    return out


def _guideline_slices(run, stats, guideline, gold, n_boot, seed) -> list[dict]:
    """Label-level slice: the labels made under each guideline version."""
    versions = dict(Guideline.objects.filter(project=run.project).values_list("pk", "version"))
    out = []
    for gid in np.unique(guideline):
        sel = guideline == gid
        label = f"v{versions[int(gid)]}" if int(gid) in versions else "(none)"
        sub = AgreementStats.from_labels(
            stats.item[sel],
            stats.labeler[sel],
            stats.value[sel],
            level=stats.level,
            n_classes=stats.n_values if stats.categorical else None,
            value_points=None if stats.categorical else stats.value_points,
            n_labelers=stats.n_labelers,
        )
        mask = np.ones(int(sub.item.max()) + 1 if sub.item.size else 0, dtype=bool)
        summary = slice_summary(sub, mask, gold=gold, n_bootstrap=n_boot, seed=seed)
        entry = _slice_entry("guideline_version", label, summary)
        entry["definition"] = "labels made under this guideline version (label-level slice)"
        out.append(entry)
    out.sort(key=lambda e: (len(e["value"]), e["value"]))
    return out


# ------------------------------------------------------------------ consensus


@dataclass
class ConsensusBlock:
    """One method's consensus for every item of a run, as aligned columns (shape (I,))."""

    method: str
    item_ids: np.ndarray
    class_ids: np.ndarray  # -1: no label (disputed)
    support: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    n_labels: np.ndarray
    status: np.ndarray  # of str


CONSENSUS_INSERT_BATCH = 100_000


def _store_consensus(run: AgreementRun, blocks: Sequence[ConsensusBlock]) -> None:
    """Replace the run's Consensus rows.

    Not ``bulk_create``: a million-label project has 400,000 consensus rows (two
    methods), and building that many model instances took ~30 s of a ~100 s benchmark
    run. On SQLite >= 3.38 each block is one ``INSERT ... SELECT`` over ``json_each`` of
    a single JSON parameter (the rows are parsed in C, ~40% faster than binding them one
    by one); elsewhere a plain ``executemany``.
    """
    table = connection.ops.quote_name(Consensus._meta.db_table)
    columns_sql = (
        f"INSERT INTO {table} (run_id, item_id, method, label_class_id, value_text, "  # noqa: S608
        "support, confidence, entropy, n_labels, status) "
    )
    use_json = connection.vendor == "sqlite" and _sqlite_has_json_arrows()
    with transaction.atomic():
        Consensus.objects.filter(run=run).delete()
        with connection.cursor() as cursor:
            for b in blocks:
                class_ids = b.class_ids.astype(object)
                class_ids[b.class_ids < 0] = None
                columns = (
                    b.item_ids.tolist(),
                    class_ids.tolist(),
                    b.support.tolist(),
                    b.confidence.tolist(),
                    b.entropy.tolist(),
                    b.n_labels.tolist(),
                    [str(x) for x in b.status],
                )
                rows = list(zip(*columns, strict=True))
                for lo in range(0, len(rows), CONSENSUS_INSERT_BATCH):
                    batch = rows[lo : lo + CONSENSUS_INSERT_BATCH]
                    if use_json:
                        cursor.execute(
                            columns_sql + "SELECT %s, r.value->>0, %s, r.value->>1, '', "
                            "r.value->>2, r.value->>3, r.value->>4, r.value->>5, r.value->>6 "
                            "FROM json_each(%s) AS r",
                            [run.pk, b.method, json.dumps(batch, allow_nan=False)],
                        )
                    else:
                        cursor.executemany(
                            columns_sql + "VALUES (%s, %s, %s, %s, '', %s, %s, %s, %s, %s)",
                            [(run.pk, r[0], b.method, *r[1:]) for r in batch],
                        )


def _sqlite_has_json_arrows() -> bool:
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 38, 0)


def _item_entropy_support(stats: AgreementStats, labels: np.ndarray, item_ids: np.ndarray):
    """Per item (sorted ids): share of labels equal to ``labels`` (shape (I,))."""
    pos = np.searchsorted(item_ids, stats.item)
    m = np.bincount(pos, minlength=item_ids.size)
    hit = stats.value == labels[pos]
    return np.bincount(pos, weights=hit, minlength=item_ids.size) / np.maximum(m, 1)


def _consensus(run, stats: AgreementStats, classes: ClassMap, categorical: bool):
    """Consensus rows (unsaved) and a summary per method."""
    project, methods = run.project, run.params["consensus"]
    overrides = sme_overrides(project)
    threshold = float((project.flag_thresholds or {}).get("item_majority_share_below", 0.67))
    summary: dict = {"methods": {}, "sme_overrides": len(overrides), "reasons": {}}
    rows: list[ConsensusBlock] = []
    if not categorical:
        summary["reasons"]["methods"] = (
            "consensus labels are computed for class labels; "
            f"this run is at the {stats.level} level"
        )
        return summary, rows
    k = len(classes.keys)
    ids = np.asarray(classes.ids, dtype=np.int64)
    maj = majority_consensus(stats.item, stats.value, n_classes=k)
    item_ids = maj["item"].to_numpy(np.int64)
    n_labels = maj["n_labels"].to_numpy(np.int64)
    entropy = maj["entropy"].to_numpy(np.float64)
    override_code = {
        int(i): classes.code_of[c] for i, c in overrides.items() if c in classes.code_of
    }

    def status_for(codes: np.ndarray, disputed: np.ndarray) -> np.ndarray:
        border = np.zeros(codes.size, dtype=bool)
        ok = codes >= 0
        border[ok] = classes.borderline[codes[ok]]
        return np.where(
            disputed,
            ConsensusStatus.DISPUTED,
            np.where(border, ConsensusStatus.BORDERLINE, ConsensusStatus.AGREED),
        )

    def build(method, codes, support, confidence, status):
        codes = codes.copy()
        status = status.astype(object)
        confidence = confidence.copy()
        if override_code:
            pos = np.searchsorted(item_ids, np.fromiter(override_code, dtype=np.int64))
            found = (pos < item_ids.size) & (
                item_ids[np.minimum(pos, item_ids.size - 1)]
                == np.fromiter(override_code, dtype=np.int64)
            )
            for p, code in zip(
                pos[found], np.array(list(override_code.values()))[found], strict=True
            ):
                codes[p], status[p], confidence[p] = code, ConsensusStatus.RESOLVED, 1.0
        counts = pd.Series(status).value_counts().to_dict()
        summary["methods"][method] = {
            "n_items": int(item_ids.size),
            **{s: int(counts.get(s, 0)) for s in ConsensusStatus.values},
        }
        rows.append(
            ConsensusBlock(
                method=method,
                item_ids=item_ids,
                class_ids=np.where(codes >= 0, ids[np.maximum(codes, 0)], -1),
                support=np.asarray(support, dtype=np.float64),
                confidence=confidence,
                entropy=entropy,
                n_labels=n_labels,
                status=status,
            )
        )

    if "majority" in methods:
        label = maj["label"].to_numpy(dtype=np.float64, na_value=np.nan)
        disputed = np.isnan(label)
        codes = np.where(disputed, -1, np.nan_to_num(label, nan=-1)).astype(np.int64)
        support = maj["support"].to_numpy(np.float64)
        build("majority", codes, support, support, status_for(codes, disputed))
        summary["methods"]["majority"]["definition"] = (
            "most frequent class; a tie at the top is disputed, never broken"
        )
    if "dawid_skene" in methods:
        ds = dawid_skene(stats.item, stats.labeler, stats.value, n_classes=k)
        if not np.array_equal(ds.items_, item_ids):
            raise RuntimeError("internal: Dawid-Skene items differ from the majority items")
        codes = ds.labels_.astype(np.int64)
        support = _item_entropy_support(stats, codes, item_ids)
        confidence = ds.confidence_.astype(np.float64)
        build("dawid_skene", codes, support, confidence, status_for(codes, confidence < threshold))
        summary["methods"]["dawid_skene"].update(
            {
                "n_iter": int(ds.n_iter_),
                "converged": bool(ds.converged_),
                "definition": (
                    "Dawid-Skene EM over per-labeler confusion matrices; disputed when the "
                    f"posterior of the most probable class is below {threshold:g} "
                    "(project threshold item_majority_share_below)"
                ),
                "priors": {
                    key: round(float(p), 6) for key, p in zip(classes.keys, ds.priors_, strict=True)
                },
            }
        )
    return summary, rows


# ------------------------------------------------------------------ transcription


def _describe_rule(rule: dict) -> str:
    kind = "regex" if rule.get("regex") else "text"
    return f"{kind} {rule.get('find', '')!r} -> {rule.get('replace', '')!r}"


def _transcription_results(run, timings: dict):
    """Transcripts: nominal agreement on normalised text, WER between labelers."""
    project, params = run.project, run.params
    t0 = time.perf_counter()
    cols = scan_annotations(project.pk, with_text=True)
    labeler_ids = np.asarray(run.data_version.get("labeler_ids", []), dtype=np.int64)
    timings["scan_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    keep = np.array([bool(t.strip()) for t in cols.text], dtype=bool)
    keep &= np.isin(cols.labeler, labeler_ids)
    texts = [t for t, k in zip(cols.text, keep, strict=True) if k]
    items = cols.item[keep]
    labs = np.searchsorted(labeler_ids, cols.labeler[keep])
    # The project's published standardisation rules first (e.g. "Umm" -> "Um"), then the
    # built-in normalisation (case, punctuation, white space).
    project_rules = review.current_normalization(project)
    texts = normalization.normalize_texts(texts, project_rules["rules"])
    normalised = [normalize_transcript(t) for t in texts]
    codes, uniques = pd.factorize(pd.Series(normalised, dtype=object), sort=True)
    order = np.lexsort((labs, items))
    stats = AgreementStats.from_labels(
        items[order],
        labs[order],
        codes[order],
        level="nominal",
        n_classes=len(uniques),
        n_labelers=int(labeler_ids.size),
    )
    names = _labeler_names(labeler_ids.tolist())
    results = summarize(
        stats,
        classes=[str(u) for u in uniques],
        labeler_names=names,
        n_bootstrap=params["n_bootstrap"],
        seed=params["seed"],
    )
    ids_by_name = dict(zip(names, labeler_ids.tolist(), strict=True))
    for entry in results["per_labeler"]:
        entry["labeler_id"] = ids_by_name.get(entry["labeler"])
    trans = transcription_agreement(items, texts)
    trans["rules"] = [
        *(
            f"project rule v{project_rules['version']}: {_describe_rule(r)}"
            for r in project_rules["rules"]
        ),
        *normalization_rules(),
    ]
    trans["project_rules_version"] = project_rules["version"]
    results["transcription"] = trans
    results["per_class"] = []
    results["confusion"] = {
        "classes": None,
        "counts": None,
        "reasons": {"counts": "transcripts have no classes: see transcription.mean_pairwise_wer"},
    }
    wer_hlp = trans["hlp"]
    results["hlp"] = {
        "value": wer_hlp["value"],
        "method": "wer",
        "ci": None,
        "definition": wer_hlp["definition"],
        "exact_match": results["overall"]["percent_agreement"],
        "normalization_rules": trans["rules"],
        "per_slice": [],
        "reasons": {
            "ci": "no bootstrap for word error rate",
            **(
                {"value": trans["reasons"]["mean_pairwise_wer"]} if wer_hlp["value"] is None else {}
            ),
        },
    }
    results["slices"] = []
    results["classes"] = []
    results["merges"] = {}
    results["task_type"] = project.task_type
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)
    consensus = {
        "methods": {},
        "reasons": {"methods": "consensus for transcripts is not computed by this run"},
    }
    return results, consensus
