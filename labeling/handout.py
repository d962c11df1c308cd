"""The per-item hand-out state: what the hand-out needs to find the next item by an index
range scan instead of recounting the project (issue 14, item 1).

Each item carries (``labeling.models.Item``, fields ``handout_*``):

* ``handout_labels``: its current labels that count toward overlap: every current
  annotation except those of labelers who answered the item as a ground-truth check
  (``CheckAnswer``), which never count;
* ``handout_top``: how many of those agree with the most common one
  (``selectors.label_identity``), for dynamic overlap;
* ``handout_holds``: unexpired active assignments of labelers who have no current label
  on the item (a relabel of one's own label adds no load);
* ``handout_load`` = labels + holds (the hand-out takes the highest load first);
* ``handout_open``: load below the item's target (``selectors.item_target``) and the
  item is not a check;
* ``handout_hold_expires_at``: the earliest expiry among the holds, so that lazy expiry
  finds the items whose holds have lapsed by an index range scan.

How it is kept: every write that can move an item's state locks the item row and then
calls :func:`refresh_items`, which recomputes the state of those items from their own
rows (their annotations, assignments and check answers: a handful of rows each, so the
cost does not grow with the project). Under READ COMMITTED the recount runs after the
row lock is held, so it sees every committed change of every other writer (they all
lock the row before writing). Writers lock item rows before assignment rows, in pk
order, so they cannot deadlock.

Time moves holds too: a hold counts until its ``expires_at``. Counters cannot see time
pass, so :func:`expire_lapsed_holds` (run at the start of every hand-out, and by the
periodic task) marks lapsed assignments expired and refreshes their items; between two
runs a lapsed hold keeps its item closed a little longer, which never breaks "never past
overlap" and is repaired at the next hand-out ("never lost").

Class merges do not move the state: dynamic overlap compares labels by their class as
stored (``selectors.label_identity``), not through merges.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling import selectors
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    CheckAnswer,
    Item,
    LabelerState,
    Project,
)

STATE_FIELDS = (
    "handout_labels",
    "handout_top",
    "handout_holds",
    "handout_load",
    "handout_open",
    "handout_hold_expires_at",
)
# Items per statement when many states are computed at once (imports, rebuilds).
CHUNK = 2000
# Lapsed items expired per hand-out: bounded, so one request never pays for a backlog.
EXPIRY_BATCH = 50


@dataclass(frozen=True)
class ItemState:
    """One item's hand-out state (the ``handout_*`` fields, same names without prefix)."""

    labels: int
    top: int
    holds: int
    load: int
    open: bool
    hold_expires_at: datetime | None

    def as_fields(self) -> dict:
        return {
            "handout_labels": self.labels,
            "handout_top": self.top,
            "handout_holds": self.holds,
            "handout_load": self.load,
            "handout_open": self.open,
            "handout_hold_expires_at": self.hold_expires_at,
        }


def item_state(
    project: Project,
    *,
    is_check: bool,
    labels: Sequence[tuple[int, tuple]],
    holds: Sequence[tuple[int, datetime]],
    check_labelers: set[int],
) -> ItemState:
    """The state of one item from its rows.

    ``labels``: ``(labeler id, label identity)`` of its current annotations;
    ``holds``: ``(labeler id, expires_at)`` of its unexpired active assignments;
    ``check_labelers``: labelers who answered it as a check (their labels do not count).
    """
    with_label = {labeler for labeler, _ in labels}
    counted = [identity for labeler, identity in labels if labeler not in check_labelers]
    top = Counter(counted).most_common(1)[0][1] if counted else 0
    live = [expires for labeler, expires in holds if labeler not in with_label]
    load = len(counted) + len(live)
    target = selectors.item_target(project, n=len(counted), top=top)
    return ItemState(
        labels=len(counted),
        top=top,
        holds=len(live),
        load=load,
        open=(not is_check) and load < target,
        hold_expires_at=min(live) if live else None,
    )


def _aware(value) -> datetime | None:
    """A datetime read by raw SQL as the ORM would give it: aware, in UTC (SQLite hands
    back naive datetimes or text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def state_from_row(row: Sequence) -> ItemState:
    """An :class:`ItemState` from the :data:`STATE_FIELDS` columns read by raw SQL."""
    labels, top, holds, load, is_open, expires = row
    return ItemState(labels, top, holds, load, bool(is_open), _aware(expires))


def add_hold(project: Project, item_id: int, state: ItemState, expires_at: datetime) -> None:
    """One more hold on a locked item whose stored ``state`` was just read under the lock,
    by a labeler without a label on it: the same as a recount, in one UPDATE. A lapsed
    hold still counted in ``state`` stays counted (and its expiry stays the earliest, so
    lazy expiry still finds the item)."""
    load = state.load + 1
    earliest = state.hold_expires_at
    _write(
        {
            item_id: ItemState(
                labels=state.labels,
                top=state.top,
                holds=state.holds + 1,
                load=load,
                open=load < selectors.item_target(project, n=state.labels, top=state.top),
                hold_expires_at=expires_at if earliest is None else min(earliest, expires_at),
            )
        }
    )


def _rows(sql: str, params: Sequence) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def _states(
    project: Project, item_ids: Sequence[int], now: datetime, locked: Item | None = None
) -> tuple[dict[int, ItemState], dict[int, ItemState]]:
    """``(recounted, stored)`` states of ``item_ids`` (those in ``project``): three
    statements per :data:`CHUNK` items (the item rows, their current labels with whether
    the labeler answered the item as a check, their live holds); two when ``locked`` is
    the one item, read under its row lock in this transaction with its state unwritten
    since. Hand-written SQL: this runs in every submit and hand-out, and building the ORM
    queries cost several times more than running them."""
    item, ann = Item._meta.db_table, Annotation._meta.db_table
    asg, chk = Assignment._meta.db_table, CheckAnswer._meta.db_table
    when = connection.ops.adapt_datetimefield_value(now)
    fresh: dict[int, ItemState] = {}
    stored: dict[int, ItemState] = {}
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        marks = ", ".join(["%s"] * len(chunk))
        checks = {}
        if locked is not None and chunk == [locked.pk] and locked.project_id == project.pk:
            item_rows = [(locked.pk, locked.is_check, *(getattr(locked, f) for f in STATE_FIELDS))]
        else:
            item_rows = _rows(
                f"SELECT id, is_check, {', '.join(STATE_FIELDS)} FROM {item}"
                f" WHERE project_id = %s AND id IN ({marks})",
                [project.pk, *chunk],
            )
        for pk, is_check, labels, top, holds, load, is_open, expires in item_rows:
            checks[pk] = bool(is_check)
            stored[pk] = ItemState(labels, top, holds, load, bool(is_open), _aware(expires))
        labels_of: dict[int, list] = defaultdict(list)
        answered: dict[int, set] = defaultdict(set)
        for item_id, labeler_id, class_id, number, text, was_check in _rows(
            f"SELECT a.item_id, a.labeler_id, a.label_class_id, a.value_number, a.value_text,"
            f" EXISTS (SELECT 1 FROM {chk} c WHERE c.item_id = a.item_id"
            f" AND c.labeler_id = a.labeler_id) FROM {ann} a"
            f" WHERE a.item_id IN ({marks}) AND a.is_current",
            chunk,
        ):
            labels_of[item_id].append(
                (labeler_id, selectors.label_identity(class_id, number, text))
            )
            if was_check:
                answered[item_id].add(labeler_id)
        holds_of: dict[int, list] = defaultdict(list)
        for item_id, labeler_id, expires_at in _rows(
            f"SELECT item_id, labeler_id, expires_at FROM {asg} WHERE item_id IN ({marks})"
            " AND status = %s AND expires_at > %s",
            [*chunk, AssignmentStatus.ACTIVE.value, when],
        ):
            holds_of[item_id].append((labeler_id, _aware(expires_at)))
        for item_id, is_check in checks.items():
            fresh[item_id] = item_state(
                project,
                is_check=is_check,
                labels=labels_of[item_id],
                holds=holds_of[item_id],
                check_labelers=answered[item_id],
            )
    return fresh, stored


def compute_states(
    project: Project, item_ids: Iterable[int], *, now: datetime | None = None
) -> dict[int, ItemState]:
    """``{item id: ItemState}`` recounted from the items' rows. Items not in ``project``
    are left out."""
    return _states(project, sorted(set(item_ids)), now or timezone.now())[0]


def stored_states(project: Project, item_ids: Iterable[int] | None = None) -> dict[int, ItemState]:
    """The states as stored on the items (all of the project's items when ``item_ids`` is
    None)."""
    items = Item.objects.filter(project=project)
    if item_ids is not None:
        items = items.filter(pk__in=list(item_ids))
    return {
        row[0]: ItemState(*row[1:])
        for row in items.values_list("pk", *STATE_FIELDS).iterator(chunk_size=CHUNK)
    }


def _write(states: dict[int, ItemState]) -> None:
    """Store the states: one UPDATE per item for the few items of a request, batched
    UPDATEs for many (an import)."""
    if len(states) <= 20:
        sql = (
            f"UPDATE {Item._meta.db_table} SET "
            + ", ".join(f"{name} = %s" for name in STATE_FIELDS)
            + " WHERE id = %s"
        )
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            for item_id, st in states.items():
                cursor.execute(
                    sql,
                    [
                        st.labels,
                        st.top,
                        st.holds,
                        st.load,
                        st.open,
                        adapt(st.hold_expires_at),
                        item_id,
                    ],
                )
        return
    rows = []
    for item_id, state in states.items():
        item = Item(pk=item_id)
        for name, value in state.as_fields().items():
            setattr(item, name, value)
        rows.append(item)
    Item.objects.bulk_update(rows, list(STATE_FIELDS), batch_size=500)


def refresh_items(
    project: Project,
    item_ids: Iterable[int],
    *,
    now: datetime | None = None,
    locked: Item | None = None,
) -> None:
    """Recompute and store the state of ``item_ids``. The caller holds their row locks
    (see the module docstring) inside its transaction; only rows whose state changed are
    written. Four queries for one item; three when the caller passes the item as
    ``locked``: the instance it read with its lock, whose state nothing has written
    since."""
    ids = sorted(set(item_ids))
    if not ids:
        return
    fresh, stored = _states(project, ids, now or timezone.now(), locked)
    _write({i: s for i, s in fresh.items() if stored.get(i) != s})


def lock_items(item_ids: Iterable[int]) -> list[int]:
    """Lock the item rows in pk order (the order every writer uses); returns their ids."""
    return list(
        Item.objects.select_for_update()
        .filter(pk__in=sorted(set(item_ids)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def expire_lapsed_holds(project: Project, *, now: datetime | None = None) -> int:
    """Mark the lapsed active assignments of up to :data:`EXPIRY_BATCH` items of
    ``project`` expired and refresh those items; returns how many items were refreshed.

    Found by the index on ``handout_hold_expires_at``: when nothing has lapsed this is one
    index probe. Items another transaction holds are skipped (that writer's own refresh
    recounts with the clock), so a hand-out never waits here.
    """
    now = now or timezone.now()
    lapsed = list(
        Item.objects.filter(project=project, handout_hold_expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:EXPIRY_BATCH]
    )
    if not lapsed:
        return 0
    locked = list(
        Item.objects.select_for_update(skip_locked=True)
        .filter(pk__in=lapsed)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Assignment.objects.filter(
        item_id__in=locked, status=AssignmentStatus.ACTIVE, expires_at__lte=now
    ).update(status=AssignmentStatus.EXPIRED, completed_at=now)
    refresh_items(project, locked, now=now)
    return len(locked)


@transaction.atomic
def rebuild_project(project: Project, *, now: datetime | None = None) -> int:
    """Recompute every item's state and every labeler's counters in ``project`` (after a
    change that moves all of them: the overlap settings, a bulk import, a repair).
    Returns how many items changed. Linear in the project; never on a request path."""
    now = now or timezone.now()
    changed = 0
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        fresh, stored = _states(project, ids[start : start + CHUNK], now)
        stale = {i: s for i, s in fresh.items() if stored.get(i) != s}
        _write(stale)
        changed += len(stale)
    rebuild_labeler_counts(project)
    return changed


def labeler_counts(project: Project) -> dict[int, int]:
    """``{labeler id: current labels in project}``, recounted (one grouped query)."""
    return dict(
        Annotation.objects.filter(project=project, is_current=True)
        .values("labeler_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("labeler_id", "n")
    )


def rebuild_labeler_counts(project: Project, labeler_ids: Iterable[int] | None = None) -> None:
    """Set ``LabelerState.n_done`` from a recount (all labelers with labels, or those
    given)."""
    counts = labeler_counts(project)
    wanted = set(counts) if labeler_ids is None else set(labeler_ids)
    if labeler_ids is None:
        wanted |= set(
            LabelerState.objects.filter(project=project).values_list("labeler_id", flat=True)
        )
    for labeler_id in sorted(wanted):
        state, _ = LabelerState.objects.get_or_create(project=project, labeler_id=labeler_id)
        if state.n_done != counts.get(labeler_id, 0):
            state.n_done = counts.get(labeler_id, 0)
            state.save(update_fields=["n_done"])


def labeler_state(project: Project, labeler_id: int, *, lock: bool = False) -> LabelerState:
    """The labeler's counters in ``project`` (created on first use, from a recount of
    their labels so that labels imported before they existed are counted)."""
    qs = LabelerState.objects.filter(project=project, labeler_id=labeler_id)
    if lock:
        qs = qs.select_for_update()
    state = qs.first()
    if state is None:
        n_done = Annotation.objects.filter(
            project=project, labeler_id=labeler_id, is_current=True
        ).count()
        state, _ = LabelerState.objects.get_or_create(
            project=project, labeler_id=labeler_id, defaults={"n_done": n_done}
        )
        if lock:
            state = LabelerState.objects.select_for_update().get(pk=state.pk)
    return state


def add_done(project: Project, labeler_id: int, delta: int) -> None:
    """Move the labeler's ``n_done`` counter by ``delta`` (a first label: +1), atomically."""
    updated = LabelerState.objects.filter(project=project, labeler_id=labeler_id).update(
        n_done=F("n_done") + delta
    )
    if not updated:  # no counter yet: created from a recount, which includes this label
        labeler_state(project, labeler_id)


@dataclass
class Verification:
    """What :func:`verify_project` found: items whose stored state differs from a recount
    (``{item id: (stored, recounted)}``) and labelers whose ``n_done`` differs
    (``{labeler id: (stored, recounted)}``)."""

    items: dict[int, tuple[ItemState | None, ItemState]]
    labelers: dict[int, tuple[int | None, int]]

    @property
    def ok(self) -> bool:
        return not self.items and not self.labelers


def verify_project(project: Project, *, repair: bool = False) -> Verification:
    """Compare every item's stored hand-out state and every labeler's ``n_done`` with a
    full recount; with ``repair`` store the recount (items locked in pk order, chunk by
    chunk). Returns what differed (before any repair). Linear in the project."""
    now = timezone.now()
    wrong_items: dict[int, tuple[ItemState | None, ItemState]] = {}
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with transaction.atomic():
            if repair:
                lock_items(chunk)
            fresh, stored = _states(project, chunk, now)
            stale = {i: s for i, s in fresh.items() if stored.get(i) != s}
            wrong_items.update({i: (stored.get(i), s) for i, s in stale.items()})
            if repair:
                _write(stale)
    counts = labeler_counts(project)
    kept = dict(LabelerState.objects.filter(project=project).values_list("labeler_id", "n_done"))
    # A labeler with labels and no counter yet is not drift: the counter is created from a
    # recount on first use. Only stored counters that differ are.
    wrong_labelers = {
        labeler: (n, counts.get(labeler, 0))
        for labeler, n in kept.items()
        if n != counts.get(labeler, 0)
    }
    if repair and wrong_labelers:
        with transaction.atomic():
            rebuild_labeler_counts(project, wrong_labelers)
    return Verification(items=wrong_items, labelers=wrong_labelers)
