"""Reads of labeling data that more than one caller needs."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.db.models import (
    Case,
    Count,
    Expression,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Least, Lower, Trim
from django.db.models.lookups import GreaterThan, GreaterThanOrEqual, LessThan

from labeling.models import (
    Annotation,
    CheckAnswer,
    CheckSettings,
    GoldLabel,
    GoldSource,
    Guideline,
    Item,
    ItemDecision,
    LabelClass,
    LabelerState,
    MeasurementLevel,
    Project,
    ProjectMembership,
    Tag,
    TaskType,
)


def current_guideline(project: Project) -> Guideline | None:
    return project.guidelines.order_by("-version").first()


def active_classes(project: Project) -> QuerySet[LabelClass]:
    """Classes a labeler can choose: those not merged into another."""
    return project.classes.filter(merged_into__isnull=True).order_by("order", "id")


# --- The classes shown to people -----------------------------------------------------
# One order and one set of keys for every page and the API: a digit pressed on the
# labeling page and on the SME review page must choose the same class.
DIGIT_KEYS = "123456789"
BORDERLINE_KEY = "B"


def display_classes(project: Project) -> list[dict]:
    """The classes a person can choose (not merged into another), in display order,
    each with the key that chooses it.

    Display order is ``order, id``; for rating projects and ordinal levels it is by
    ``rank`` (classes without a rank last, then ``order, id``). The first borderline
    class gets ``kbd`` ``"B"``; the other classes get ``"1"`` … ``"9"`` in display order
    and ``""`` past the ninth. Each row: ``key, name, description, rank, value,
    is_borderline, shortcut, kbd``.
    """
    classes = list(active_classes(project))
    if project.task_type == TaskType.RATING or project.level == MeasurementLevel.ORDINAL:
        # sort() is stable: equal ranks keep the (order, id) order of active_classes.
        classes.sort(key=lambda c: (c.rank is None, c.rank if c.rank is not None else 0))
    rows, n, borderline_seen = [], 0, False
    for c in classes:
        if c.is_borderline and not borderline_seen:
            kbd, borderline_seen = BORDERLINE_KEY, True
        else:
            kbd = DIGIT_KEYS[n] if n < len(DIGIT_KEYS) else ""
            n += 1
        rows.append(
            {
                "key": c.key,
                "name": c.name,
                "description": c.description,
                "rank": c.rank,
                "value": c.value,
                "is_borderline": c.is_borderline,
                "shortcut": c.shortcut,
                "kbd": kbd,
            }
        )
    return rows


def class_buttons(project: Project) -> tuple[list[dict], dict | None]:
    """:func:`display_classes` as a page shows them: the digit-keyed classes in display
    order, and the borderline class (key ``B``) apart, or None."""
    rows = display_classes(project)
    borderline = next((r for r in rows if r["kbd"] == BORDERLINE_KEY), None)
    return [r for r in rows if r is not borderline], borderline


def detection_class_order(project: Project) -> list[str]:
    """The class keys of a detection project by index, as YOLO class ids and COCO
    category ids (index + 1) number them: the classes a labeler can choose, in display
    order (:func:`display_classes`)."""
    return [row["key"] for row in display_classes(project)]


# --- The value of a label ---------------------------------------------------------------
def label_value(
    *,
    class_key: str | None,
    value_number: float | None,
    value_text: str,
    value_boxes: list | None = None,
) -> Any:
    """The value of a label as people and pipelines see it: its boxes (detection), else
    its class key, else its number, else its text. Every kind of label row (annotation,
    gold label, consensus) goes through here; :func:`annotation_value` is the same for a
    loaded row."""
    if value_boxes is not None:
        return value_boxes
    if class_key is not None:
        return class_key
    if value_number is not None:
        return value_number
    return value_text


def annotation_value(label: Annotation | GoldLabel) -> Any:
    """:func:`label_value` of an annotation or a gold label, with the key of its class as
    stored (not mapped through merges). Reads ``label.label_class`` when it has a class
    (select it with the label to avoid a query per row)."""
    return label_value(
        class_key=label.label_class.key if label.label_class_id is not None else None,
        value_number=label.value_number,
        value_text=label.value_text,
        value_boxes=label.value_boxes,
    )


def current_annotations(project: Project) -> QuerySet[Annotation]:
    return Annotation.objects.filter(project=project, is_current=True)


def labeler_progress(project: Project) -> list[dict]:
    """Per labeler: how many current annotations they have in the project."""
    rows = (
        current_annotations(project)
        .values("labeler_id", "labeler__username")
        .annotate(n=Count("id"))
        .order_by("labeler__username")
    )
    return [
        {"labeler_id": r["labeler_id"], "labeler": r["labeler__username"], "n": r["n"]}
        for r in rows
    ]


# --- An item's target and completeness (dynamic overlap) ---------------------------------
# One rule in two forms that must agree: dynamic_target in Python (the re-check under the
# hand-out's row lock) and item_target_expression in SQL (the hand-out query, the item
# status of the REST list and filter, project progress).


def dynamic_target(labels: Sequence[Any], *, min_overlap: int, max_overlap: int) -> int:
    """How many labels an item needs under dynamic overlap, given its labels so far.

    ``labels`` are the item's current label values (any hashable identity, see
    :func:`label_identity`). Fewer than ``min_overlap`` labels: the target is
    ``min_overlap``. From ``min_overlap`` on, if a strict majority (more than half) of the
    labels agrees, or there are ``max_overlap`` labels or more, the item is done at its
    present count; otherwise it needs one more label. (When the first ``min_overlap``
    labels agree the item stops at ``min_overlap``: all of them agree then.)
    :func:`item_target_expression` is the same rule in SQL.

    >>> dynamic_target(["a", "a"], min_overlap=2, max_overlap=5)
    2
    >>> dynamic_target(["a", "b"], min_overlap=2, max_overlap=5)
    3
    >>> dynamic_target(["a", "b", "a"], min_overlap=2, max_overlap=5)
    3
    >>> dynamic_target(["a", "b", "c", "a"], min_overlap=2, max_overlap=5)
    5
    """
    n = len(labels)
    if n >= max_overlap:
        return n
    if n < min_overlap:
        return min_overlap
    top = Counter(labels).most_common(1)[0][1]
    return n if top * 2 > n else n + 1


def item_target(project: Project, *, n: int, top: int) -> int:
    """An item's overlap target from counts: ``project.overlap``, or with dynamic overlap
    :func:`dynamic_target` given ``n`` current labels of which ``top`` agree with the most
    common one (the form the hand-out state keeps, ``labeling.handout``)."""
    if not project.dynamic_overlap:
        return project.overlap
    if n >= project.max_overlap:
        return n
    if n < project.min_overlap:
        return project.min_overlap
    return n if top * 2 > n else n + 1


def label_identity(label_class_id: int | None, value_number: float | None, value_text: str):
    """When two labels count as the same for dynamic overlap: the same class as stored,
    the same number, or (no class, no number) the same text with spaces trimmed, in lower
    case. The SQL grouping of ``top`` (:func:`items_with_counts`, the hand-out's query)
    is the same: ``label_class_id, value_number, LOWER(TRIM(value_text))``."""
    if label_class_id is not None:
        return ("c", label_class_id)
    if value_number is not None:
        return ("n", value_number)
    return ("t", (value_text or "").strip(" ").lower())


def item_target_expression(project: Project, *, n: Expression, top: Expression) -> Expression:
    """The per-item overlap target as a SQL expression: ``project.overlap``, or with
    dynamic overlap :func:`dynamic_target` in SQL, given ``n`` (the item's current labels)
    and ``top`` (how many of them agree with the most common label), both integer
    expressions. Used by the ORM (:func:`items_with_counts`) and, compiled, by the
    hand-out's hand-written query (``labeling.assignment``)."""
    if not project.dynamic_overlap:
        return Value(project.overlap, output_field=IntegerField())
    return Case(
        When(GreaterThanOrEqual(n, project.max_overlap), then=n),
        When(LessThan(n, project.min_overlap), then=Value(project.min_overlap)),
        When(GreaterThan(top * Value(2), n), then=n),
        default=n + Value(1),
        output_field=IntegerField(),
    )


def item_targets(project: Project, item_ids: Iterable[int]) -> dict[int, int]:
    """The overlap target of each item: ``project.overlap``, or :func:`dynamic_target`
    of its current labels (in the order given)."""
    ids = list(item_ids)
    if not project.dynamic_overlap:
        return dict.fromkeys(ids, project.overlap)
    labels: dict[int, list] = {i: [] for i in ids}
    rows = (
        Annotation.objects.filter(item_id__in=ids, is_current=True)
        .order_by("item_id", "created_at", "id")
        .values_list("item_id", "label_class_id", "value_number", "value_text")
    )
    for item_id, class_id, number, text in rows:
        labels[item_id].append(label_identity(class_id, number, text))
    return {
        i: dynamic_target(
            labels[i], min_overlap=project.min_overlap, max_overlap=project.max_overlap
        )
        for i in ids
    }


# --- Lists for the REST API (issue 4) -------------------------------------------------
METADATA_FILTER_KEY = re.compile(r"[A-Za-z0-9_]+")
ITEM_STATUSES = ("unlabeled", "in_progress", "complete")


def items_with_counts(project: Project) -> QuerySet[Item]:
    """The project's items, each annotated with ``n_current`` (current annotations),
    ``n_target`` (its overlap target, fixed or dynamic: :func:`item_target_expression`)
    and ``item_status``: ``unlabeled`` (no current annotation), ``complete``
    (``n_current >= n_target``) or ``in_progress``. Counted from the annotations (two
    correlated subqueries per item); :func:`items_with_kept_counts` gives the same
    annotations from the state kept on the items."""
    n_current, top = _recount_expressions(project)
    return _with_status(Item.objects.filter(project=project), project, n=n_current, top=top)


def items_with_kept_counts(project: Project) -> QuerySet[Item]:
    """The annotations of :func:`items_with_counts` (``n_current``, ``n_target``,
    ``item_status``), equal to it, read from the hand-out state kept on the items
    (``Item.handout_labels`` and ``handout_top``, ``labeling.handout``): plain columns,
    so a status filter or a label-count sort on 100,000 items reads no annotation.

    The kept count leaves out labels given as answers to ground-truth checks (they never
    count toward overlap), while a status has always counted every current label. The
    items with a check answer (few: the checks) are therefore recounted from their
    annotations; when the project has none, the columns are read as they are."""
    items = Item.objects.filter(project=project)
    answered = CheckAnswer.objects.filter(project=project)
    if not answered.exists():
        return _with_status(items, project, n=F("handout_labels"), top=F("handout_top"))
    recount_n, recount_top = _recount_expressions(project)
    # A non-correlated IN: SQLite and PostgreSQL build the set of answered items once.
    answered_item = Q(pk__in=answered.values("item_id"))
    n = Case(
        When(answered_item, then=recount_n),
        default=F("handout_labels"),
        output_field=IntegerField(),
    )
    top = Case(
        When(answered_item, then=recount_top),
        default=F("handout_top"),
        output_field=IntegerField(),
    )
    return _with_status(items, project, n=n, top=top)


def _recount_expressions(project: Project) -> tuple[Expression, Expression]:
    """``(n, top)`` of an item counted from its current annotations, as correlated
    subqueries: all of them, and (dynamic overlap only, else 0) the size of the largest
    group of equal labels (:func:`label_identity` in SQL)."""
    counted = (
        Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
        .order_by()
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )
    n_current = Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
    if not project.dynamic_overlap:
        return n_current, Value(0)
    groups = (
        Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
        .annotate(_text=Lower(Trim("value_text")))
        .values("label_class_id", "value_number", "_text")
        .annotate(c=Count("pk"))
        .order_by("-c")
        .values("c")[:1]
    )
    return n_current, Coalesce(Subquery(groups, output_field=IntegerField()), Value(0))


def _with_status(
    items: QuerySet[Item], project: Project, *, n: Expression, top: Expression
) -> QuerySet[Item]:
    """``items`` annotated with ``n_current`` = ``n``, ``n_target`` and ``item_status``
    (the one rule of :func:`items_with_counts`), ``top`` used with dynamic overlap only."""
    items = items.annotate(n_current=n)
    if project.dynamic_overlap:
        items = items.annotate(n_top=top)
        top = F("n_top")
    else:
        top = Value(0)
    items = items.annotate(n_target=item_target_expression(project, n=F("n_current"), top=top))
    return items.annotate(
        item_status=Case(
            When(n_current=0, then=Value("unlabeled")),
            When(n_current__gte=F("n_target"), then=Value("complete")),
            default=Value("in_progress"),
            output_field=TextField(),
        )
    )


def status_filter(status: str) -> Q:
    """The rows of a queryset from :func:`items_with_counts` or
    :func:`items_with_kept_counts` whose ``item_status`` is ``status``, as comparisons of
    the counts (an index can serve them, which a comparison of the CASE cannot)."""
    if status == "unlabeled":
        return Q(n_current=0)
    if status == "complete":
        return Q(n_current__gt=0, n_current__gte=F("n_target"))
    if status == "in_progress":
        return Q(n_current__gt=0, n_current__lt=F("n_target"))
    raise ValueError(f"status must be one of {', '.join(ITEM_STATUSES)}")


def project_progress(project: Project) -> dict:
    """Items, current annotations, items complete (their target reached, dynamic overlap
    honoured) and ``fraction``: the labels given towards the items' targets over the sum
    of the targets (an item counts up to its target), 0–1."""
    totals = items_with_kept_counts(project).aggregate(
        n_items=Count("pk"),
        n_items_complete=Count("pk", filter=status_filter("complete")),
        towards=Sum(Least(F("n_current"), F("n_target"))),
        target=Sum("n_target"),
    )
    target = totals["target"] or 0
    return {
        "n_items": totals["n_items"],
        "n_annotations": current_annotations(project).count(),
        "n_items_complete": totals["n_items_complete"],
        "fraction": (totals["towards"] / target) if target else 0.0,
    }


def filter_items(
    project: Project,
    *,
    metadata: dict[str, str] | None = None,
    tag: str | None = None,
    status: str | None = None,
    external_id: str | None = None,
    kind: str | None = None,
) -> QuerySet[Item]:
    """Items of ``project`` matching every filter given.

    ``metadata`` maps keys (``^[A-Za-z0-9_]+$``, else ValueError) to values compared as
    text (``{"line": "3"}`` matches ``3`` and ``"3"``); ``status`` is ``unlabeled`` (no
    current annotation), ``in_progress`` (fewer than its target) or ``complete`` (the
    ``item_status`` of :func:`items_with_counts`: dynamic overlap honoured, read from
    the kept counts of :func:`items_with_kept_counts`, so a status filter on a
    million-item project reads no annotation). Keys become JSON key transforms, never
    ORM lookups.
    """
    items = items_with_kept_counts(project)
    for n, (key, value) in enumerate(sorted((metadata or {}).items())):
        if not METADATA_FILTER_KEY.fullmatch(key):
            raise ValueError(f"metadata keys are letters, digits and _: {key!r}")
        alias = f"_meta_{n}"
        items = items.alias(
            **{alias: Cast(KeyTextTransform(key, "metadata"), output_field=TextField())}
        ).filter(**{alias: value})
    if tag:
        items = items.filter(tags__name=tag)
    if external_id:
        items = items.filter(external_id=external_id)
    if kind:
        items = items.filter(kind=kind)
    if status:
        if status not in ITEM_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ITEM_STATUSES)}")
        items = items.filter(status_filter(status))
    return items.order_by("id")


def filter_annotations(
    project: Project,
    *,
    labeler_id: int | None = None,
    labeler_username: str | None = None,
    item_external_id: str | None = None,
    item_id: int | None = None,
    include_revisions: bool = False,
) -> QuerySet[Annotation]:
    """Annotations of ``project`` (current only unless ``include_revisions``), with the
    related rows a list needs loaded in the same query."""
    annotations = Annotation.objects.filter(project=project).select_related(
        "item", "labeler", "label_class", "guideline"
    )
    if not include_revisions:
        annotations = annotations.filter(is_current=True)
    if labeler_id is not None:
        annotations = annotations.filter(labeler_id=labeler_id)
    if labeler_username:
        annotations = annotations.filter(labeler__username=labeler_username)
    if item_external_id:
        annotations = annotations.filter(item__external_id=item_external_id)
    if item_id is not None:
        annotations = annotations.filter(item_id=item_id)
    return annotations.order_by("item_id", "labeler_id", "-created_at", "-id")


def labeler_progress_detail(project: Project, *, labeler_id: int | None = None) -> list[dict]:
    """Per labeler (or only ``labeler_id``): current annotations and superseded revisions.

    Members without a label yet are listed with zeros; former members who left labels are
    listed with ``role: None``. Three queries whatever the number of labelers.
    """
    members = ProjectMembership.objects.filter(project=project).select_related("user")
    annotations = Annotation.objects.filter(project=project)
    if labeler_id is not None:
        members = members.filter(user_id=labeler_id)
        annotations = annotations.filter(labeler_id=labeler_id)
    counts = {
        r["labeler_id"]: r
        for r in annotations.values("labeler_id", "labeler__username", "labeler__is_active")
        .annotate(
            n_current=Count("pk", filter=Q(is_current=True)),
            n_revisions=Count("pk", filter=Q(is_current=False)),
        )
        .order_by()
    }
    rows = {}
    for m in members:
        c = counts.get(m.user_id, {})
        rows[m.user_id] = {
            "labeler": m.user.username,
            "role": m.role,
            "is_active": m.user.is_active,
            "n_current": c.get("n_current", 0),
            "n_revisions": c.get("n_revisions", 0),
        }
    for user_id, c in counts.items():
        if user_id not in rows:
            rows[user_id] = {
                "labeler": c["labeler__username"],
                "role": None,
                "is_active": c["labeler__is_active"],
                "n_current": c["n_current"],
                "n_revisions": c["n_revisions"],
            }
    return sorted(rows.values(), key=lambda r: r["labeler"])


# --- Class roots after merges, and SME decisions ------------------------------------
# The one place for both: consistency (agreement, flags) and review read them here.


def class_roots(parent: dict[int, int | None]) -> dict[int, int]:
    """``{class id: root class id}`` from ``{class id: merged_into id or None}``: each
    class counts as the end of its ``merged_into`` chain (a class merged into one that was
    merged later counts as the last one). Unmerged classes map to themselves; a chain
    leaving ``parent`` ends at the last class inside it; a cycle (a data error) ends
    before the class that repeats.

    >>> class_roots({1: None, 2: 1, 3: 2, 4: None})
    {1: 1, 2: 1, 3: 1, 4: 4}
    """
    out = {}
    for cid in parent:
        seen, cur = {cid}, cid
        while parent.get(cur) is not None and parent[cur] in parent and parent[cur] not in seen:
            cur = parent[cur]
            seen.add(cur)
        out[cid] = cur
    return out


def effective_class_map(project: Project | int) -> dict[int, int]:
    """``{class id: class id it counts as}`` for every class of the project
    (:func:`class_roots` of its classes). One query."""
    project_id = project.pk if isinstance(project, Project) else project
    return class_roots(
        dict(LabelClass.objects.filter(project_id=project_id).values_list("id", "merged_into"))
    )


def sme_decisions(project: Project | int) -> dict[int, int]:
    """``{item id: class id}`` decided by an SME (``ItemDecision``), the class as stored.
    One query."""
    project_id = project.pk if isinstance(project, Project) else project
    return dict(
        ItemDecision.objects.filter(
            item__project_id=project_id, label_class__isnull=False
        ).values_list("item_id", "label_class_id")
    )


def ground_truth(project: Project | int) -> list[tuple[int, int | None, str, float | None]]:
    """``[(item id, class id, value text, value number)]`` of the project's ground truth:
    every ``GoldLabel`` except SME decisions kept there before ``ItemDecision`` existed
    (``source == sme``), which are not ground truth. One query."""
    project_id = project.pk if isinstance(project, Project) else project
    return list(
        GoldLabel.objects.filter(item__project_id=project_id)
        .exclude(source=GoldSource.SME)
        .values_list("item_id", "label_class_id", "value_text", "value_number")
    )


def annotations_as_of(project: Project | int, max_annotation_id: int | None) -> QuerySet:
    """The annotations that were current when the highest annotation id was
    ``max_annotation_id`` (all current ones when None).

    Annotations are append-only and ids grow: a revision is a new row (a larger id) that
    ``supersedes`` the old one and makes it not current. So an annotation was current at
    that moment when it existed (``id <= max_annotation_id``) and either is current now
    or was superseded by a row created later (``superseded_by.id > max_annotation_id``).
    A row imported as already outdated (not current and superseded by nothing) was never
    current and is excluded."""
    project_id = project.pk if isinstance(project, Project) else project
    rows = Annotation.objects.filter(project_id=project_id)
    if max_annotation_id is None:
        return rows.filter(is_current=True)
    return rows.filter(pk__lte=max_annotation_id).filter(
        Q(is_current=True) | Q(superseded_by__pk__gt=max_annotation_id)
    )


def sme_overrides(project: Project | int) -> dict[int, int]:
    """:func:`sme_decisions` mapped through the merges in force. The consensus of these
    items is the SME's label."""
    mapping = effective_class_map(project)
    return {
        item_id: mapping.get(class_id, class_id)
        for item_id, class_id in sme_decisions(project).items()
    }


def tag_counts(project: Project) -> list[dict]:
    """Every tag of ``project`` with the number of items carrying it, by name, in one
    query: ``[{"name": str, "n_items": int}]`` (a tag no item carries counts 0)."""
    return list(
        Tag.objects.filter(project=project)
        .annotate(n_items=Count("items", distinct=True))
        .order_by("name")
        .values("name", "n_items")
    )


# --- Ground-truth checks (issue 11, item 6) ---------------------------------------------
def check_settings(project: Project) -> dict:
    """``{rate, min_accuracy, min_checks}`` of the project (defaults when never set)."""
    policy = CheckSettings.objects.filter(project=project).first() or CheckSettings()
    return {
        "rate": policy.rate,
        "min_accuracy": policy.min_accuracy,
        "min_checks": policy.min_checks,
    }


def check_items(project: Project) -> list[str]:
    """External ids of the project's items marked as checks, by id."""
    return list(
        Item.objects.filter(project=project, is_check=True)
        .order_by("pk")
        .values_list("external_id", flat=True)
    )


def _accuracy(n: int, correct: int) -> tuple[float | None, str | None]:
    return (correct / n, None) if n else (None, "no checks answered")


def check_accuracy(project: Project, *, labeler_id: int | None = None) -> list[dict]:
    """Each labeler's accuracy on ground-truth checks, overall and by ISO week (Monday,
    UTC), with their pause state: ``[{labeler_id, labeler, n_checks, n_correct,
    accuracy, since_resume: {n_checks, n_correct, accuracy}, paused, paused_at,
    paused_reason, weekly: [{week, n_checks, n_correct, accuracy}], reasons}]``, by
    username. ``accuracy`` is null with a reason when no check was answered. Two queries
    (answers, counters); for managers and the monitoring page, never for labelers."""
    answers = CheckAnswer.objects.filter(project=project)
    states = LabelerState.objects.filter(project=project).select_related("labeler")
    if labeler_id is not None:
        answers = answers.filter(labeler_id=labeler_id)
        states = states.filter(labeler_id=labeler_id)
    weekly: dict[int, Counter] = {}
    totals: dict[int, list] = {}
    for labeler, created_at, correct in answers.values_list(
        "labeler_id", "created_at", "correct"
    ).order_by("created_at"):
        week = (created_at.date() - timedelta(days=created_at.weekday())).isoformat()
        weekly.setdefault(labeler, Counter())[(week, "n")] += 1
        weekly[labeler][(week, "c")] += int(correct)
        total = totals.setdefault(labeler, [0, 0])
        total[0] += 1
        total[1] += int(correct)
    rows = []
    for state in states:
        if state.labeler_id not in totals and state.paused_at is None and not state.n_checks:
            continue
        n, c = totals.get(state.labeler_id, [0, 0])
        accuracy, why = _accuracy(n, c)
        recent, recent_why = _accuracy(state.n_checks, state.n_checks_correct)
        weeks = sorted({w for w, _ in weekly.get(state.labeler_id, {})})
        rows.append(
            {
                "labeler_id": state.labeler_id,
                "labeler": state.labeler.get_username(),
                "n_checks": n,
                "n_correct": c,
                "accuracy": accuracy,
                "since_resume": {
                    "n_checks": state.n_checks,
                    "n_correct": state.n_checks_correct,
                    "accuracy": recent,
                },
                "paused": state.paused_at is not None,
                "paused_at": state.paused_at,
                "paused_reason": state.paused_reason,
                "weekly": [
                    {
                        "week": w,
                        "n_checks": weekly[state.labeler_id][(w, "n")],
                        "n_correct": weekly[state.labeler_id][(w, "c")],
                        "accuracy": weekly[state.labeler_id][(w, "c")]
                        / weekly[state.labeler_id][(w, "n")],
                    }
                    for w in weeks
                ],
                "reasons": {
                    k: v for k, v in (("accuracy", why), ("since_resume.accuracy", recent_why)) if v
                },
            }
        )
    return sorted(rows, key=lambda r: r["labeler"])


def paused_labelers(project: Project) -> list[dict]:
    """Labelers whose hand-outs are paused in ``project``: ``[{labeler_id, labeler,
    paused_at, paused_reason}]`` by pause time (a consistency-side function raises the
    manager's flag from these)."""
    return [
        {
            "labeler_id": s.labeler_id,
            "labeler": s.labeler.get_username(),
            "paused_at": s.paused_at,
            "paused_reason": s.paused_reason,
        }
        for s in LabelerState.objects.filter(project=project, paused_at__isnull=False)
        .select_related("labeler")
        .order_by("paused_at", "pk")
    ]


def metadata_rows(metadata: Any, *, prefix: str = "") -> list[tuple[str, str]]:
    """An item's metadata as ``(key, text)`` rows for a key/value list: nested objects
    are flattened with dotted keys (``camera_settings.gain``), lists joined with ", ",
    ``None`` shown as an empty string; never a Python ``repr`` of a dict.

    >>> metadata_rows({"factory": "A", "camera_settings": {"gain": 1.2, "iso": None}})
    [('factory', 'A'), ('camera_settings.gain', '1.2'), ('camera_settings.iso', '')]
    """
    if not isinstance(metadata, dict):
        return [] if metadata in (None, "") else [(prefix or "value", _metadata_text(metadata))]
    rows: list[tuple[str, str]] = []
    for key, value in metadata.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            rows.extend(metadata_rows(value, prefix=name))
        else:
            rows.append((name, _metadata_text(value)))
    return rows


def _metadata_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_metadata_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def example_captions(items: Sequence[Item]) -> dict[int, str]:
    """The class shown under each guideline example: the item's ground truth, else its SME
    decision (the order of final labels), else nothing. Two queries."""
    ids = [i.pk for i in items]
    out = dict.fromkeys(ids, "")
    for source in (ItemDecision, GoldLabel):  # ground truth read last: it wins
        for row in source.objects.filter(item_id__in=ids).values(
            "item_id", "label_class__name", "value_text", "value_number"
        ):
            text = row["label_class__name"] or row["value_text"]
            if not text and row["value_number"] is not None:
                text = format(row["value_number"], "g")
            if text:
                out[row["item_id"]] = text
    return out
