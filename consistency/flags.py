"""SME review: flags from agreement runs, and the decisions that act on them.

The adapter between the database and the pure detection core
(:mod:`consistency.detection`), plus every write an SME makes from the review queue.
Writes are keyword-only, atomic, lock what they change (in pk order) and record their
provenance events in the same transaction.

Hooks for the consistency engine
--------------------------------
* ``generate_flags(run)`` — call at the end of a successful ``execute_agreement_run``;
  replaces the open flags of this and earlier runs of the project.
* ``sme_overrides(project) -> {item_id: class_id}`` — SME decisions that override the
  computed consensus (class ids already mapped through merges).
* ``effective_class_map(project) -> {class_id: class_id}`` — merges in force.
* ``current_normalization_rules(project) -> [rule dicts]`` — apply to transcripts with
  ``consistency.normalization.normalize_texts(texts, rules)`` before agreement
  (``current_normalization(project)`` adds the version, to record in the run).
* ``agreement_history(project)`` — runs with alpha, guideline version and merges in force.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from consistency import detection, normalization
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    Flag,
    FlagKind,
    FlagStatus,
    RunStatus,
)
from labeling import services as labeling_services
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    GoldLabel,
    GoldSource,
    Guideline,
    Item,
    LabelClass,
    MeasurementLevel,
    Project,
    Role,
    TaskType,
)
from labeling.selectors import role_in_project
from provenance import events
from provenance.models import Event
from review.models import Resolution, ResolutionAction

User = get_user_model()

SME_ROLES = frozenset({Role.SME, Role.MANAGER})
DEFAULT_SLICE_KEYS = ("camera", "camera_settings", "factory", "line", "phone_model", "device")
GUIDELINE_SLICE = "guideline_version"
NORMALIZATION_VERB = "normalization.published"


# --------------------------------------------------------------------------- merges
def effective_class_map(project: Project | int) -> dict[int, int]:
    """``{class id: class id it counts as}`` for every class of the project, following
    ``merged_into`` chains (a class merged into one that was merged later counts as the
    last one). Unmerged classes map to themselves."""
    project_id = project.pk if isinstance(project, Project) else project
    parent = dict(LabelClass.objects.filter(project_id=project_id).values_list("id", "merged_into"))
    out = {}
    for cid in parent:
        seen, cur = {cid}, cid
        while parent.get(cur) is not None and parent[cur] not in seen:
            cur = parent[cur]
            seen.add(cur)
        out[cid] = cur
    return out


def sme_overrides(project: Project | int) -> dict[int, int]:
    """``{item id: class id}`` decided by an SME (gold labels with source ``sme``), mapped
    through the merges in force. The consensus of these items is the SME's label."""
    project_id = project.pk if isinstance(project, Project) else project
    mapping = effective_class_map(project_id)
    rows = GoldLabel.objects.filter(
        item__project_id=project_id, source=GoldSource.SME, label_class__isnull=False
    ).values_list("item_id", "label_class_id")
    return {item_id: mapping.get(class_id, class_id) for item_id, class_id in rows}


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
        GoldLabel.objects.filter(item__project=project, source=GoldSource.SME).values_list(
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
def _signature(kind: str, classes, labeler, slice_, items) -> str:
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

    Idempotent: the open flags of this run and of earlier runs of the project (they
    carry no decision) are replaced. A suggestion an SME dismissed before (same kind and
    subject) is not raised again. Thresholds come from ``project.flag_thresholds`` over
    ``detection.DEFAULT_THRESHOLDS``; metadata slices from ``run.params["slices"]``.
    Returns the flags created, ranked by impact.
    """
    run = AgreementRun.objects.select_related("project").get(pk=run.pk)
    project = run.project
    Flag.objects.filter(project=project, status=FlagStatus.OPEN, run_id__lte=run.pk).delete()
    data = load_label_data(project, slice_keys=(run.params or {}).get("slices"))
    thresholds = {**detection.DEFAULT_THRESHOLDS, **(project.flag_thresholds or {})}
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
        _signature(
            f.kind,
            [c.key for c in f.classes.all()],
            f.labeler.get_username() if f.labeler_id else None,
            {"key": f.slice_key, "value": f.slice_value} if f.slice_key else None,
            [i.external_id for i in f.items.all()],
        )
        for f in Flag.objects.filter(project=project, status=FlagStatus.DISMISSED)
        .select_related("labeler")
        .prefetch_related("classes", "items")
    }
    item_ids = dict(project.items.values_list("external_id", "id"))
    class_ids = dict(project.classes.values_list("key", "id"))
    user_ids = dict(
        User.objects.filter(username__in=data.labeler_names).values_list("username", "id")
    )
    flags, links = [], []
    for f in found:
        sig = _signature(f["kind"], f["classes"], f["labeler"], f["slice"], f["items"])
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
    events.generic(
        verb="flags.generated",
        subject_type="agreement_run",
        subject_id=run.pk,
        project_id=project.pk,
        actor_id=None,
        after={
            "n_flags": len(flags),
            "by_kind": {k: sum(1 for f in flags if f.kind == k) for k in FlagKind.values},
        },
    )
    return flags


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


# --------------------------------------------------------------------------- resolving
MAX_RATIONALE_CHARS = 4000


def _checked_rationale(rationale: str | None) -> str:
    rationale = (rationale or "").strip()
    if not rationale:
        raise ValidationError({"rationale": "say why in a few words: a rationale is required"})
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise ValidationError(
            {"rationale": f"keep the rationale under {MAX_RATIONALE_CHARS} characters"}
        )
    return rationale


def check_can_resolve(actor: AbstractBaseUser, project: Project) -> str:
    role = role_in_project(actor, project)
    if role not in SME_ROLES:
        raise PermissionDenied(f"your role ({role}) may not resolve flags; allowed: manager, sme")
    return role


def _items_for(flag: Flag, items: Sequence | None) -> list[Item]:
    """Items named in the payload (external ids, or pks as ints), else the flag's."""
    project = flag.project
    if not items:
        return list(flag.items.order_by("pk"))
    ext = [str(x) for x in items if not isinstance(x, int)]
    pks = [x for x in items if isinstance(x, int)]
    found = list(
        Item.objects.filter(project=project, external_id__in=ext)
        | Item.objects.filter(project=project, pk__in=pks)
    )
    missing = sorted(
        (set(ext) - {i.external_id for i in found})
        | {str(p) for p in set(pks) - {i.pk for i in found}}
    )
    if missing:
        raise ValidationError({"items": f"items not in this project: {missing[:10]}"})
    return sorted(found, key=lambda i: i.pk)


def _class_by_key(project: Project, key: str | None, field: str) -> LabelClass:
    if not key:
        raise ValidationError({field: "give a class key"})
    label_class = project.classes.filter(key=key).first()
    if label_class is None:
        known = ", ".join(
            project.classes.filter(merged_into__isnull=True).values_list("key", flat=True)
        )
        raise ValidationError({field: f"unknown class {key!r}; known classes: {known}"})
    return label_class


def _latest_run(project: Project) -> AgreementRun | None:
    return (
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )


def _item_before(item: Item, run: AgreementRun | None) -> dict:
    labels = dict(
        Annotation.objects.filter(item=item, is_current=True)
        .order_by("labeler__username")
        .values_list("labeler__username", "label_class__key")
    )
    gold = GoldLabel.objects.filter(item=item).select_related("label_class").first()
    consensus = None
    if run is not None:
        row = (
            Consensus.objects.filter(run=run, item=item)
            .exclude(method=ConsensusMethod.SME)
            .select_related("label_class")
            .order_by("method")
            .first()
        )
        if row is not None:
            consensus = {
                "label": row.label_class.key if row.label_class_id else None,
                "method": row.method,
                "status": row.status,
                "run": run.pk,
            }
    return {
        "labels": labels,
        "consensus": consensus,
        "gold": (
            {"label": gold.label_class.key if gold.label_class_id else None, "source": gold.source}
            if gold
            else None
        ),
    }


def _decide_items(
    *,
    project: Project,
    items: list[Item],
    label_class: LabelClass,
    actor: AbstractBaseUser,
    rationale: str,
    flag: Flag,
    verb: str,
) -> list[dict]:
    """Final label for each item: SME gold label + consensus override + event."""
    if label_class.merged_into_id is not None:
        target = LabelClass.objects.get(pk=effective_class_map(project)[label_class.pk])
        raise ValidationError(
            {"label": f"{label_class.key!r} is merged into {target.key!r}; use {target.key!r}"}
        )
    if not items:
        raise ValidationError({"items": "this flag has no items; name the items to decide"})
    run = _latest_run(project)
    locked = list(
        Item.objects.select_for_update().filter(pk__in=[i.pk for i in items]).order_by("pk")
    )
    status = ConsensusStatus.BORDERLINE if label_class.is_borderline else ConsensusStatus.RESOLVED
    decided = []
    for item in locked:
        before = _item_before(item, run)
        labeling_services.set_gold_label(
            item=item, value=label_class.key, source=GoldSource.SME, actor=actor, reason=rationale
        )
        if run is not None:
            # The latest run's consensus shows the decision at once; the next run reads
            # it back through sme_overrides().
            Consensus.objects.update_or_create(
                run=run,
                item=item,
                method=ConsensusMethod.SME,
                defaults={
                    "label_class": label_class,
                    "support": None,
                    "confidence": 1.0,
                    "entropy": None,
                    "n_labels": len(before["labels"]),
                    "status": status,
                },
            )
        after = {"label": label_class.key, "flag": flag.pk, "status": status}
        events.generic(
            verb=verb,
            subject_type="item",
            subject_id=item.pk,
            project_id=project.pk,
            actor_id=actor.pk,
            item_id=item.pk,
            before=before,
            after=after,
            reason=rationale,
        )
        decided.append({"item": item.external_id, **after})
    return decided


def merge_classes(
    *,
    project: Project,
    class_keys: Sequence[str],
    into: str,
    actor: AbstractBaseUser,
    rationale: str,
    flag: Flag | None = None,
) -> list[LabelClass]:
    """Map every class in ``class_keys`` (other than ``into``) onto ``into``.

    Never deletes: ``merged_into`` is set, and consensus, metrics and exports apply the
    mapping from then on; :func:`unmerge_classes` undoes it. Both sides must be unmerged
    classes. One ``class.merged`` event per class.
    """
    target = _class_by_key(project, into, "into")
    keys = sorted(set(class_keys) - {into})
    if not keys:
        raise ValidationError({"into": "name a class to merge into, other than the ones merged"})
    if target.merged_into_id is not None:
        raise ValidationError({"into": f"{into!r} is itself merged into another class"})
    sources = [_class_by_key(project, k, "classes") for k in keys]
    locked = list(
        LabelClass.objects.select_for_update()
        .filter(pk__in=[c.pk for c in sources] + [target.pk])
        .order_by("pk")
    )
    by_pk = {c.pk: c for c in locked}
    merged = []
    for source in [by_pk[c.pk] for c in sorted(sources, key=lambda c: c.pk)]:
        if source.merged_into_id is not None:
            raise ValidationError({"classes": f"{source.key!r} is merged already"})
        if source.is_borderline:
            raise ValidationError({"classes": "the borderline class cannot be merged away"})
        source.merged_into = by_pk[target.pk]
        source.save(update_fields=["merged_into"])
        events.generic(
            verb="class.merged",
            subject_type="label_class",
            subject_id=source.pk,
            project_id=project.pk,
            actor_id=actor.pk,
            before={"class": source.key, "merged_into": None},
            after={
                "class": source.key,
                "merged_into": target.key,
                "flag": getattr(flag, "pk", None),
            },
            reason=rationale,
        )
        merged.append(source)
    return merged


def unmerge_classes(
    *,
    project: Project,
    class_keys: Sequence[str],
    actor: AbstractBaseUser,
    rationale: str,
    flag: Flag | None = None,
) -> list[LabelClass]:
    """Undo merges: every merged class in ``class_keys`` counts as itself again.
    Raises ValidationError when none of them is merged. One ``class.unmerged`` event each."""
    classes = [_class_by_key(project, k, "classes") for k in sorted(set(class_keys))]
    locked = list(
        LabelClass.objects.select_for_update(of=("self",))
        .filter(pk__in=[c.pk for c in classes])
        .select_related("merged_into")
        .order_by("pk")
    )
    undone = []
    for label_class in locked:
        if label_class.merged_into_id is None:
            continue
        before = {"class": label_class.key, "merged_into": label_class.merged_into.key}
        label_class.merged_into = None
        label_class.save(update_fields=["merged_into"])
        events.generic(
            verb="class.unmerged",
            subject_type="label_class",
            subject_id=label_class.pk,
            project_id=project.pk,
            actor_id=actor.pk,
            before=before,
            after={
                "class": label_class.key,
                "merged_into": None,
                "flag": getattr(flag, "pk", None),
            },
            reason=rationale,
        )
        undone.append(label_class)
    if not undone:
        raise ValidationError({"classes": "none of these classes is merged: nothing to undo"})
    return undone


def send_for_relabel(
    *,
    project: Project,
    items: list[Item],
    actor: AbstractBaseUser,
    rationale: str,
    labelers: Sequence[AbstractBaseUser] | None = None,
) -> list[Assignment]:
    """New ``relabel`` assignments for ``items`` (to ``labelers``, default everyone who
    labeled each item). Uses ``labeling.assignment.request_relabel`` when it exists."""
    if not items:
        raise ValidationError({"items": "name the items to send back"})
    try:
        from labeling.assignment import request_relabel
    except ImportError:  # pragma: no cover - the assignment service ships separately
        request_relabel = None
    if request_relabel is not None:
        return request_relabel(
            project=project,
            item_ids=[i.pk for i in items],
            labelers=labelers,
            reason=rationale,
            actor=actor,
        )
    now = timezone.now()
    created = []
    for item in sorted(items, key=lambda i: i.pk):
        target_ids = (
            [u.pk for u in labelers]
            if labelers is not None
            else list(
                Annotation.objects.filter(item=item, is_current=True)
                .order_by("labeler_id")
                .values_list("labeler_id", flat=True)
            )
        )
        Assignment.objects.filter(
            item=item, labeler_id__in=target_ids, status=AssignmentStatus.ACTIVE
        ).update(status=AssignmentStatus.CANCELLED, completed_at=now)
        created += [
            Assignment.objects.create(
                project=project,
                item=item,
                labeler_id=lid,
                reason="relabel",
                expires_at=now + timedelta(days=14),
            )
            for lid in target_ids
        ]
    return created


@transaction.atomic
def resolve_flag(
    *,
    flag: Flag,
    actor: AbstractBaseUser,
    action: str,
    rationale: str,
    label: str | None = None,
    into: str | None = None,
    items: Sequence | None = None,
    classes: Sequence[str] | None = None,
    guideline_text: str | None = None,
) -> Resolution:
    """Carry out an SME decision on ``flag`` and record it.

    ``action`` is one of ``ResolutionAction``: ``set_label`` (``label``; ``items``
    default to the flag's), ``mark_borderline`` (the project's borderline class),
    ``merge_classes`` (the flag's classes, or ``classes``, into ``into``),
    ``unmerge_classes`` (also on a resolved merge flag: undoes its merge), ``relabel``
    (new assignments; a labeler flag sends its items back to that labeler),
    ``publish_guideline`` (``guideline_text``; the items become its examples) and
    ``dismiss``. ``rationale`` is required. The flag becomes resolved (dismissed) and a
    ``flag.resolved`` (``flag.dismissed``) event records actor, before/after and
    rationale, beside the action's own events. Raises ValidationError (400) or
    PermissionDenied (403, for a role other than SME / manager).
    """
    rationale = _checked_rationale(rationale)
    if action not in ResolutionAction.values:
        raise ValidationError(
            {"action": f"unknown action {action!r}; one of {', '.join(ResolutionAction.values)}"}
        )
    flag = (
        Flag.objects.select_for_update(of=("self",))
        .select_related("project", "labeler")
        .get(pk=flag.pk)
    )
    project = flag.project
    check_can_resolve(actor, project)
    undoing = action == ResolutionAction.UNMERGE_CLASSES
    if flag.status != FlagStatus.OPEN and not undoing:
        raise ValidationError({"flag": f"this flag is {flag.status} already"})
    status_before = flag.status
    resolution = Resolution(
        project=project, flag=flag, action=action, rationale=rationale, decided_by=actor
    )
    details: dict = {}
    chosen: list[Item] = []
    flag_class_keys = [c.key for c in flag.classes.order_by("pk")]

    if action in (ResolutionAction.SET_LABEL, ResolutionAction.MARK_BORDERLINE):
        chosen = _items_for(flag, items)
        if action == ResolutionAction.SET_LABEL:
            label_class = _class_by_key(project, label, "label")
            verb = "item.resolved"
        else:
            label_class = (
                project.classes.filter(is_borderline=True, merged_into__isnull=True)
                .order_by("order", "id")
                .first()
            )
            if label_class is None:
                raise ValidationError(
                    {
                        "label": "this project has no borderline class: add one (a class with "
                        "is_borderline) first, or set a label instead"
                    }
                )
            verb = "item.marked_borderline"
        resolution.label_class = label_class
        details["decided"] = _decide_items(
            project=project,
            items=chosen,
            label_class=label_class,
            actor=actor,
            rationale=rationale,
            flag=flag,
            verb=verb,
        )
    elif action == ResolutionAction.MERGE_CLASSES:
        keys = list(classes) if classes else flag_class_keys
        keys = [k for k in keys if not project.classes.filter(key=k, is_borderline=True).exists()]
        into = into or flag.evidence.get("suggested_into")
        merged = merge_classes(
            project=project, class_keys=keys, into=into, actor=actor, rationale=rationale, flag=flag
        )
        resolution.into_class = project.classes.get(key=into)
        details["merged"] = [c.key for c in merged]
        details["into"] = into
    elif action == ResolutionAction.UNMERGE_CLASSES:
        keys = list(classes) if classes else flag_class_keys
        undone = unmerge_classes(
            project=project, class_keys=keys, actor=actor, rationale=rationale, flag=flag
        )
        details["unmerged"] = [c.key for c in undone]
    elif action == ResolutionAction.RELABEL:
        chosen = _items_for(flag, items)
        labelers = [flag.labeler] if flag.kind == FlagKind.LABELER and flag.labeler else None
        created = send_for_relabel(
            project=project, items=chosen, actor=actor, rationale=rationale, labelers=labelers
        )
        details["assignments"] = len(created)
        details["labelers"] = sorted({a.labeler_id for a in created})
        events.generic(
            verb="items.sent_for_relabel",
            subject_type="flag",
            subject_id=flag.pk,
            project_id=project.pk,
            actor_id=actor.pk,
            before={"items": [i.external_id for i in chosen], "active_relabel_assignments": 0},
            after={"items": [i.external_id for i in chosen], "assignments": len(created)},
            reason=rationale,
        )
    elif action == ResolutionAction.PUBLISH_GUIDELINE:
        if not (guideline_text or "").strip():
            raise ValidationError({"guideline_text": "give the text of the clarified guideline"})
        chosen = _items_for(flag, items)[:24]
        previous = Guideline.objects.filter(project=project).aggregate(v=Max("version"))["v"]
        guideline = labeling_services.publish_guideline(
            project=project,
            text=guideline_text,
            published_by=actor,
            change_note=rationale,
            example_item_ids=[i.pk for i in chosen],
        )
        resolution.guideline = guideline
        details["guideline_version"] = guideline.version
        details["previous_version"] = previous
    resolution.details = details
    resolution.save()
    if chosen:
        resolution.items.set(chosen)

    new_status = FlagStatus.DISMISSED if action == ResolutionAction.DISMISS else FlagStatus.RESOLVED
    if flag.status != new_status:
        flag.status = new_status
        flag.closed_at = timezone.now()
        flag.save(update_fields=["status", "closed_at"])
    events.generic(
        verb="flag.dismissed" if action == ResolutionAction.DISMISS else "flag.resolved",
        subject_type="flag",
        subject_id=flag.pk,
        project_id=project.pk,
        actor_id=actor.pk,
        before={"status": status_before, "kind": flag.kind},
        after={
            "status": flag.status,
            "action": action,
            "resolution": resolution.pk,
            **{k: v for k, v in details.items() if k != "decided"},
            **({"label": resolution.label_class.key} if resolution.label_class_id else {}),
            **({"items": [i.external_id for i in chosen]} if chosen else {}),
        },
        reason=rationale,
    )
    return resolution


# --------------------------------------------------------------------------- reading
def flag_queue(project: Project, *, status: str | None = FlagStatus.OPEN, kind: str | None = None):
    """Flags of the project ranked by impact (highest first), related rows prefetched."""
    qs = Flag.objects.filter(project=project)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return (
        qs.select_related("labeler", "run")
        .prefetch_related("items", "classes")
        .order_by("-impact", "id")
    )


def neighbours(flag: Flag) -> tuple[int | None, int | None]:
    """Previous and next open flag ids in queue order (for j / k)."""
    ids = list(
        Flag.objects.filter(project_id=flag.project_id, status=FlagStatus.OPEN)
        .order_by("-impact", "id")
        .values_list("id", flat=True)
    )
    if flag.pk not in ids:
        return None, ids[0] if ids else None
    i = ids.index(flag.pk)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


def item_labels(items: Iterable[Item]) -> dict[int, list[dict]]:
    """Every current label on the items, with labeler, guideline version and comment."""
    out: dict[int, list[dict]] = defaultdict(list)
    rows = (
        Annotation.objects.filter(item__in=list(items), is_current=True)
        .select_related("labeler", "label_class", "guideline")
        .order_by("item_id", "created_at")
    )
    for a in rows:
        out[a.item_id].append(
            {
                "labeler": a.labeler.get_username(),
                "value": a.label_class.key if a.label_class_id else a.value_text,
                "guideline_version": a.guideline.version if a.guideline_id else None,
                "comment": a.comment,
                "created_at": a.created_at,
                "time_spent_ms": a.time_spent_ms,
            }
        )
    return out


# --------------------------------------------------------------------------- history
def _merges_at(project: Project, when) -> list[list[str]]:
    state: dict[str, str | None] = {}
    rows = Event.objects.filter(
        project=project, verb__in=("class.merged", "class.unmerged"), created_at__lte=when
    ).order_by("created_at", "id")
    for e in rows:
        after = e.after or {}
        state[after.get("class")] = after.get("merged_into")
    return sorted([k, v] for k, v in state.items() if k and v)


def agreement_history(project: Project) -> list[dict]:
    """Succeeded runs, oldest first, with what was in force when each ran.

    Each entry: ``{run, created_at, krippendorff_alpha, krippendorff_alpha_ci,
    percent_agreement, n_items, n_annotations, guideline_version, merges: [[class,
    into], ...], delta_alpha}`` — ``guideline_version`` is the run's
    ``params``/``data_version`` value when it recorded one, else the latest version
    published before it started; merges are replayed from the event log.
    """
    runs = list(
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).order_by(
            "created_at", "id"
        )
    )
    versions = list(
        project.guidelines.order_by("published_at").values_list("version", "published_at")
    )
    out, previous = [], None
    for run in runs:
        when = run.started_at or run.created_at
        overall = (run.results or {}).get("overall") or {}
        gv = (run.params or {}).get("guideline_version") or (run.data_version or {}).get(
            "guideline_version"
        )
        if gv is None:
            gv = max((v for v, at in versions if at <= when), default=None)
        alpha = overall.get("krippendorff_alpha")
        out.append(
            {
                "run": run.pk,
                "created_at": run.created_at,
                "krippendorff_alpha": alpha,
                "krippendorff_alpha_ci": overall.get("krippendorff_alpha_ci"),
                "percent_agreement": overall.get("percent_agreement"),
                "n_items": overall.get("n_items"),
                "n_annotations": overall.get("n_annotations"),
                "guideline_version": gv,
                "merges": _merges_at(project, when),
                "delta_alpha": (
                    alpha - previous if alpha is not None and previous is not None else None
                ),
            }
        )
        previous = alpha if alpha is not None else previous
    return out


def alpha_before_after(project: Project) -> dict | None:
    """The last two runs' alpha, for the review page's "before → after"."""
    history = [h for h in agreement_history(project) if h["krippendorff_alpha"] is not None]
    if not history:
        return None
    after = history[-1]
    before = history[-2] if len(history) > 1 else None
    changes = []
    if before is not None:
        if before["guideline_version"] != after["guideline_version"]:
            changes.append(
                f"guideline v{before['guideline_version']} → v{after['guideline_version']}"
            )
        added = [m for m in after["merges"] if m not in before["merges"]]
        removed = [m for m in before["merges"] if m not in after["merges"]]
        changes += [f"merged {a} into {b}" for a, b in added]
        changes += [f"unmerged {a}" for a, _ in removed]
    return {
        "before": before,
        "after": after,
        "delta": (after["krippendorff_alpha"] - before["krippendorff_alpha"]) if before else None,
        "changes": changes,
    }


# --------------------------------------------------------------------------- normalization
def _normalization_events(project: Project):
    return Event.objects.filter(project=project, verb=NORMALIZATION_VERB).order_by(
        "-created_at", "-id"
    )


def current_normalization_rules(project: Project | int) -> list[dict]:
    """The latest published rule set (``[]`` when none): apply it to transcripts with
    ``consistency.normalization.normalize_texts(texts, rules)``."""
    project_id = project.pk if isinstance(project, Project) else project
    event = (
        Event.objects.filter(project_id=project_id, verb=NORMALIZATION_VERB)
        .order_by("-created_at", "-id")
        .first()
    )
    return list((event.after or {}).get("rules", [])) if event else []


def current_normalization(project: Project | int) -> dict:
    """``{"version": n, "rules": [...]}`` of the latest published rule set (version 0 and
    no rules when none): what a run should record beside its transcription results."""
    project_id = project.pk if isinstance(project, Project) else project
    event = (
        Event.objects.filter(project_id=project_id, verb=NORMALIZATION_VERB)
        .order_by("-created_at", "-id")
        .first()
    )
    after = (event.after or {}) if event else {}
    return {"version": after.get("version", 0), "rules": list(after.get("rules", []))}


def normalization_versions(project: Project) -> list[dict]:
    """Every published rule set, newest first: ``{version, rules, by, at, rationale}``."""
    return [
        {
            "version": (e.after or {}).get("version"),
            "rules": (e.after or {}).get("rules", []),
            "by": e.actor.get_username() if e.actor_id else None,
            "at": e.created_at,
            "rationale": e.reason,
        }
        for e in _normalization_events(project).select_related("actor")
    ]


def _checked_rules(rules) -> list[dict]:
    try:
        return [r.as_dict() for r in normalization.validate_rules(rules)]
    except ValueError as exc:
        raise ValidationError({"rules": str(exc)}) from exc


def preview_normalization(project: Project, *, rules: Sequence[dict]) -> dict:
    """Which current transcripts ``rules`` would change (before → after, counts), and
    exact-match agreement before and after."""
    if project.task_type != TaskType.TRANSCRIPTION:
        raise ValidationError({"project": "normalisation rules are for transcription projects"})
    checked = _checked_rules(rules)
    rows = list(
        Annotation.objects.filter(project=project, is_current=True)
        .exclude(value_text="")
        .order_by("item_id", "labeler_id")
        .values_list("item_id", "item__external_id", "labeler__username", "value_text")
    )
    texts = [r[3] for r in rows]
    result = normalization.preview(
        texts, checked, refs=[{"item": r[1], "labeler": r[2]} for r in rows]
    )
    current = current_normalization_rules(project)
    from consistency.metrics import transcription_agreement

    if rows:
        items = [r[0] for r in rows]
        before = transcription_agreement(items, normalization.normalize_texts(texts, current))
        after = transcription_agreement(items, normalization.normalize_texts(texts, checked))
        result["agreement"] = {
            "current_rules": {
                "percent_agreement": before["percent_agreement"],
                "mean_pairwise_wer": before["mean_pairwise_wer"],
            },
            "these_rules": {
                "percent_agreement": after["percent_agreement"],
                "mean_pairwise_wer": after["mean_pairwise_wer"],
            },
        }
    result["rules"] = checked
    return result


@transaction.atomic
def publish_normalization(
    *, project: Project, rules: Sequence[dict], actor: AbstractBaseUser, rationale: str
) -> dict:
    """Publish the next version of the project's rule set as a
    ``normalization.published`` event (before/after: previous and new ``{version, rules}``).
    Labels are not rewritten (annotations are append-only): agreement applies the rules."""
    check_can_resolve(actor, project)
    if project.task_type != TaskType.TRANSCRIPTION:
        raise ValidationError({"project": "normalisation rules are for transcription projects"})
    rationale = _checked_rationale(rationale)
    checked = _checked_rules(rules)
    Project.objects.select_for_update().filter(pk=project.pk).first()
    latest = _normalization_events(project).first()
    before = latest.after if latest else None
    version = (before or {}).get("version", 0) + 1
    after = {"version": version, "rules": checked}
    events.generic(
        verb=NORMALIZATION_VERB,
        subject_type="project",
        subject_id=project.pk,
        project_id=project.pk,
        actor_id=actor.pk,
        before=before,
        after=after,
        reason=rationale,
    )
    return after
