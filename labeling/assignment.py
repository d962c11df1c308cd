"""Handing items to labelers: overlap, dynamic overlap, expiry, skip, relabel, and the
ground-truth checks mixed into each labeler's queue.

Rules (see ``next_item_for``):

* An item is to be labeled by ``project.overlap`` different labelers; with
  ``project.dynamic_overlap`` its target is computed from its labels by
  ``labeling.selectors.item_target`` (between ``min_overlap`` and ``max_overlap``),
  the same rule the item status and project progress use.
* An item's *load* is the number of labelers with a current label on it that counts
  toward overlap plus the number of other labelers holding an unexpired active
  assignment for it. An item is handed out while its load is below its target; items
  with the highest load first (they are closest to done), then the oldest.
* A labeler is never handed an item they have labeled or that was handed to them before
  in any state (active, submitted, skipped, expired, cancelled): a skip is final for
  that labeler, and an abandoned item goes to someone else. The one exception is a
  manager's relabel request, which creates a fresh assignment on purpose.
* Assignments expire ``project.assignment_ttl_minutes`` after being handed out.
* Ground-truth checks (issue 11): items a manager marked ``is_check`` are never in the
  ordinary queue; with ``CheckSettings.rate`` r, each new hand-out is a check with
  probability r (an unseen check with ground truth, when one is left). A check looks
  like any hand-out (same payload, reason ``overlap``, same expiry); its answer is
  scored (``CheckAnswer``) and never counts toward overlap. A labeler whose accuracy on
  checks since their last resume falls below ``min_accuracy`` after ``min_checks``
  answers is paused: :class:`LabelerPaused` on their next request, until a manager
  resumes them.

State instead of recounts (issue 14): the load, target and openness of every item are
kept on the item row (``labeling.handout``) in the transaction of every change, so the
next item is the first row of an index range scan over the open items (partial index
``item_handout_queue``: project, load descending, id), filtered by two primary-key-style
probes (has this labeler labeled it or been handed it?). The cost depends on how many
open items at the head of the queue the caller has already touched, not on the size of
the project.

Concurrency: every write that changes an item's state locks the item row first (item
rows before assignment rows, in pk order) and recounts the item's own rows under the
lock. ``next_item_for`` picks with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL;
concurrent callers take different rows instead of queueing). When the lock is granted,
PostgreSQL re-checks the row's ``WHERE`` against its newest version and returns that
version (a hand-out that committed meanwhile has raised its load, and may have closed
the item): the state read with the lock is current, and the hand-out moves it by one
hold in the same transaction, so "never beyond overlap" holds. On SQLite
transactions are ``BEGIN IMMEDIATE`` (one writer at a time) so the same code is
serialised. The partial unique constraint ``one_active_assignment_per_item_labeler``
backs "never handed to the same labeler twice" in the database.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from labeling import handout, selectors, services
from labeling.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    AssignmentStatus,
    CheckAnswer,
    CheckSettings,
    GoldLabel,
    Item,
    LabelerState,
    Project,
    ProjectMembership,
)
from provenance import events

REASON_OVERLAP = "overlap"
REASON_RELABEL = "relabel"
# A relabel request waits for its labeler longer than an ordinary hand-out: the
# labeler may not be online when the manager sends it.
RELABEL_TTL = timedelta(days=14)
# labeler_progress counts the items still open to a labeler up to this many (an exact
# count would read every open item of a million-item project on every request).
PROGRESS_HORIZON = 200
# How often a hand-out whose transaction PostgreSQL aborted to break a deadlock is tried
# again before the error reaches the caller.
DEADLOCK_RETRIES = 3
# Whether a hand-out is a check: drawn per hand-out, so a labeler cannot tell a check by
# its position in the queue. Tests may seed it.
check_draw = random.Random()


class AssignmentError(ValidationError):
    """A request about an assignment that cannot be honoured (400 in the API)."""


class LabelerPaused(PermissionDenied):
    """The labeler's hand-outs are paused until a manager resumes them (403 in the API)."""


PAUSED_MESSAGE = (
    "Your labeling in this project is paused for a quality review. "
    "Your manager can resume it; until then no new items are handed to you."
)


# --- Reads ----------------------------------------------------------------------------
def _live_assignments(now: datetime) -> QuerySet[Assignment]:
    return Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__gt=now)


def _untouched_sql() -> str:
    """Conditions (alias ``i``) that the labeler (parameter twice) has no current label on
    the item and was never handed it."""
    ann, asg = Annotation._meta.db_table, Assignment._meta.db_table
    return (
        f"NOT EXISTS (SELECT 1 FROM {asg} h WHERE h.item_id = i.id AND h.labeler_id = %s)"
        f" AND NOT EXISTS (SELECT 1 FROM {ann} m WHERE m.item_id = i.id"
        " AND m.labeler_id = %s AND m.is_current)"
    )


def _queue_query(
    project: Project,
    labeler_id: int,
    *,
    lock: bool = False,
    skip_locked: bool = True,
    exclude_ids: Sequence[int] = (),
    limit: int | None = 1,
    select: str = "i.id",
    by_load: bool = True,
) -> tuple[str, list]:
    """The hand-out statement: open items of the project the labeler has not touched,
    highest load first, then oldest: a range scan of ``item_handout_queue``. With
    ``by_load`` False the order is the primary key alone (the lock order of every
    writer), for the pass that waits on locked rows."""
    item = Item._meta.db_table
    where = ["i.project_id = %s", "i.handout_open", _untouched_sql()]
    params: list = [project.pk, labeler_id, labeler_id]
    if exclude_ids:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(exclude_ids))})")
        params += list(exclude_ids)
    sql = f"SELECT {select} FROM {item} i WHERE {' AND '.join(where)}"
    sql += " ORDER BY i.handout_load DESC, i.id" if by_load else " ORDER BY i.id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if lock and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF i" + (" SKIP LOCKED" if skip_locked else "")
    return sql, params


def _fetchone(sql: str, params: list):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def best_candidate(
    project: Project,
    labeler: AbstractBaseUser,
    *,
    lock: bool = False,
    skip_locked: bool = True,
    exclude_ids: Sequence[int] = (),
) -> int | None:
    """The id of the item ``labeler`` should get next, or None.

    Excludes items the labeler labeled or was ever handed, checks, and items whose load
    reached their target (``handout_open``). Highest load first, then oldest. With
    ``lock`` the row is locked (SKIP LOCKED unless ``skip_locked`` is False).
    """
    sql, params = _queue_query(
        project, labeler.pk, lock=lock, skip_locked=skip_locked, exclude_ids=exclude_ids
    )
    row = _fetchone(sql, params)
    return int(row[0]) if row else None


def count_candidates(
    project: Project, labeler: AbstractBaseUser, *, limit: int | None = None
) -> int:
    """How many items ``labeler`` could still be handed (same rules as the hand-out),
    counting at most ``limit`` (None: all; linear in the open items)."""
    # The inner ORDER BY stays: it keeps the planner on the project's range of the
    # hand-out index (without it PostgreSQL chose a merge anti-join over the primary
    # key, reading every earlier project's rows: 156 ms instead of ~1 ms at 1M items).
    inner, params = _queue_query(project, labeler.pk, limit=limit, select="1")
    return int(_fetchone(f"SELECT COUNT(*) FROM ({inner}) q", params)[0])


def held_assignment(
    project: Project, labeler: AbstractBaseUser, *, now: datetime | None = None
) -> Assignment | None:
    """The labeler's unexpired active assignment in the project (relabels first)."""
    now = now or timezone.now()
    return (
        _live_assignments(now)
        .filter(project=project, labeler=labeler)
        .select_related("item")
        .order_by("-reason", "created_at", "id")  # "relabel" sorts before "overlap"
        .first()
    )


def labeler_progress(project: Project, labeler: AbstractBaseUser) -> dict:
    """``{done, total, total_is_lower_bound}`` for one labeler: their current labels (a
    counter, ``LabelerState.n_done``), and those plus the items they hold plus the items
    still open to them, counted up to :data:`PROGRESS_HORIZON` (``total_is_lower_bound``
    says when the count stopped there)."""
    now = timezone.now()
    done = handout.labeler_state(project, labeler.pk).n_done
    held = _live_assignments(now).filter(project=project, labeler=labeler).count()
    remaining = count_candidates(project, labeler, limit=PROGRESS_HORIZON + 1)
    capped = remaining > PROGRESS_HORIZON
    remaining = min(remaining, PROGRESS_HORIZON)
    return {"done": done, "total": done + held + remaining, "total_is_lower_bound": capped}


# --- Writes ---------------------------------------------------------------------------
def _lock_labeler(project: Project, labeler: AbstractBaseUser) -> None:
    # One hand-out at a time per labeler and project, so two tabs cannot hold two items.
    list(
        ProjectMembership.objects.select_for_update()
        .filter(project=project, user=labeler)
        .values_list("pk", flat=True)
    )


def _check_settings(project: Project) -> CheckSettings | None:
    return CheckSettings.objects.filter(project=project).first()


def _check_candidate(project: Project, labeler: AbstractBaseUser) -> int | None:
    """An unseen check with ground truth for ``labeler`` (oldest first), or None. Checks
    have no overlap limit, so no row lock: the labeler lock already keeps one labeler
    from being handed the same check twice."""
    item, gold = Item._meta.db_table, GoldLabel._meta.db_table
    sql = (
        f"SELECT i.id FROM {item} i WHERE i.project_id = %s AND i.is_check"
        f" AND EXISTS (SELECT 1 FROM {gold} g WHERE g.item_id = i.id)"
        f" AND {_untouched_sql()} ORDER BY i.id LIMIT 1"
    )
    row = _fetchone(sql, [project.pk, labeler.pk, labeler.pk])
    return int(row[0]) if row else None


def _hand(
    project: Project,
    labeler: AbstractBaseUser,
    item_id: int,
    now: datetime,
    *,
    state: handout.ItemState | None = None,
) -> Assignment:
    """Create the active assignment and move the item's state: by one more hold when the
    locked row's ``state`` is known (a queue item: the labeler has no label on it), else
    by a recount."""
    assignment = Assignment.objects.create(
        project=project,
        item_id=item_id,
        labeler=labeler,
        status=AssignmentStatus.ACTIVE,
        reason=REASON_OVERLAP,
        expires_at=now + timedelta(minutes=project.assignment_ttl_minutes),
    )
    if state is None:
        handout.refresh_items(project, [item_id], now=now)
    else:
        handout.add_hold(project, item_id, state, assignment.expires_at)
    return assignment


def next_item_for(project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    """Hand ``labeler`` their next item in ``project``, or None when nothing is left.

    Returns the labeler's unexpired active assignment if they hold one; otherwise (after
    expiring lapsed holds) a check with probability ``CheckSettings.rate``, else the first
    item of the queue (see the module docstring), locked and re-checked, as a new active
    assignment that expires after ``project.assignment_ttl_minutes``. Raises
    :class:`LabelerPaused` when the labeler's hand-outs are paused.

    The transaction is retried (up to :data:`DEADLOCK_RETRIES` times) when PostgreSQL
    breaks a deadlock by aborting it; nothing of an aborted attempt is kept. The waiting
    pass locks in primary-key order, so a deadlock needs two hand-outs that each expired
    a lapsed hold the other waits for: rare, and then only a retry away.
    """
    if transaction.get_connection().in_atomic_block:
        return _next_item(project, labeler)  # the caller's transaction: no retry here
    for _ in range(DEADLOCK_RETRIES):
        try:
            return _next_item(project, labeler)
        except OperationalError as exc:
            if not _is_deadlock(exc):
                raise
    return _next_item(project, labeler)  # the last try: its error reaches the caller


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _next_item(project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    with transaction.atomic():
        now = timezone.now()
        _lock_labeler(project, labeler)
        state = handout.labeler_state(project, labeler.pk)
        if state.paused_at is not None:
            raise LabelerPaused(PAUSED_MESSAGE)
        held = held_assignment(project, labeler, now=now)
        if held is not None:
            return held
        handout.expire_lapsed_holds(project, now=now)
        policy = _check_settings(project)
        if policy is not None and policy.rate > 0 and check_draw.random() < policy.rate:
            check_id = _check_candidate(project, labeler)
            if check_id is not None:
                return _hand(project, labeler, check_id, now)
        # First pass skips rows other hand-outs hold; if that finds nothing, one blocking
        # pass waits for them: a held row may still have room once its holder commits
        # (fewer items left than labelers), and "nothing" must mean nothing. That pass
        # goes in primary-key order: rows it locks and then passes over (full after the
        # re-check) stay locked until commit, and the load order differs between two
        # snapshots, so ordering by load let three hand-outs wait on each other in a
        # circle. A row returned is locked and, on PostgreSQL, was re-checked against its
        # newest version when the lock was granted (see module docstring).
        for skip_locked in (True, False):
            sql, params = _queue_query(
                project,
                labeler.pk,
                lock=True,
                skip_locked=skip_locked,
                select=f"i.id, {', '.join(f'i.{f}' for f in handout.STATE_FIELDS)}",
                by_load=skip_locked,
            )
            row = _fetchone(sql, params)
            if row is not None:
                state = handout.state_from_row(row[1:])
                return _hand(project, labeler, row[0], timezone.now(), state=state)
        return None


def _active_assignment(item: Item, labeler: AbstractBaseUser) -> Assignment | None:
    return (
        Assignment.objects.select_for_update()
        .filter(item=item, labeler=labeler, status=AssignmentStatus.ACTIVE)
        .order_by("created_at")
        .first()
    )


def _score_check(
    *, item: Item, labeler: AbstractBaseUser, annotation: Annotation, now: datetime
) -> CheckAnswer | None:
    """Score the labeler's first answer on a check against its ground truth (classes
    through the merges in force; numbers and text by ``selectors.label_identity``), move
    their check counters and pause them when their accuracy since the last resume is
    below the project's threshold after at least ``min_checks`` answers."""
    if CheckAnswer.objects.filter(item=item, labeler=labeler).exists():
        return None
    gold = GoldLabel.objects.filter(item=item).first()
    if gold is None:
        return None
    mapping = selectors.effective_class_map(item.project_id)

    def identity(label):
        class_id = label.label_class_id
        class_id = mapping.get(class_id, class_id) if class_id is not None else None
        return selectors.label_identity(class_id, label.value_number, label.value_text)

    correct = identity(annotation) == identity(gold)
    answer = CheckAnswer.objects.create(
        project_id=item.project_id,
        item=item,
        labeler=labeler,
        annotation=annotation,
        correct=correct,
        created_at=now,
    )
    state = handout.labeler_state(item.project, labeler.pk, lock=True)
    state.n_checks += 1
    state.n_checks_correct += int(correct)
    fields = ["n_checks", "n_checks_correct"]
    policy = _check_settings(item.project)
    if (
        policy is not None
        and state.paused_at is None
        and state.n_checks >= policy.min_checks
        and state.n_checks_correct / state.n_checks < policy.min_accuracy
    ):
        state.paused_at = now
        state.paused_reason = (
            f"accuracy on ground-truth checks {state.n_checks_correct}/{state.n_checks}"
            f" below {policy.min_accuracy:.0%}"
        )
        fields += ["paused_at", "paused_reason"]
        events.labeler_paused(
            project_id=item.project_id,
            actor_id=None,
            user_id=labeler.pk,
            after={
                "n_checks": state.n_checks,
                "n_checks_correct": state.n_checks_correct,
                "min_accuracy": policy.min_accuracy,
                "min_checks": policy.min_checks,
            },
            reason=state.paused_reason,
        )
    state.save(update_fields=fields)
    return answer


@transaction.atomic
def submit_label(
    *,
    item: Item,
    labeler: AbstractBaseUser,
    value: Any,
    time_spent_ms: int | None = None,
    comment: str = "",
    assignment_id: int | None = None,
    source: str = AnnotationSource.UI,
) -> Annotation:
    """Record the labeler's label and complete their assignment, in one transaction.

    A labeler who already has a current label on the item revises it (a new row; the old
    one stays, not current). A first label needs either the labeler's assignment for the
    item (active, or expired but not re-handed to them) or room under the item's target
    (``handout_open``), so a direct POST cannot push an item past its overlap. The answer
    to a check is scored. Raises ``AssignmentError`` (a ValidationError) otherwise.
    """
    now = timezone.now()
    # Item row first (every writer's order), then the labeler's assignment.
    item = Item.objects.select_for_update(of=("self",)).select_related("project").get(pk=item.pk)
    assignment = _active_assignment(item, labeler)
    if assignment_id is not None and (assignment is None or assignment.pk != assignment_id):
        stale = Assignment.objects.filter(pk=assignment_id, item=item, labeler=labeler).first()
        if stale is None:
            raise AssignmentError({"assignment": "this assignment is not yours for this item"})
        if stale.status in (AssignmentStatus.SKIPPED, AssignmentStatus.CANCELLED):
            raise AssignmentError({"assignment": f"this assignment was {stale.status}"})
    # Whether this is a revision matters only without an assignment (room is needed for a
    # first label) or on a check (only a first answer is scored): the common path, a held
    # item, skips the query.
    has_label = (assignment is None or item.is_check) and Annotation.objects.filter(
        item=item, labeler=labeler, is_current=True
    ).exists()
    if not has_label and assignment is None:
        handed = Assignment.objects.filter(
            item=item, labeler=labeler, status=AssignmentStatus.EXPIRED
        ).exists()
        if not handed:
            handout.refresh_items(item.project, [item.pk], now=now)
            if not Item.objects.filter(pk=item.pk, handout_open=True).exists():
                raise AssignmentError(
                    {"item": "this item has all the labels it needs; ask for the next item"}
                )
    reason = ""
    if assignment is not None and assignment.reason == REASON_RELABEL:
        reason = "relabel requested"
    annotation = services.record_annotation(
        item=item,
        labeler=labeler,
        value=value,
        time_spent_ms=time_spent_ms,
        comment=comment,
        source=source,
        reason=reason,
        refresh=False,
    )
    if assignment is not None:
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.completed_at = now
        assignment.save(update_fields=["status", "completed_at"])
    if item.is_check and not has_label:
        _score_check(item=item, labeler=labeler, annotation=annotation, now=now)
    # The item row read with the lock carries the stored state: no state was written in
    # this transaction before this refresh (the room check above refreshes only on the
    # path without an assignment, so there the row is read again).
    locked = item if (assignment is not None or has_label) else None
    handout.refresh_items(item.project, [item.pk], now=now, locked=locked)
    return annotation


@transaction.atomic
def skip_assignment(*, assignment: Assignment, labeler: AbstractBaseUser, reason: str = "") -> None:
    """The labeler passes on an item; it is not handed to them again."""
    item_id = Assignment.objects.filter(pk=assignment.pk).values_list("item_id", flat=True)
    handout.lock_items(item_id)
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.labeler_id != labeler.pk:
        raise PermissionDenied("this assignment is not yours")
    if assignment.status != AssignmentStatus.ACTIVE:
        raise AssignmentError({"assignment": f"this assignment is {assignment.status}"})
    assignment.status = AssignmentStatus.SKIPPED
    assignment.completed_at = timezone.now()
    assignment.save(update_fields=["status", "completed_at"])
    handout.refresh_items(assignment.project, [assignment.item_id])
    events.assignment_skipped(
        project_id=assignment.project_id,
        actor_id=labeler.pk,
        assignment_id=assignment.pk,
        item_id=assignment.item_id,
        reason=reason,
    )


def expire_stale_assignments(*, now: datetime | None = None) -> int:
    """Mark every active assignment past its ``expires_at`` expired and refresh its
    item's state; returns how many assignments. Safe to run at any time and
    concurrently (items held by other writers are left for the next run)."""
    now = now or timezone.now()
    total = 0
    project_ids = (
        Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__lte=now)
        .values_list("project_id", flat=True)
        .distinct()
    )
    for project in Project.objects.filter(pk__in=list(project_ids)):
        while True:
            with transaction.atomic():
                before = Assignment.objects.filter(
                    project=project, status=AssignmentStatus.ACTIVE, expires_at__lte=now
                ).count()
                handout.expire_lapsed_holds(project, now=now)
                after = Assignment.objects.filter(
                    project=project, status=AssignmentStatus.ACTIVE, expires_at__lte=now
                ).count()
            total += before - after
            if after in (0, before):
                break
    # Lapsed assignments on items whose state had no hold (a relabel of one's own label)
    # are tidied too; they never counted toward any load.
    total += Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__lte=now).update(
        status=AssignmentStatus.EXPIRED, completed_at=now
    )
    return total


@transaction.atomic
def request_relabel(
    *,
    project: Project,
    item_ids: Iterable[int],
    labelers: Sequence[AbstractBaseUser] | None = None,
    reason: str,
    actor: AbstractBaseUser | None,
) -> list[Assignment]:
    """Send items back for relabeling; returns the relabel assignments created.

    Annotations are kept (append-only). For each item, each chosen labeler gets an
    active assignment with ``reason="relabel"``, handed to them before any new item on
    their next request; submitting it is a revision of their label when they had one,
    else an extra label (an explicit request may exceed the overlap). With
    ``labelers=None`` the request goes to everyone who holds a current label on the
    item, i.e. the item is re-checked by the people who labeled it. A labeler's earlier
    active assignment for the same item is cancelled. One ``item.relabel_requested``
    event per item records who asked, whom and why. The items' hand-out state is
    refreshed in the same transaction.
    """
    if not reason or not reason.strip():
        raise ValidationError({"reason": "say why the items go back for relabeling"})
    ids = sorted(set(item_ids))
    # Lock the items in id order (concurrent hand-outs skip them meanwhile).
    items = list(
        Item.objects.select_for_update().filter(project=project, pk__in=ids).order_by("pk")
    )
    missing = sorted(set(ids) - {i.pk for i in items})
    if missing:
        raise ValidationError({"items": f"items not in this project: {missing}"})
    if labelers is not None:
        member_ids = set(
            ProjectMembership.objects.filter(
                project=project, user__in=[u.pk for u in labelers]
            ).values_list("user_id", flat=True)
        )
        outsiders = [u.get_username() for u in labelers if u.pk not in member_ids]
        if outsiders:
            raise ValidationError({"labelers": f"not members of this project: {outsiders}"})
    now = timezone.now()
    created: list[Assignment] = []
    for item in items:
        if labelers is None:
            target_ids = list(
                Annotation.objects.filter(item=item, is_current=True)
                .order_by("labeler_id")
                .values_list("labeler_id", flat=True)
            )
        else:
            target_ids = [u.pk for u in labelers]
        Assignment.objects.filter(
            item=item, labeler_id__in=target_ids, status=AssignmentStatus.ACTIVE
        ).update(status=AssignmentStatus.CANCELLED, completed_at=now)
        for labeler_id in target_ids:
            created.append(
                Assignment.objects.create(
                    project=project,
                    item=item,
                    labeler_id=labeler_id,
                    status=AssignmentStatus.ACTIVE,
                    reason=REASON_RELABEL,
                    expires_at=now + RELABEL_TTL,
                )
            )
        events.relabel_requested(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            item_id=item.pk,
            after={"labelers": target_ids, "external_id": item.external_id},
            reason=reason,
        )
    handout.refresh_items(project, [i.pk for i in items], now=now)
    return created


# --- Ground-truth checks (issue 11, item 6) ---------------------------------------------
@transaction.atomic
def mark_checks(
    *,
    project: Project,
    external_ids: Sequence[str],
    is_check: bool,
    actor: AbstractBaseUser | None,
) -> int:
    """Mark (or unmark) items as ground-truth checks by external id; returns how many
    changed. Marking needs ground truth on every item; unknown ids or items without
    ground truth raise ValidationError naming the rows (0-based positions)."""
    if not isinstance(external_ids, list | tuple) or not external_ids:
        raise ValidationError({"items": "give a non-empty list of item external ids"})
    found = dict(
        Item.objects.filter(
            project=project, external_id__in=[str(e) for e in external_ids]
        ).values_list("external_id", "pk")
    )
    unknown = [n for n, e in enumerate(external_ids) if str(e) not in found]
    if unknown:
        raise ValidationError({"items": f"no such item in this project at rows {unknown}"})
    ids = sorted(found.values())
    if is_check:
        with_gold = set(GoldLabel.objects.filter(item_id__in=ids).values_list("item_id", flat=True))
        no_gold = [n for n, e in enumerate(external_ids) if found[str(e)] not in with_gold]
        if no_gold:
            raise ValidationError(
                {"items": f"items without ground truth cannot be checks, rows {no_gold}"}
            )
    handout.lock_items(ids)
    changed = list(
        Item.objects.filter(pk__in=ids).exclude(is_check=is_check).values_list("pk", flat=True)
    )
    Item.objects.filter(pk__in=changed).update(is_check=is_check)
    handout.refresh_items(project, changed)
    events.checks_changed(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        before=None,
        after={"is_check": is_check, "items": sorted(str(e) for e in external_ids)},
    )
    return len(changed)


@transaction.atomic
def resume_labeler(
    *, project: Project, labeler: AbstractBaseUser, actor: AbstractBaseUser | None, reason: str = ""
) -> LabelerState:
    """A manager resumes a paused labeler: hand-outs start again and their check counters
    start afresh (their earlier answers stay in ``CheckAnswer``). Raises ValidationError
    when they are not paused."""
    state = handout.labeler_state(project, labeler.pk, lock=True)
    if state.paused_at is None:
        raise ValidationError({"labeler": f"{labeler.get_username()!r} is not paused"})
    before = {
        "paused_at": state.paused_at.isoformat(),
        "paused_reason": state.paused_reason,
        "n_checks": state.n_checks,
        "n_checks_correct": state.n_checks_correct,
    }
    state.paused_at, state.paused_reason = None, ""
    state.n_checks, state.n_checks_correct = 0, 0
    state.save(update_fields=["paused_at", "paused_reason", "n_checks", "n_checks_correct"])
    events.labeler_resumed(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        user_id=labeler.pk,
        before=before,
        reason=reason,
    )
    return state


def previous_label(
    project: Project, labeler: AbstractBaseUser, *, before_item_id: int | None = None
) -> Annotation | None:
    """The labeler's most recent current annotation in the project (for undo/revise);
    with ``before_item_id`` the one given just before their label on that item."""
    qs = Annotation.objects.filter(project=project, labeler=labeler, is_current=True)
    if before_item_id is not None:
        anchor = qs.filter(item_id=before_item_id).first()
        if anchor is not None:
            qs = qs.filter(
                Q(created_at__lt=anchor.created_at)
                | Q(created_at=anchor.created_at, pk__lt=anchor.pk)
            )
    return qs.select_related("item", "label_class").order_by("-created_at", "-pk").first()
