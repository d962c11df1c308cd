"""Every write an SME makes from the review queue: decisions on flags, merges, relabel
requests and transcript rule sets.

Writes are keyword-only, atomic, lock what they change (in pk order) and record their
provenance events in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from consistency import normalization
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    Flag,
    FlagKind,
    FlagStatus,
    RunStatus,
    TranscriptRuleSet,
)
from consistency.selectors import current_normalization_rules, current_rule_set
from labeling import access
from labeling import services as labeling_services
from labeling.assignment import request_relabel
from labeling.models import (
    Annotation,
    Assignment,
    GoldLabel,
    Guideline,
    Item,
    ItemDecision,
    LabelClass,
    Project,
    TaskType,
)
from labeling.selectors import effective_class_map
from provenance import events
from provenance.models import Event
from review.models import Resolution, ResolutionAction

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
    """The actor's role when it may resolve flags (SME or manager), else 403."""
    role = access.role_in_project(actor, project)
    access.check_role(role, access.SME_ROLES)
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
    decision = ItemDecision.objects.filter(item=item).select_related("label_class").first()
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
        "decision": (
            {"label": decision.label_class.key if decision.label_class_id else None}
            if decision
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
    record: Callable[..., Event],
) -> list[dict]:
    """Final label for each item: SME gold label + consensus override + an event written
    by ``record`` (:func:`events.item_resolved` or :func:`events.item_marked_borderline`)."""
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
        # A decision is the item's final label, never its ground truth; one that
        # contradicts the ground truth is allowed and reported as a conflict.
        _, conflict = labeling_services.set_item_decision(
            item=item, label_class=label_class, actor=actor, rationale=rationale
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
        after = {
            "label": label_class.key,
            "flag": flag.pk,
            "status": status,
            "conflicts_with_ground_truth": conflict,
        }
        record(
            project_id=project.pk,
            actor_id=actor.pk,
            item_id=item.pk,
            before=before,
            after=after,
            reason=rationale,
        )
        decided.append({"item": item.external_id, **after})
    return decided


def _decide_boxes(
    *,
    project: Project,
    items: list[Item],
    boxes: list | None,
    actor: AbstractBaseUser,
    rationale: str,
    flag: Flag,
) -> list[dict]:
    """Final boxes of one item of a detection project: the decision (``ItemDecision.
    value_boxes``), the latest run's SME consensus row and an ``item.resolved`` event."""
    if boxes is None:
        raise ValidationError(
            {
                "boxes": "a detection project's final label is a list of boxes {class, x, y, w, h} "
                "([] = nothing there)"
            }
        )
    if len(items) != 1:
        raise ValidationError(
            {"items": f"boxes are decided for one item at a time; name it ({len(items)} given)"}
        )
    run = _latest_run(project)
    item = Item.objects.select_for_update().get(pk=items[0].pk)
    try:
        value = labeling_services.resolve_value(
            project=project, value=boxes, image_size=labeling_services.item_image_size(item)
        )["value_boxes"]
    except ValidationError as exc:
        raise ValidationError({"boxes": exc.message_dict.get("value", exc.messages)}) from exc
    before = _item_before(item, run)
    before["boxes"] = dict(
        Annotation.objects.filter(item=item, is_current=True)
        .order_by("labeler__username")
        .values_list("labeler__username", "value_boxes")
    )
    _, conflict = labeling_services.set_item_decision(
        item=item, label_class=None, value_boxes=value, actor=actor, rationale=rationale
    )
    if run is not None:
        Consensus.objects.update_or_create(
            run=run,
            item=item,
            method=ConsensusMethod.SME,
            defaults={
                "label_class": None,
                "value_boxes": value,
                "support": None,
                "confidence": 1.0,
                "entropy": None,
                "n_labels": len(before["boxes"]),
                "status": ConsensusStatus.RESOLVED,
            },
        )
    after = {
        "boxes": value,
        "flag": flag.pk,
        "status": ConsensusStatus.RESOLVED,
        "conflicts_with_ground_truth": conflict,
    }
    events.item_resolved(
        project_id=project.pk,
        actor_id=actor.pk,
        item_id=item.pk,
        before=before,
        after=after,
        reason=rationale,
    )
    return [{"item": item.external_id, **after}]


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
        events.class_merged(
            project_id=project.pk,
            actor_id=actor.pk,
            class_id=source.pk,
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
        events.class_unmerged(
            project_id=project.pk,
            actor_id=actor.pk,
            class_id=label_class.pk,
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
    labeled each item), through ``labeling.assignment.request_relabel``."""
    if not items:
        raise ValidationError({"items": "name the items to send back"})
    return request_relabel(
        project=project,
        item_ids=[i.pk for i in items],
        labelers=labelers,
        reason=rationale,
        actor=actor,
    )


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
    boxes: list | None = None,
) -> Resolution:
    """Carry out an SME decision on ``flag`` and record it.

    ``action`` is one of ``ResolutionAction``: ``set_label`` (``label``; ``items``
    default to the flag's; detection projects: ``boxes`` for one item, ``[]`` = nothing
    there), ``mark_borderline`` (the project's borderline class),
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

    if action == ResolutionAction.SET_LABEL and project.task_type == TaskType.DETECTION:
        chosen = _items_for(flag, items)
        details["decided"] = decided = _decide_boxes(
            project=project, items=chosen, boxes=boxes, actor=actor, rationale=rationale, flag=flag
        )
        details["conflicts_with_ground_truth"] = decided[0]["conflicts_with_ground_truth"]
    elif action in (ResolutionAction.SET_LABEL, ResolutionAction.MARK_BORDERLINE):
        chosen = _items_for(flag, items)
        if action == ResolutionAction.SET_LABEL:
            label_class = _class_by_key(project, label, "label")
            record = events.item_resolved
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
            record = events.item_marked_borderline
        resolution.label_class = label_class
        details["decided"] = decided = _decide_items(
            project=project,
            items=chosen,
            label_class=label_class,
            actor=actor,
            rationale=rationale,
            flag=flag,
            record=record,
        )
        details["conflicts_with_ground_truth"] = any(
            d["conflicts_with_ground_truth"] for d in decided
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
        per_labeler = flag.kind in (FlagKind.LABELER, FlagKind.BOX_CONVENTION)
        labelers = [flag.labeler] if per_labeler and flag.labeler else None
        created = send_for_relabel(
            project=project, items=chosen, actor=actor, rationale=rationale, labelers=labelers
        )
        details["assignments"] = len(created)
        details["labelers"] = sorted({a.labeler_id for a in created})
        events.items_sent_for_relabel(
            project_id=project.pk,
            actor_id=actor.pk,
            flag_id=flag.pk,
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
    record_flag = (
        events.flag_dismissed if action == ResolutionAction.DISMISS else events.flag_resolved
    )
    record_flag(
        project_id=project.pk,
        actor_id=actor.pk,
        flag_id=flag.pk,
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


# --------------------------------------------------------------------------- transcript rules
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
    """Publish the next version of the project's rule set: a ``TranscriptRuleSet`` row
    and, in the same transaction, its ``normalization.published`` event (before/after:
    previous and new ``{version, rules}``). Labels are not rewritten (annotations are
    append-only): agreement applies the rules."""
    check_can_resolve(actor, project)
    if project.task_type != TaskType.TRANSCRIPTION:
        raise ValidationError({"project": "normalisation rules are for transcription projects"})
    rationale = _checked_rationale(rationale)
    checked = _checked_rules(rules)
    # The project row serialises publishers: two at once would both read version n.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    latest = current_rule_set(project)
    before = {"version": latest.version, "rules": latest.rules} if latest else None
    version = (latest.version if latest else 0) + 1
    TranscriptRuleSet.objects.create(
        project=project, version=version, rules=checked, rationale=rationale, created_by=actor
    )
    after = {"version": version, "rules": checked}
    events.normalization_published(
        project_id=project.pk,
        actor_id=actor.pk,
        before=before,
        after=after,
        reason=rationale,
    )
    return after
