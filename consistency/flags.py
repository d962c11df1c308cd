"""Flag detection: the adapter between the database and the pure detection core.

Loads a project's current labels for :mod:`consistency.detection`, stores what it finds
as flags, and hooks into the consistency engine. The SME's decisions on flags live in
the ``review`` app (``review.services`` / ``review.selectors``).

Hooks for the consistency engine
--------------------------------
* ``generate_flags(run)`` — call at the end of a successful ``execute_agreement_run``;
  supersedes the open flags of earlier runs of the project (never deletes them).
* ``labeling.selectors.sme_overrides(project) -> {item_id: class_id}`` — SME decisions
  that override the computed consensus (class ids already mapped through merges).
* ``labeling.selectors.effective_class_map(project) -> {class_id: class_id}`` — merges
  in force.
* ``consistency.selectors.current_normalization_rules(project) -> [rule dicts]`` — apply
  to transcripts with ``consistency.normalization.normalize_texts(texts, rules)`` before
  agreement (``current_normalization(project)`` adds the version, to record in the run).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from consistency import box_runs, detection, normalization
from consistency.models import (
    AgreementRun,
    Flag,
    FlagKind,
    FlagStatus,
)
from consistency.selectors import current_normalization_rules
from labeling.models import (
    Annotation,
    Item,
    ItemDecision,
    MeasurementLevel,
    Project,
    TaskType,
)
from labeling.selectors import effective_class_map
from provenance import events

User = get_user_model()

DEFAULT_SLICE_KEYS = ("camera", "camera_settings", "factory", "line", "phone_model", "device")
GUIDELINE_SLICE = "guideline_version"


# --------------------------------------------------------------------------- loading
def _slice_value(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return ", ".join(f"{k}={value[k]}" for k in sorted(value))
    if isinstance(value, list):
        return None
    return str(value)


def normalized_transcripts(texts: Sequence[str], *, project: Project) -> list[str]:
    """Transcripts as agreement compares them: the project's published normalisation rules
    first, then the metrics' default normalisation (case, punctuation, whitespace)."""
    from consistency.metrics import normalize_transcript

    rules = current_normalization_rules(project)
    return [normalize_transcript(t) for t in normalization.normalize_texts(list(texts), rules)]


def _iso_week(value) -> str | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        year, week, _ = pd.Timestamp(value[:10]).isocalendar()
    except ValueError:
        return None
    return f"{year}-W{week:02d}"


def load_label_data(
    project: Project, *, slice_keys: Sequence[str] | None = None
) -> detection.LabelData:
    """The project's current labels as :class:`~consistency.detection.LabelData`.

    Item keys are external ids, labeler names usernames. Classification / rating: class
    keys after merges. Transcription: the normalised transcript text (SME rules first,
    then the metrics' default normalisation), so identical transcripts count as one value.
    Slices: the metadata ``slice_keys`` (default ``DEFAULT_SLICE_KEYS``; the engine's
    special ``tag`` and ``captured_week`` too) plus the guideline version most of the
    item's labels were given under.
    """
    rows = list(
        Annotation.objects.filter(project=project, is_current=True)
        .order_by("item_id", "labeler_id")
        .values_list(
            "item__external_id",
            "labeler__username",
            "label_class_id",
            "value_text",
            "created_at",
            "guideline__version",
        )
    )
    borderline = None
    if project.task_type == TaskType.TRANSCRIPTION:
        # Transcripts are coded per item ("#1" = the item's first distinct normalised
        # text, ...): agreement within an item is exact match, and the class list stays
        # as short as the largest number of variants on one item.
        normalized = normalized_transcripts([r[3] for r in rows], project=project)
        local: dict[tuple, int] = {}
        per_item: dict[str, list[str]] = defaultdict(list)
        for r, text in sorted(zip(rows, normalized, strict=True), key=lambda x: (x[0][0], x[1])):
            variants = per_item[r[0]]
            if text not in variants:
                variants.append(text)
            local[(r[0], text)] = variants.index(text)
        values = [f"#{local[(r[0], t)] + 1}" for r, t in zip(rows, normalized, strict=True)]
        n_variants = max((len(v) for v in per_item.values()), default=0)
        classes = [f"#{k + 1}" for k in range(n_variants)]
        ranks = None
    else:
        mapping = effective_class_map(project)
        active = list(project.classes.filter(merged_into__isnull=True).order_by("order", "id"))
        key_of = {c.pk: c.key for c in active}
        keep = [r for r in rows if r[2] is not None]
        rows = keep
        values = [key_of[mapping.get(r[2], r[2])] for r in rows]
        classes = [c.key for c in active]
        ranks = [c.rank for c in active]
        borderline = next((c.key for c in active if c.is_borderline), None)
    if not rows:
        return detection.LabelData(
            items=_empty(),
            labelers=_empty(),
            values=_empty(),
            classes=classes,
            item_keys=[],
            labeler_names=[],
        )
    df = pd.DataFrame(
        {
            "item": [r[0] for r in rows],
            "labeler": [r[1] for r in rows],
            "value": values,
            "created_at": [r[4] for r in rows],
            "guideline_version": [r[5] for r in rows],
        }
    )
    keys = sorted(set(df["item"]))
    meta = dict(
        Item.objects.filter(project=project, external_id__in=keys).values_list(
            "external_id", "metadata"
        )
    )
    brightness = dict(
        Item.objects.filter(project=project, external_id__in=keys).values_list(
            "external_id", "mean_brightness"
        )
    )
    slice_keys = list(slice_keys) if slice_keys else list(DEFAULT_SLICE_KEYS)
    item_slices: dict[str, dict] = {}
    for key in slice_keys:
        col = {e: _slice_value((meta.get(e) or {}).get(key)) for e in keys}
        if any(v is not None for v in col.values()):
            item_slices[key] = col
    if "captured_week" in slice_keys:
        weeks = {e: _iso_week((meta.get(e) or {}).get("captured_at")) for e in keys}
        if any(weeks.values()):
            item_slices["captured_week"] = weeks
    if "tag" in slice_keys:
        # One slice per tag: its items against the rest (an item may carry several tags).
        for tag_name, ext in Item.tags.through.objects.filter(
            item__project=project, item__external_id__in=keys
        ).values_list("tag__name", "item__external_id"):
            item_slices.setdefault(f"tag:{tag_name}", {})[ext] = tag_name
    versions = df.dropna(subset=["guideline_version"])
    if versions["guideline_version"].nunique() > 1:
        mode = versions.groupby("item")["guideline_version"].agg(lambda s: int(s.mode().max()))
        item_slices[GUIDELINE_SLICE] = {e: f"v{v}" for e, v in mode.items()}
    numbers = {}
    if any(v is not None for v in brightness.values()):
        numbers["mean_brightness"] = brightness
    resolved = set(
        ItemDecision.objects.filter(item__project=project).values_list(
            "item__external_id", flat=True
        )
    )
    return detection.LabelData.from_frame(
        df,
        classes=classes,
        time_col="created_at",
        item_slices=item_slices,
        item_numbers=numbers,
        borderline_class=borderline,
        class_ranks=ranks,
        ordinal=project.level == MeasurementLevel.ORDINAL,
        resolved_items=sorted(resolved),
    )


def _empty():
    import numpy as np

    return np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- flags
def _signature(kind: str, classes, labeler, slice_, items, convention=None) -> str:
    if kind == FlagKind.BOX_CONVENTION:
        return f"{kind}|labeler={labeler}|convention={convention}"
    if kind == FlagKind.ITEM_DISAGREEMENT:
        return f"{kind}|items={','.join(sorted(map(str, items)))}"
    if kind == FlagKind.LABELER:
        return f"{kind}|labeler={labeler}"
    if kind == FlagKind.UNCLEAR_SLICE:
        return f"{kind}|slice={slice_['key']}={slice_['value']}" if slice_ else kind
    return f"{kind}|classes={','.join(sorted(classes))}"


@transaction.atomic
def generate_flags(run: AgreementRun) -> list[Flag]:
    """Detect ambiguity in the run's project and store it as open flags of ``run``.

    Flag history is kept: the open flags of earlier runs of the project become
    ``superseded`` (``superseded_by`` = this run's flag with the same signature, when
    there is one); resolved and dismissed flags stay as they are. Idempotent for the
    run itself: its own open flags (a retry) are replaced. ``label_error`` flags come
    from model runs, not from this detection, and are left as they are. A suggestion an
    SME dismissed before (same kind and subject) is not raised again. Thresholds come
    from ``project.flag_thresholds`` over ``detection.DEFAULT_THRESHOLDS``; metadata
    slices from ``run.params["slices"]``.
    Returns the flags created, ranked by impact.
    """
    run = AgreementRun.objects.select_related("project").get(pk=run.pk)
    project = run.project
    # Older flags to supersede: the open ones, and (on a retry of this run) those an
    # earlier attempt superseded, so they point at the retry's flags, not at nothing.
    # Label-error flags come from model runs, not from this detection: they stay.
    older_open = list(
        Flag.objects.filter(project=project, run_id__lt=run.pk)
        .filter(Q(status=FlagStatus.OPEN) | Q(status=FlagStatus.SUPERSEDED, superseded_by__run=run))
        .exclude(kind=FlagKind.LABEL_ERROR)
        .select_related("labeler")
        .prefetch_related("classes", "items")
    )
    # A retry of this run replaces its own open flags (they carry no decision).
    Flag.objects.filter(project=project, status=FlagStatus.OPEN, run=run).exclude(
        kind=FlagKind.LABEL_ERROR
    ).delete()
    thresholds = {**detection.DEFAULT_THRESHOLDS, **(project.flag_thresholds or {})}
    if project.task_type == TaskType.DETECTION:
        # Boxes: conventions and count disagreements found by the run (box_runs).
        found = box_runs.box_flags(run)
        labeler_names = sorted({f["labeler"] for f in found if f["labeler"]})
    else:
        data = load_label_data(project, slice_keys=(run.params or {}).get("slices"))
        labeler_names = data.labeler_names
        if project.task_type == TaskType.TRANSCRIPTION:
            # Per-item codes are not classes: only "which items" and "which labelers" apply.
            thresholds["labeler_habit_share"] = 2.0
            found = detection.detect_flags(
                data, thresholds, results=run.results, kinds={"item_disagreement", "labeler"}
            )
            _transcript_evidence(project, found)
        else:
            found = detection.detect_flags(data, thresholds, results=run.results)
    dismissed = {
        _flag_signature(f)
        for f in Flag.objects.filter(project=project, status=FlagStatus.DISMISSED)
        .select_related("labeler")
        .prefetch_related("classes", "items")
    }
    item_ids = dict(project.items.values_list("external_id", "id"))
    class_ids = dict(project.classes.values_list("key", "id"))
    user_ids = dict(User.objects.filter(username__in=labeler_names).values_list("username", "id"))
    flags, links = [], []
    for f in found:
        sig = _signature(
            f["kind"],
            f["classes"],
            f["labeler"],
            f["slice"],
            f["items"],
            f["evidence"].get("convention"),
        )
        if sig in dismissed:
            continue
        flag = Flag(
            project=project,
            run=run,
            kind=f["kind"],
            impact=f["impact"],
            suggested_action=f["suggested_action"][:40],
            summary=f["summary"][:300],
            evidence={**f["evidence"], "signature": sig},
            labeler_id=user_ids.get(f["labeler"]) if f["labeler"] else None,
            slice_key=(f["slice"] or {}).get("key", "")[:80],
            slice_value=(f["slice"] or {}).get("value", "")[:200],
        )
        flags.append(flag)
        links.append(
            (
                [item_ids[e] for e in f["items"] if e in item_ids],
                [class_ids[c] for c in f["classes"] if c in class_ids],
            )
        )
    Flag.objects.bulk_create(flags)
    item_rows, class_rows = [], []
    for flag, (items, classes) in zip(flags, links, strict=True):
        item_rows += [Flag.items.through(flag_id=flag.pk, item_id=i) for i in items]
        class_rows += [Flag.classes.through(flag_id=flag.pk, labelclass_id=c) for c in classes]
    Flag.items.through.objects.bulk_create(item_rows, batch_size=2000)
    Flag.classes.through.objects.bulk_create(class_rows, batch_size=2000)
    _supersede(older_open, new_flags=flags)
    events.flags_generated(
        project_id=project.pk,
        agreement_run_id=run.pk,
        after={
            "n_flags": len(flags),
            "by_kind": {k: sum(1 for f in flags if f.kind == k) for k in FlagKind.values},
        },
    )
    return flags


def _flag_signature(flag: Flag) -> str:
    """The stored flag's subject, as :func:`_signature` computes it for a detected one."""
    return _signature(
        flag.kind,
        [c.key for c in flag.classes.all()],
        flag.labeler.get_username() if flag.labeler_id else None,
        {"key": flag.slice_key, "value": flag.slice_value} if flag.slice_key else None,
        [i.external_id for i in flag.items.all()],
        (flag.evidence or {}).get("convention"),
    )


def _supersede(older_open: list[Flag], *, new_flags: list[Flag]) -> None:
    """Mark the older runs' open flags ``superseded``, each pointing at the new flag with
    the same signature when the new run raised one (``None`` otherwise)."""
    if not older_open:
        return
    successor = {f.evidence["signature"]: f.pk for f in new_flags}
    now = timezone.now()
    for flag in older_open:
        flag.status = FlagStatus.SUPERSEDED
        flag.superseded_by_id = successor.get(_flag_signature(flag))
        flag.closed_at = flag.closed_at or now
    Flag.objects.bulk_update(older_open, ["status", "superseded_by", "closed_at"])


def _transcript_evidence(project: Project, found: list[dict]) -> None:
    """Replace per-item codes in transcription flags by the transcripts themselves."""
    wanted = {e for f in found for e in f["items"]}
    rows = list(
        Annotation.objects.filter(
            project=project, is_current=True, item__external_id__in=wanted
        ).values_list("item__external_id", "labeler__username", "value_text")
    )
    normalized = normalized_transcripts([r[2] for r in rows], project=project)
    by_item: dict[str, list[dict]] = defaultdict(list)
    for (ext, labeler, text), norm in zip(rows, normalized, strict=True):
        by_item[ext].append({"labeler": labeler, "value": text, "normalized": norm})
    for f in found:
        f["classes"] = []
        if f["kind"] != "item_disagreement":
            continue
        labels = sorted(by_item.get(f["items"][0], []), key=lambda x: x["labeler"])
        dist: dict[str, int] = {}
        for label in labels:
            dist[label["normalized"]] = dist.get(label["normalized"], 0) + 1
        f["evidence"]["labels"] = labels
        f["evidence"]["distribution"] = dist
        f["summary"] = (
            f"{len(dist)} different transcripts from {len(labels)} labelers (after normalisation)"
        )
