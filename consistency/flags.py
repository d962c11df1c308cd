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

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from consistency import box_runs, detection, normalization
from consistency.class_map import class_map
from consistency.models import (
    AgreementRun,
    Flag,
    FlagKind,
    FlagStatus,
)
from consistency.scan import item_id_ranges, scan_annotations
from consistency.selectors import current_normalization_rules
from labeling.models import (
    Annotation,
    Guideline,
    Item,
    ItemDecision,
    MeasurementLevel,
    Project,
    TaskType,
)
from provenance import events

User = get_user_model()

DEFAULT_SLICE_KEYS = ("camera", "camera_settings", "factory", "line", "phone_model", "device")
GUIDELINE_SLICE = "guideline_version"
# The raw capture time behind the captured_week slice (not a slice itself).
CAPTURED_AT = "\0captured_at"


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

    Item keys are external ids (codes in their sorted order), labeler names usernames
    (likewise). Classification / rating: class keys after merges, labels without a class
    left out. Transcription: the normalised transcript text (SME rules first, then the
    metrics' default normalisation), so identical transcripts count as one value.
    Slices: the metadata ``slice_keys`` (default ``DEFAULT_SLICE_KEYS``; the engine's
    special ``tag`` and ``captured_week`` too) plus the guideline version most of the
    item's labels were given under.

    Read as columns (:func:`consistency.scan.scan_annotations`), never as a row object
    per label, in item-id ranges of at most ``LOAD_RANGE_ITEMS`` items (each range's
    scan, sort and copies are transient; what is kept is 28 bytes a label), and only the
    metadata keys asked for, one item at a time: memory grows with the numbers per label
    and the distinct slice values, not with Python objects per label.
    """
    transcripts = project.task_type == TaskType.TRANSCRIPTION
    parts: list[tuple] = []
    texts: list[str] = []
    for first, last in item_id_ranges(project.pk, LOAD_RANGE_ITEMS):
        cols = scan_annotations(
            project.pk,
            first_item_id=first,
            last_item_id=last,
            with_time=True,
            with_text=transcripts,
        )
        # Ranges are disjoint and increasing: sorted within each, sorted overall.
        order = np.lexsort((cols.labeler, cols.item))
        if transcripts:
            texts.extend(cols.text[i] for i in order)
            keep = order
        else:
            keep = order[cols.label_class[order] >= 0]
        parts.append(
            (
                cols.item[keep],
                _narrow(cols.labeler[keep]),
                _narrow(cols.label_class[keep]),
                _narrow(cols.guideline[keep]),
                cols.time[keep],
            )
        )
        del cols, order, keep
    item_pk, labeler_pk, class_pk, guideline_pk, times = (
        np.concatenate([part[n] for part in parts]) if parts else _empty() for n in range(5)
    )
    del parts
    borderline, ranks = None, None
    if transcripts:
        values, classes = _transcript_codes(project, item_pk, texts)
    else:
        # Codes in the classes' own order ("nominal": by order, id), merges resolved.
        codes = class_map(project, MeasurementLevel.NOMINAL)
        values = codes.codes(class_pk)
        del class_pk
        if (values < 0).any():
            raise ValueError("a label's class maps to no active class")
        classes, ranks = codes.keys, codes.ranks
        borderline = next((k for k, b in zip(codes.keys, codes.borderline, strict=True) if b), None)
    if not item_pk.size:
        return detection.LabelData(
            items=_empty(),
            labelers=_empty(),
            values=_empty(),
            classes=classes,
            item_keys=[],
            labeler_names=[],
        )
    labeler_ids, labeler_codes = np.unique(labeler_pk, return_inverse=True)
    del labeler_pk
    names = dict(User.objects.filter(pk__in=labeler_ids.tolist()).values_list("pk", "username"))
    labeler_names, labeler_order = _key_order([names[int(pk)] for pk in labeler_ids])
    labeler_codes = _renumber(labeler_order)[labeler_codes]
    # item_pk is sorted (ranges in order, each sorted): np.unique's result without a sort.
    starts = np.flatnonzero(np.r_[True, item_pk[1:] != item_pk[:-1]])
    item_ids = item_pk[starts]
    item_codes = np.zeros(item_pk.size, dtype=np.int64)
    item_codes[starts[1:]] = 1
    np.cumsum(item_codes, out=item_codes)
    del item_pk, starts
    columns = _item_columns(project, item_ids, slice_keys)
    item_keys, item_order = _key_order(columns.pop("external_id"))
    new_code = _renumber(item_order)  # position in item_ids -> item code
    item_codes = new_code[item_codes]

    def per_code(column: list) -> list:
        return [column[i] for i in item_order]

    brightness = columns.pop("mean_brightness")
    item_slices = {
        key: per_code(col) for key, col in columns.items() if any(v is not None for v in col)
    }
    versions = _guideline_versions(project, guideline_pk)
    del guideline_pk
    if len(np.unique(versions[versions >= 0])) > 1:
        mode = _mode_per_item(item_codes, versions, len(item_keys))
        item_slices[GUIDELINE_SLICE] = [None if v < 0 else f"v{v}" for v in mode.tolist()]
    numbers = {}
    if any(v is not None for v in brightness):
        numbers["mean_brightness"] = per_code(brightness)
    decided = np.fromiter(
        ItemDecision.objects.filter(item__project=project).values_list("item_id", flat=True),
        dtype=np.int64,
    )
    at = np.searchsorted(item_ids, decided)
    found = at[(at < item_ids.size) & (item_ids[np.minimum(at, item_ids.size - 1)] == decided)]
    resolved = {int(c) for c in new_code[found]}
    return detection.LabelData(
        items=item_codes,
        labelers=labeler_codes.astype(np.int64, copy=False),
        values=np.asarray(values, dtype=np.int64),
        classes=classes,
        item_keys=item_keys,
        labeler_names=labeler_names,
        times=times,
        item_slices=item_slices,
        item_numbers=numbers,
        negative_class=detection.guess_negative_class(classes),
        borderline_class=borderline,
        class_ranks=ranks,
        ordinal=project.level == MeasurementLevel.ORDINAL,
        resolved_items=frozenset(resolved),
    )


LOAD_RANGE_ITEMS = 250_000


def _narrow(pks: np.ndarray) -> np.ndarray:
    """Primary keys (or -1) as int32 when they fit: they are only compared and looked up."""
    if pks.size and (pks.max() >= 2**31 or pks.min() < -(2**31)):
        return pks
    return pks.astype(np.int32)


def _key_order(keys: list) -> tuple[list, np.ndarray]:
    """``(keys sorted as text, order)``: ``order[code]`` is the key's position in
    ``keys`` (numpy sorts the texts in C, by code point as Python does)."""
    order = np.argsort(np.asarray([str(k) for k in keys], dtype=str), kind="stable")
    return [keys[i] for i in order], order


def _renumber(order: np.ndarray) -> np.ndarray:
    """The inverse of ``order``: position -> code."""
    codes = np.empty(order.size, dtype=np.int64)
    codes[order] = np.arange(order.size)
    return codes


def _transcript_codes(project: Project, item_pk: np.ndarray, texts: list) -> tuple:
    """Transcripts coded per item (``#1`` = the item's first distinct normalised text in
    sorted order, ...): agreement within an item is exact match, and the class list stays
    as short as the largest number of variants on one item. Returns ``(codes, classes)``."""
    normalized = normalized_transcripts(texts, project=project)
    variants: dict[int, list[str]] = defaultdict(list)
    for pk, text in sorted(set(zip(item_pk.tolist(), normalized, strict=True))):
        variants[pk].append(text)
    index = {(pk, t): n for pk, vs in variants.items() for n, t in enumerate(vs)}
    codes = np.fromiter(
        (index[(pk, t)] for pk, t in zip(item_pk.tolist(), normalized, strict=True)),
        dtype=np.int64,
        count=len(normalized),
    )
    n_variants = max((len(v) for v in variants.values()), default=0)
    return codes, [f"#{k + 1}" for k in range(n_variants)]


def _item_columns(
    project: Project, item_ids: np.ndarray, slice_keys: Sequence[str] | None
) -> dict[str, list]:
    """Per item of ``item_ids`` (sorted pks), in that order: ``external_id``,
    ``mean_brightness`` and one column per metadata slice (``_slice_value``; the tags
    as ``tag:<name>`` columns; ``captured_week`` from ``captured_at``). Only the metadata
    keys asked for are read, and equal values share one string."""
    keys = list(slice_keys) if slice_keys else list(DEFAULT_SLICE_KEYS)
    meta_keys = [k for k in keys if k not in ("tag", "captured_week")]
    if "captured_week" in keys:
        meta_keys.append(CAPTURED_AT)
    fields = {
        f"m{n}": KeyTransform("captured_at" if key == CAPTURED_AT else key, "metadata")
        for n, key in enumerate(meta_keys)
    }
    n_items = int(item_ids.size)
    out: dict[str, list] = {"external_id": [None] * n_items, "mean_brightness": [None] * n_items}
    for key in meta_keys:
        out[key] = [None] * n_items
    shared: dict = {}
    weeks: dict = {}
    rows = (
        Item.objects.filter(project=project)
        .order_by()
        .annotate(**fields)
        .values_list("pk", "external_id", "mean_brightness", *fields)
    )

    def store(batch: list) -> None:
        # Positions by binary search in the sorted ids: no dict of every item (~250 MB
        # of Python objects at 2M items).
        pks = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
        at = np.minimum(np.searchsorted(item_ids, pks), max(n_items - 1, 0))
        labeled = (item_ids[at] == pks).tolist() if n_items else [False] * len(batch)
        for row, n, ok in zip(batch, at.tolist(), labeled, strict=True):
            if not ok:
                continue
            _, external_id, brightness, *meta = row
            out["external_id"][n] = external_id
            out["mean_brightness"][n] = brightness
            for key, raw in zip(meta_keys, meta, strict=True):
                value = raw if key == CAPTURED_AT else _slice_value(raw)
                out[key][n] = shared.setdefault(value, value) if value is not None else None

    batch: list = []
    for row in rows.iterator(chunk_size=20_000):
        batch.append(row)
        if len(batch) == 20_000:
            store(batch)
            batch = []
    store(batch)
    if "captured_week" in keys:
        captured = out.pop(CAPTURED_AT)
        out["captured_week"] = [
            None if v is None else _cached(weeks, v, _iso_week) for v in captured
        ]
    if "tag" in keys:
        # One slice per tag: its items against the rest (an item may carry several tags).
        tagged = list(
            Item.tags.through.objects.filter(item__project=project).values_list(
                "tag__name", "item_id"
            )
        )
        pks = np.fromiter((pk for _, pk in tagged), dtype=np.int64, count=len(tagged))
        at = np.minimum(np.searchsorted(item_ids, pks), max(n_items - 1, 0))
        labeled = (item_ids[at] == pks).tolist() if n_items else [False] * len(tagged)
        for (tag_name, _), n, ok in zip(tagged, at.tolist(), labeled, strict=True):
            if ok:
                out.setdefault(f"tag:{tag_name}", [None] * n_items)[n] = tag_name
    return out


def _cached(cache: dict, value, function):
    if value not in cache:
        cache[value] = function(value)
    return cache[value]


def _guideline_versions(project: Project, guideline_pk: np.ndarray) -> np.ndarray:
    """The version of each label's guideline, -1 for none."""
    ids = dict(Guideline.objects.filter(project=project).values_list("pk", "version"))
    # Index 0 of the lookup stands for "none" (-1 and ids beyond it); pk p is at p + 1.
    lookup = np.full(max(ids, default=0) + 2, -1, dtype=np.int64)
    for pk, version in ids.items():
        lookup[pk + 1] = version
    at = guideline_pk.astype(np.int64) + 1
    at[(at < 0) | (at >= lookup.size)] = 0
    return lookup[at]


def _mode_per_item(item_codes: np.ndarray, versions: np.ndarray, n_items: int) -> np.ndarray:
    """Per item, the guideline version most of its labels were given under (ties: the
    highest), -1 when none of its labels has one."""
    has = versions >= 0
    # One integer per (item, version): an integer sort, not a sort of 2-column records.
    base = int(versions.max()) + 1 if has.any() else 1
    key, count = np.unique(
        item_codes[has].astype(np.int64) * base + versions[has], return_counts=True
    )
    mode = np.full(n_items, -1, dtype=np.int64)
    if count.size:
        pair_item, pair_version = np.divmod(key, base)
        # Ascending by (item, count, version): the last row of an item is its mode.
        order = np.lexsort((pair_version, count, pair_item))
        items, chosen = pair_item[order], pair_version[order]
        last = np.r_[np.flatnonzero(np.diff(items)), items.size - 1]
        mode[items[last]] = chosen[last]
    return mode


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
    # Only the items the flags name (at most flag_max_items each), not the project's.
    named = {e for f in found for e in f["items"]}
    item_ids = dict(project.items.filter(external_id__in=named).values_list("external_id", "id"))
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
