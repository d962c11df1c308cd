"""Hand-out rules on the embedded database (SQLite): overlap, expiry, skip, relabel,
dynamic overlap targets, and the invariants of the concurrency test run sequentially."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from labeling import assignment as A
from labeling import selectors, services
from labeling.models import Annotation, AssignmentStatus, Role
from provenance.models import Event

pytestmark = pytest.mark.django_db


def make_items(project, n, prefix="it"):
    from labeling.models import Item, PayloadKind

    return [
        Item.objects.create(
            project=project, external_id=f"{prefix}{i}", kind=PayloadKind.TEXT, text=f"text {i}"
        )
        for i in range(n)
    ]


@pytest.fixture
def clock(monkeypatch):
    """Move the clock forward: ``clock(minutes=31)`` (the hand-out state sees time pass
    only through the clock, never through rows edited behind its back)."""
    real_now = timezone.now
    offset = timedelta()

    def advance(**delta):
        nonlocal offset
        offset += timedelta(**delta)
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return advance


def add_labelers(project, make_user, n, prefix="lab"):
    users = [make_user(f"{prefix}{i}") for i in range(n)]
    for u in users:
        services.set_membership(project=project, user=u, role=Role.LABELER)
    return users


def test_next_item_returns_the_held_assignment_until_submitted(project, labelers):
    make_items(project, 3)
    first = A.next_item_for(project, labelers[0])
    again = A.next_item_for(project, labelers[0])
    assert again.pk == first.pk
    A.submit_label(item=first.item, labeler=labelers[0], value="scratch", assignment_id=first.pk)
    first.refresh_from_db()
    assert first.status == AssignmentStatus.SUBMITTED
    nxt = A.next_item_for(project, labelers[0])
    assert nxt.item_id != first.item_id


def test_prefers_items_closest_to_complete_then_oldest(project, labelers, make_user):
    items = make_items(project, 3)
    services.submit_annotation(item=items[2], labeler=labelers[1], value="dent")
    handed = A.next_item_for(project, labelers[0])
    assert handed.item_id == items[2].pk  # one label already: closest to its overlap
    other = A.next_item_for(project, labelers[2])
    assert other.item_id == items[2].pk  # one label + one active assignment
    outsider = add_labelers(project, make_user, 1, "x")[0]
    assert A.next_item_for(project, outsider).item_id == items[0].pk  # items[2] is full


def test_never_beyond_overlap_and_never_twice_to_one_labeler(project, make_user):
    """The concurrency invariants, sequentially: 6 labelers x many cycles, overlap 3."""
    items = make_items(project, 10)
    team = add_labelers(project, make_user, 6)
    handed_pairs = []
    for _ in range(20):
        for labeler in team:
            handed = A.next_item_for(project, labeler)
            if handed is None:
                continue
            handed_pairs.append((handed.item_id, labeler.pk))
            A.submit_label(item=handed.item, labeler=labeler, value="dent", assignment_id=handed.pk)
    assert len(handed_pairs) == len(set(handed_pairs))
    for item in items:
        assert Annotation.objects.filter(item=item, is_current=True).count() == 3
    assert len(handed_pairs) == 30  # none lost: every slot filled, nothing extra
    assert all(A.next_item_for(project, u) is None for u in team)


def test_expired_assignment_frees_the_slot_and_is_marked_lazily(project, make_user, clock):
    project.overlap = 1
    project.save(update_fields=["overlap"])
    (item,) = make_items(project, 1)
    ana, ben = add_labelers(project, make_user, 2)
    held = A.next_item_for(project, ana)
    assert A.next_item_for(project, ben) is None  # the only slot is taken
    clock(minutes=project.assignment_ttl_minutes + 1)
    given = A.next_item_for(project, ben)
    assert given is not None and given.item_id == item.pk
    # Ana abandoned it: she is not handed it again, and her row gets marked expired.
    assert A.next_item_for(project, ana) is None
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED


def test_expire_stale_assignments_marks_only_past_due(project, labelers, clock):
    make_items(project, 2)
    a = A.next_item_for(project, labelers[0])
    clock(minutes=20)
    b = A.next_item_for(project, labelers[1])
    clock(minutes=15)  # a is 35 minutes old (expired after 30), b 15
    assert A.expire_stale_assignments() == 1
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == (AssignmentStatus.EXPIRED, AssignmentStatus.ACTIVE)


def test_skip_is_final_for_that_labeler_but_not_for_others(project, labelers):
    (item,) = make_items(project, 1)
    held = A.next_item_for(project, labelers[0])
    A.skip_assignment(assignment=held, labeler=labelers[0])
    assert A.next_item_for(project, labelers[0]) is None
    assert A.next_item_for(project, labelers[1]).item_id == item.pk
    assert Event.objects.filter(verb="assignment.skipped", item_id_ref=item.pk).count() == 1


def test_skip_refuses_someone_elses_assignment(project, labelers):
    make_items(project, 1)
    held = A.next_item_for(project, labelers[0])
    with pytest.raises(Exception, match="not yours"):
        A.skip_assignment(assignment=held, labeler=labelers[1])


def test_direct_first_label_refused_when_item_is_full(project, make_user):
    project.overlap = 1
    project.save(update_fields=["overlap"])
    (item,) = make_items(project, 1)
    ana, ben = add_labelers(project, make_user, 2)
    A.next_item_for(project, ana)
    with pytest.raises(ValidationError, match="all the labels"):
        A.submit_label(item=item, labeler=ben, value="dent")


def test_second_submission_is_a_revision(project, labelers):
    make_items(project, 1)
    held = A.next_item_for(project, labelers[0])
    first = A.submit_label(item=held.item, labeler=labelers[0], value="dent")
    second = A.submit_label(item=held.item, labeler=labelers[0], value="scratch")
    first.refresh_from_db()
    assert not first.is_current and second.is_current and second.supersedes_id == first.pk


def test_relabel_with_labelers_creates_relabel_assignments_handed_first(project, labelers):
    items = make_items(project, 3)
    ana = labelers[0]
    services.submit_annotation(item=items[0], labeler=ana, value="dent")
    created = A.request_relabel(
        project=project,
        item_ids=[items[0].pk],
        labelers=[ana],
        reason="guideline v2 changed dents",
        actor=None,
    )
    assert [(a.item_id, a.labeler_id, a.reason) for a in created] == [
        (items[0].pk, ana.pk, "relabel")
    ]
    handed = A.next_item_for(project, ana)
    assert handed.pk == created[0].pk
    revised = A.submit_label(item=items[0], labeler=ana, value="scratch", assignment_id=handed.pk)
    assert revised.supersedes is not None  # kept, not overwritten
    assert Annotation.objects.filter(item=items[0], labeler=ana).count() == 2
    ev = Event.objects.get(verb="item.relabel_requested", item_id_ref=items[0].pk)
    assert ev.reason == "guideline v2 changed dents"
    assert Event.objects.filter(verb="annotation.revised", reason="relabel requested").exists()


def test_relabel_without_labelers_goes_back_to_those_who_labeled(project, labelers):
    (item,) = make_items(project, 1)
    for u in labelers[:2]:
        services.submit_annotation(item=item, labeler=u, value="dent")
    created = A.request_relabel(
        project=project, item_ids=[item.pk], labelers=None, reason="unclear", actor=None
    )
    assert sorted(a.labeler_id for a in created) == sorted(u.pk for u in labelers[:2])
    # Relabels of one's own label add no load: the third labeler still gets the item.
    assert A.next_item_for(project, labelers[2]).item_id == item.pk


def test_relabel_needs_a_reason_and_project_items(project, labelers, manager):
    (item,) = make_items(project, 1)
    with pytest.raises(ValidationError):
        A.request_relabel(project=project, item_ids=[item.pk], reason="", actor=manager)
    with pytest.raises(ValidationError, match="not in this project"):
        A.request_relabel(project=project, item_ids=[item.pk + 999], reason="x", actor=manager)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([], 2),
        (["a"], 2),
        (["a", "a"], 2),
        (["a", "b"], 3),
        (["a", "b", "a"], 3),
        (["a", "b", "c"], 4),
        (["a", "b", "c", "a"], 5),
        (["a", "b", "c", "d", "e"], 5),
        (["a", "a", "b"], 3),  # a majority of three agrees
    ],
)
def test_dynamic_target_min2_max5(labels, expected):
    assert selectors.dynamic_target(labels, min_overlap=2, max_overlap=5) == expected


def test_dynamic_target_min3_first_three_disagree_but_majority_stops():
    assert selectors.dynamic_target(["a", "a", "b"], min_overlap=3, max_overlap=5) == 3
    assert selectors.dynamic_target(["a", "b", "c"], min_overlap=3, max_overlap=5) == 4


def test_dynamic_overlap_hands_out_more_only_on_disagreement(project, make_user):
    project.dynamic_overlap, project.min_overlap, project.max_overlap = True, 2, 4
    project.save(update_fields=["dynamic_overlap", "min_overlap", "max_overlap"])
    agree, disagree = make_items(project, 2)
    team = add_labelers(project, make_user, 5)
    for u, v in zip(team[:2], ["dent", "dent"], strict=True):
        services.submit_annotation(item=agree, labeler=u, value=v)
    for u, v in zip(team[:2], ["dent", "scratch"], strict=True):
        services.submit_annotation(item=disagree, labeler=u, value=v)
    assert selectors.item_targets(project, [agree.pk, disagree.pk]) == {agree.pk: 2, disagree.pk: 3}
    handed = A.next_item_for(project, team[2])
    assert handed.item_id == disagree.pk
    assert A.next_item_for(project, team[3]) is None  # 2 labels + 1 active = target 3
    A.submit_label(item=disagree, labeler=team[2], value="scratch", assignment_id=handed.pk)
    assert A.next_item_for(project, team[3]) is None  # 2 of 3 agree: done at 3


def test_progress_counts_own_labels_and_open_items(project, labelers):
    make_items(project, 4)
    held = A.next_item_for(project, labelers[0])
    assert A.labeler_progress(project, labelers[0]) == {
        "done": 0,
        "total": 4,
        "total_is_lower_bound": False,
    }
    A.submit_label(item=held.item, labeler=labelers[0], value="dent", assignment_id=held.pk)
    assert A.labeler_progress(project, labelers[0]) == {
        "done": 1,
        "total": 4,
        "total_is_lower_bound": False,
    }


def test_previous_label_walks_back_through_own_labels(project, labelers):
    items = make_items(project, 3)
    for it in items:
        services.submit_annotation(item=it, labeler=labelers[0], value="dent")
    services.submit_annotation(item=items[0], labeler=labelers[1], value="dent")
    assert A.previous_label(project, labelers[0]).item_id == items[2].pk
    assert A.previous_label(project, labelers[0], before_item_id=items[2].pk).item_id == items[1].pk


def test_dynamic_overlap_skips_many_done_items_to_reach_a_fresh_one(project, make_user):
    """Items done at min_overlap must not crowd the top of the order (they have the
    highest load): the hand-out filters them in the query, not by trying each."""
    project.dynamic_overlap, project.min_overlap, project.max_overlap = True, 2, 5
    project.save(update_fields=["dynamic_overlap", "min_overlap", "max_overlap"])
    items = make_items(project, 35)
    ana, ben, cy = add_labelers(project, make_user, 3)
    done, fresh = items[:-1], items[-1]
    for item in done:
        services.submit_annotation(item=item, labeler=ana, value="dent")
        services.submit_annotation(item=item, labeler=ben, value="dent")
    assert A.count_candidates(project, cy) == 1
    assert A.next_item_for(project, cy).item_id == fresh.pk


def test_dynamic_target_in_sql_agrees_with_dynamic_target(project, make_user):
    """The SQL filter and the Python rule give the same open items, on label sequences
    grown the way the hand-out grows them (a label is added only while not done)."""
    import random

    project.dynamic_overlap, project.min_overlap, project.max_overlap = True, 2, 5
    project.save(update_fields=["dynamic_overlap", "min_overlap", "max_overlap"])
    rng = random.Random(4)
    team = add_labelers(project, make_user, 6)
    items = make_items(project, 40)
    expected_open = 0
    for item in items:
        labels: list[str] = []
        stop_at = rng.randint(0, 5)
        while len(labels) < stop_at and selectors.dynamic_target(
            labels, min_overlap=2, max_overlap=5
        ) > len(labels):
            labels.append(rng.choice(["dent", "scratch", "no_defect"]))
        for labeler, value in zip(team, labels, strict=False):
            services.submit_annotation(item=item, labeler=labeler, value=value)
        expected_open += selectors.dynamic_target(labels, min_overlap=2, max_overlap=5) > len(
            labels
        )
    assert A.count_candidates(project, team[5]) == expected_open


def _deadlock() -> Exception:
    import psycopg.errors
    from django.db import OperationalError

    try:
        raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected("d")
    except OperationalError as exc:
        return exc


@pytest.mark.django_db(transaction=True)
def test_a_handout_aborted_by_a_deadlock_is_retried_and_keeps_nothing(
    project, labelers, monkeypatch
):
    """PostgreSQL breaks a deadlock by aborting one transaction; the hand-out tries again
    in a fresh one, and the aborted attempt leaves no assignment behind."""
    from labeling import handout
    from labeling.models import Assignment

    make_items(project, 2)
    real_expire = handout.expire_lapsed_holds
    failures = {"left": 2}

    def expire_then_deadlock(*args, **kwargs):
        real_expire(*args, **kwargs)
        if failures["left"]:
            failures["left"] -= 1
            raise _deadlock()
        return 0

    monkeypatch.setattr(handout, "expire_lapsed_holds", expire_then_deadlock)
    got = A.next_item_for(project, labelers[0])
    assert failures["left"] == 0 and got is not None
    assert list(Assignment.objects.values_list("pk", flat=True)) == [got.pk]
    assert handout.verify_project(project).ok


@pytest.mark.django_db(transaction=True)
def test_a_handout_gives_up_after_its_retries_and_never_retries_other_errors(
    project, labelers, monkeypatch
):
    from django.db import OperationalError

    from labeling import handout
    from labeling.models import Assignment

    make_items(project, 1)
    calls = {"n": 0}

    def always(exc_factory):
        def fail(*args, **kwargs):
            calls["n"] += 1
            raise exc_factory()

        return fail

    monkeypatch.setattr(handout, "expire_lapsed_holds", always(_deadlock))
    with pytest.raises(OperationalError):
        A.next_item_for(project, labelers[0])
    assert calls["n"] == A.DEADLOCK_RETRIES + 1

    calls["n"] = 0
    monkeypatch.setattr(handout, "expire_lapsed_holds", always(lambda: OperationalError("gone")))
    with pytest.raises(OperationalError):
        A.next_item_for(project, labelers[0])
    assert calls["n"] == 1
    assert not Assignment.objects.exists()
