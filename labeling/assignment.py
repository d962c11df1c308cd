"""Handing items to labelers: overlap, dynamic overlap, expiry, skip, relabel.

Rules (see ``next_item_for``):

* An item is to be labeled by ``project.overlap`` different labelers; with
  ``project.dynamic_overlap`` its target is computed from its labels by
  ``labeling.selectors.dynamic_target`` (between ``min_overlap`` and ``max_overlap``),
  the same rule the item status and project progress use.
* An item's *load* is the number of labelers with a current annotation on it plus the
  number of other labelers holding an unexpired active assignment for it. An item is
  handed out only while its load is below its target; items with the highest load come
  first (they are closest to done), then the oldest.
* A labeler is never handed an item they have labeled or that was handed to them before
  in any state (active, submitted, skipped, expired, cancelled): a skip is final for
  that labeler, and an abandoned item goes to someone else. The one exception is a
  manager's relabel request, which creates a fresh assignment on purpose.
* Assignments expire ``project.assignment_ttl_minutes`` after being handed out. Expired
  rows are ignored by every count at once (``expires_at`` is compared to the clock) and
  are marked ``expired`` lazily (the labeler's own on their next request) or in bulk by
  :func:`expire_stale_assignments` (cheap enough to run from a periodic task).

Concurrency: every write that changes an item's load (hand-out, a first label) locks
the item row first. ``next_item_for`` picks a candidate with ``SELECT ... FOR UPDATE
SKIP LOCKED`` (PostgreSQL; concurrent callers take different rows instead of queueing),
then re-counts that item's load in a fresh statement *after* the lock is held: under
READ COMMITTED the candidate query's snapshot may predate a hand-out that committed
while we waited, and the re-count is what makes "never beyond overlap" hold. On SQLite
transactions are ``BEGIN IMMEDIATE`` (one writer at a time) so the same code is
serialised. The partial unique constraint ``one_active_assignment_per_item_labeler``
backs "never handed to the same labeler twice" in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import IntegerField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.sql import Query
from django.utils import timezone

from labeling import selectors, services
from labeling.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    AssignmentStatus,
    Item,
    Project,
    ProjectMembership,
)
from provenance import events

REASON_OVERLAP = "overlap"
REASON_RELABEL = "relabel"
# A relabel request waits for its labeler longer than an ordinary hand-out: the
# labeler may not be online when the manager sends it.
RELABEL_TTL = timedelta(days=14)
# How many locked candidates one call tries before concluding that nothing is free
# (each try re-counts; a miss means another labeler filled the item meanwhile).
MAX_TRIES = 25


class AssignmentError(ValidationError):
    """A request about an assignment that cannot be honoured (400 in the API)."""


# --- Reads ----------------------------------------------------------------------------
def _live_assignments(now: datetime) -> QuerySet[Assignment]:
    return Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__gt=now)


def _load_sql() -> str:
    """SQL for an item's load (alias ``i``): its current annotations plus the unexpired
    active assignments of labelers other than the caller who have no current label on
    it (a relabel of one's own label adds no load). Parameters: now, caller id."""
    ann, asg = Annotation._meta.db_table, Assignment._meta.db_table
    return (
        f"((SELECT COUNT(*) FROM {ann} a WHERE a.item_id = i.id AND a.is_current)"
        f" + (SELECT COUNT(*) FROM {asg} s WHERE s.item_id = i.id AND s.status = 'active'"
        f" AND s.expires_at > %s AND s.labeler_id <> %s AND NOT EXISTS ("
        f"SELECT 1 FROM {ann} a2 WHERE a2.item_id = s.item_id"
        f" AND a2.labeler_id = s.labeler_id AND a2.is_current)))"
    )


def _compiled(expression) -> tuple[str, list]:
    """SQL and parameters of an ORM expression over raw SQL parts, for the hand-written
    query below."""
    query = Query(Item)
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.compile(expression.resolve_expression(query))
    return sql, list(params)


def _candidate_query(
    project: Project,
    labeler_id: int,
    now: datetime,
    *,
    count: bool = False,
    lock: bool = False,
    exclude_ids: Sequence[int] = (),
) -> tuple[str, list]:
    """One statement for the hand-out, hand-written: it runs on every request. Loads come
    from two grouped scans joined to the items (an index-only scan each), which is an
    order of magnitude faster than correlated counts per item on PostgreSQL, and the
    ORM would spend longer building the query than the database spends running it."""
    item, ann, asg = Item._meta.db_table, Annotation._meta.db_table, Assignment._meta.db_table
    when = connection.ops.adapt_datetimefield_value(now)
    load = "(COALESCE(la.c, 0) + COALESCE(ls.c, 0))"
    # Each aggregate is a MATERIALIZED CTE: computed once per statement whatever the
    # planner believes. With fresh statistics (a new project, a bulk import) PostgreSQL
    # otherwise picks nested loops that re-run the aggregate for every item.
    ctes = [
        f"la AS MATERIALIZED (SELECT item_id, COUNT(*) AS c FROM {ann} WHERE project_id = %s"
        " AND is_current GROUP BY item_id)",
        f"ls AS MATERIALIZED (SELECT s.item_id, COUNT(*) AS c FROM {asg} s"
        " WHERE s.project_id = %s AND s.status = 'active' AND s.expires_at > %s"
        f" AND s.labeler_id <> %s AND NOT EXISTS (SELECT 1 FROM {ann} a2"
        " WHERE a2.item_id = s.item_id AND a2.labeler_id = s.labeler_id AND a2.is_current)"
        " GROUP BY s.item_id)",
    ]
    joins = "LEFT JOIN la ON la.item_id = i.id LEFT JOIN ls ON ls.item_id = i.id"
    params: list = [project.pk, project.pk, when, labeler_id]
    n, top = "COALESCE(la.c, 0)", "0"
    if project.dynamic_overlap:
        # The largest number of equal labels per item (``selectors.label_identity`` in
        # SQL), so that the per-item target is computed in the query and items already
        # done do not crowd the top of the order.
        ctes.append(
            "lt AS MATERIALIZED (SELECT item_id, MAX(c) AS top FROM (SELECT item_id,"
            f" COUNT(*) AS c FROM {ann} WHERE project_id = %s AND is_current GROUP BY item_id,"
            " label_class_id, value_number, LOWER(TRIM(value_text))) t GROUP BY item_id)"
        )
        joins += " LEFT JOIN lt ON lt.item_id = i.id"
        params.append(project.pk)
        top = "COALESCE(lt.top, 0)"
    # The target is the one rule of labeling.selectors, compiled to SQL over n and top.
    target, target_params = _compiled(
        selectors.item_target_expression(
            project,
            n=RawSQL(n, [], output_field=IntegerField()),
            top=RawSQL(top, [], output_field=IntegerField()),
        )
    )
    with_clause = "WITH " + ", ".join(ctes)
    where = [
        "i.project_id = %s",
        f"NOT EXISTS (SELECT 1 FROM {ann} m WHERE m.item_id = i.id AND m.labeler_id = %s"
        " AND m.is_current)",
        f"NOT EXISTS (SELECT 1 FROM {asg} h WHERE h.item_id = i.id AND h.labeler_id = %s)",
        f"{load} < {target}",
    ]
    params += [project.pk, labeler_id, labeler_id, *target_params]
    if exclude_ids:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(exclude_ids))})")
        params += list(exclude_ids)
    condition = " AND ".join(where)
    if count:
        return f"{with_clause} SELECT COUNT(*) FROM {item} i {joins} WHERE {condition}", params
    sql = (
        f"{with_clause} SELECT i.id, {load} AS load FROM {item} i {joins} WHERE {condition}"
        " ORDER BY 2 DESC, 1 LIMIT 1"
    )
    if lock and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF i SKIP LOCKED"
    return sql, params


def _fetchone(sql: str, params: list, *, hash_joins: bool = False):
    """Run one statement. ``hash_joins`` (PostgreSQL): the candidate statements join
    every item of the project to small aggregates; with fresh statistics (a new project,
    a bulk import, labels added since the last ANALYZE) the planner estimates one row
    each and picks nested loops that rescan the aggregate per item (measured 300 ms on
    2,000 items instead of 2 ms). Hash joins are right for this statement at any size,
    so nested loops are turned off for it alone (SET LOCAL, inside its own savepoint
    or transaction)."""
    if hash_joins and connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_nestloop = off")
            cursor.execute(sql, params)
            # Left off until the transaction ends: what follows in a hand-out is a few
            # primary-key reads and one insert, for which the setting does not matter.
            return cursor.fetchone()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def item_load(item_id: int, labeler_id: int, now: datetime) -> int:
    """The item's load as seen by ``labeler_id`` (see ``_load_sql``), read afresh."""
    when = connection.ops.adapt_datetimefield_value(now)
    sql = f"SELECT {_load_sql()} FROM {Item._meta.db_table} i WHERE i.id = %s"
    return int(_fetchone(sql, [when, labeler_id, item_id])[0])


def best_candidate(
    project: Project,
    labeler: AbstractBaseUser,
    *,
    now: datetime | None = None,
    lock: bool = False,
    exclude_ids: Sequence[int] = (),
) -> tuple[int, int] | None:
    """``(item id, load)`` of the item ``labeler`` should get next, or None.

    Excludes items the labeler labeled or was ever handed, and items whose load reached
    their target (``overlap``, or the dynamic target computed in SQL). Highest load
    first, then oldest. With ``lock`` the row is locked with SKIP LOCKED (PostgreSQL).
    """
    sql, params = _candidate_query(
        project, labeler.pk, now or timezone.now(), lock=lock, exclude_ids=exclude_ids
    )
    row = _fetchone(sql, params, hash_joins=True)
    return (int(row[0]), int(row[1])) if row else None


def count_candidates(
    project: Project, labeler: AbstractBaseUser, *, now: datetime | None = None
) -> int:
    """How many items ``labeler`` could still be handed (same rules as the hand-out)."""
    sql, params = _candidate_query(project, labeler.pk, now or timezone.now(), count=True)
    return int(_fetchone(sql, params, hash_joins=True)[0])


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
    """``{done, total}`` for one labeler: their current labels, and those plus the items
    still open to them (counted with the same rules as the hand-out)."""
    now = timezone.now()
    done = Annotation.objects.filter(project=project, labeler=labeler, is_current=True).count()
    held = _live_assignments(now).filter(project=project, labeler=labeler).count()
    remaining = count_candidates(project, labeler, now=now)
    return {"done": done, "total": done + held + remaining}


# --- Writes ---------------------------------------------------------------------------
def _lock_labeler(project: Project, labeler: AbstractBaseUser) -> None:
    # One hand-out at a time per labeler and project, so two tabs cannot hold two items.
    list(
        ProjectMembership.objects.select_for_update()
        .filter(project=project, user=labeler)
        .values_list("pk", flat=True)
    )


def next_item_for(project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    """Hand ``labeler`` their next item in ``project``, or None when nothing is left.

    Returns the labeler's unexpired active assignment if they hold one; otherwise picks
    the best candidate (see the module docstring), locks it, re-checks it and creates an
    active assignment that expires after ``project.assignment_ttl_minutes``.
    """
    with transaction.atomic():
        now = timezone.now()
        _lock_labeler(project, labeler)
        held = held_assignment(project, labeler, now=now)
        if held is not None:
            return held
        # Lazy expiry of this labeler's abandoned assignments.
        Assignment.objects.filter(
            project=project,
            labeler=labeler,
            status=AssignmentStatus.ACTIVE,
            expires_at__lte=now,
        ).update(status=AssignmentStatus.EXPIRED, completed_at=now)
        tried: list[int] = []
        for _ in range(MAX_TRIES):
            found = best_candidate(project, labeler, now=now, lock=True, exclude_ids=tried)
            if found is None:
                return None
            item_id = found[0]
            tried.append(item_id)
            # Re-count now that the row lock is held (see module docstring).
            now = timezone.now()
            target = selectors.item_targets(project, [item_id])[item_id]
            if item_load(item_id, labeler.pk, now) >= target:
                continue
            return Assignment.objects.create(
                project=project,
                item_id=item_id,
                labeler=labeler,
                status=AssignmentStatus.ACTIVE,
                reason=REASON_OVERLAP,
                expires_at=now + timedelta(minutes=project.assignment_ttl_minutes),
            )
        return None


def _active_assignment(item: Item, labeler: AbstractBaseUser) -> Assignment | None:
    return (
        Assignment.objects.select_for_update()
        .filter(item=item, labeler=labeler, status=AssignmentStatus.ACTIVE)
        .order_by("created_at")
        .first()
    )


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
    item (active, or expired but not re-handed to them) or free room under the item's
    target, so a direct POST cannot push an item past its overlap. Raises
    ``AssignmentError`` (a ValidationError) otherwise.
    """
    now = timezone.now()
    assignment = _active_assignment(item, labeler)
    if assignment is None:
        # A label without a reserved slot changes the item's load, like a hand-out does:
        # lock the item. With an assignment the slot is already counted (active becomes
        # submitted), so concurrent hand-outs of the item need not wait for this submit.
        item = Item.objects.select_for_update(of=("self",)).get(pk=item.pk)
    project = item.project
    if assignment_id is not None and (assignment is None or assignment.pk != assignment_id):
        stale = Assignment.objects.filter(pk=assignment_id, item=item, labeler=labeler).first()
        if stale is None:
            raise AssignmentError({"assignment": "this assignment is not yours for this item"})
        if stale.status in (AssignmentStatus.SKIPPED, AssignmentStatus.CANCELLED):
            raise AssignmentError({"assignment": f"this assignment was {stale.status}"})
    has_label = Annotation.objects.filter(item=item, labeler=labeler, is_current=True).exists()
    if not has_label and assignment is None:
        handed = Assignment.objects.filter(
            item=item, labeler=labeler, status=AssignmentStatus.EXPIRED
        ).exists()
        if not handed:
            load = item_load(item.pk, labeler.pk, now)
            if load >= selectors.item_targets(project, [item.pk])[item.pk]:
                raise AssignmentError(
                    {"item": "this item has all the labels it needs; ask for the next item"}
                )
    reason = ""
    if assignment is not None and assignment.reason == REASON_RELABEL:
        reason = "relabel requested"
    annotation = services.submit_annotation(
        item=item,
        labeler=labeler,
        value=value,
        time_spent_ms=time_spent_ms,
        comment=comment,
        source=source,
        reason=reason,
    )
    if assignment is not None:
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.completed_at = now
        assignment.save(update_fields=["status", "completed_at"])
    return annotation


@transaction.atomic
def skip_assignment(*, assignment: Assignment, labeler: AbstractBaseUser, reason: str = "") -> None:
    """The labeler passes on an item; it is not handed to them again."""
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.labeler_id != labeler.pk:
        raise PermissionDenied("this assignment is not yours")
    if assignment.status != AssignmentStatus.ACTIVE:
        raise AssignmentError({"assignment": f"this assignment is {assignment.status}"})
    assignment.status = AssignmentStatus.SKIPPED
    assignment.completed_at = timezone.now()
    assignment.save(update_fields=["status", "completed_at"])
    events.assignment_skipped(
        project_id=assignment.project_id,
        actor_id=labeler.pk,
        assignment_id=assignment.pk,
        item_id=assignment.item_id,
        reason=reason,
    )


def expire_stale_assignments(*, now: datetime | None = None) -> int:
    """Mark every active assignment past its ``expires_at`` expired; returns how many.

    Counts already ignore such rows; this only tidies statuses (a periodic task may call
    it). Safe to run at any time and concurrently.
    """
    now = now or timezone.now()
    return Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__lte=now).update(
        status=AssignmentStatus.EXPIRED, completed_at=now
    )


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
    event per item records who asked, whom and why.
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
    return created


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
