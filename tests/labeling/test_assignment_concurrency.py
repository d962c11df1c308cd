"""Concurrent hand-outs on PostgreSQL: 8 labelers x 50 next-item/submit cycles, overlap 3.

Each thread has its own database connection (Django connections are per thread), so
the hand-outs really race: SELECT ... FOR UPDATE SKIP LOCKED plus the re-count under
the lock must keep every invariant. SQLite serialises writers, so this test needs
PostgreSQL (CI's second leg); the same invariants are checked sequentially on SQLite in
test_assignment.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection, connections

from labeling import assignment as A
from labeling import handout, services
from labeling.models import Annotation, Assignment, AssignmentStatus, Item, PayloadKind, Role

pytestmark = [pytest.mark.postgres]

N_LABELERS = 8
N_CYCLES = 50
# Polls a labeler may spend waiting for items held by others (about 10 s in all).
MAX_POLLS = 2000
N_ITEMS = 120  # 360 slots for 400 attempts: the last items are fought over


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks with SKIP LOCKED); SQLite runs one writer")


def test_concurrent_handouts_keep_overlap_and_never_repeat(postgres_only, make_user, manager):
    project = services.create_project(
        name="Race",
        classes=[{"key": "a"}, {"key": "b"}],
        overlap=3,
        created_by=manager,
    )
    Item.objects.bulk_create(
        Item(project=project, external_id=f"r{i}", kind=PayloadKind.TEXT, text=str(i))
        for i in range(N_ITEMS)
    )
    team = [make_user(f"racer{i}") for i in range(N_LABELERS)]
    for user in team:
        services.set_membership(project=project, user=user, role=Role.LABELER)

    handed: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(N_LABELERS)

    def work(user):
        try:
            start.wait()
            cycle, polls = 0, 0
            while cycle < N_CYCLES and polls < MAX_POLLS:
                got = A.next_item_for(project, user)
                if got is None:
                    # Nothing free *now* can mean that the items this labeler may still
                    # take are held by others: ask again while anyone holds one. Once
                    # nothing is held, None is final for this labeler.
                    if not Assignment.objects.filter(
                        project=project, status=AssignmentStatus.ACTIVE
                    ).exists():
                        break
                    polls += 1
                    time.sleep(0.005)
                    continue
                cycle += 1
                with lock:
                    handed.append((got.item_id, user.pk))
                A.submit_label(
                    item=got.item,
                    labeler=user,
                    value="a" if cycle % 2 else "b",
                    assignment_id=got.pk,
                )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in team]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors

    # Never handed to the same labeler twice.
    assert len(handed) == len(set(handed))
    # None labeled by more than 3; none lost: every slot filled, every hand-out labeled.
    per_item = Counter(
        Annotation.objects.filter(project=project, is_current=True).values_list(
            "item_id", flat=True
        )
    )
    assert max(per_item.values()) == 3
    assert len(per_item) == N_ITEMS and set(per_item.values()) == {3}
    assert len(handed) == N_ITEMS * 3
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.ACTIVE).exists()
    assert (
        Assignment.objects.filter(project=project, status=AssignmentStatus.SUBMITTED).count()
        == N_ITEMS * 3
    )
    assert Annotation.objects.filter(project=project, is_current=False).count() == 0
    # The kept hand-out state agrees with a recount after the race (issue 14).
    assert handout.verify_project(project).ok


def test_sixteen_labelers_race_for_fewer_items_than_labelers(postgres_only, make_user, manager):
    """16 threads, 6 items left with room for 14 labels (some already partly labeled),
    overlap 3: every slot is filled exactly once, none past overlap, none twice to one
    labeler, and the labelers left without an item are told so (None), not lost."""
    project = services.create_project(
        name="Crowd", classes=[{"key": "a"}, {"key": "b"}], overlap=3, created_by=manager
    )
    Item.objects.bulk_create(
        Item(project=project, external_id=f"c{i}", kind=PayloadKind.TEXT, text=str(i))
        for i in range(10)
    )
    items = list(Item.objects.filter(project=project).order_by("pk"))
    early = [make_user(f"early{i}") for i in range(3)]
    for user in early:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    # 4 items done, 1 with 2 labels, 2 with 1, 3 untouched: room for 1 + 4 + 9 = 14.
    plan = [3, 3, 3, 3, 2, 1, 1, 0, 0, 0]
    for item, n in zip(items, plan, strict=True):
        for user in early[:n]:
            services.submit_annotation(item=item, labeler=user, value="a")
    room = sum(3 - n for n in plan)
    team = [make_user(f"crowd{i}") for i in range(16)]
    for user in team:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    assert room < len(team)

    handed: list[tuple[int, int]] = []
    told_none: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(team))

    def work(user):
        try:
            start.wait()
            polls = 0
            while polls < MAX_POLLS:
                got = A.next_item_for(project, user)
                if got is None:
                    if not Assignment.objects.filter(
                        project=project, status=AssignmentStatus.ACTIVE
                    ).exists():
                        with lock:
                            told_none.append(user.pk)
                        break
                    polls += 1
                    time.sleep(0.005)
                    continue
                with lock:
                    handed.append((got.item_id, user.pk))
                A.submit_label(item=got.item, labeler=user, value="b", assignment_id=got.pk)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in team]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors
    assert len(handed) == len(set(handed)) == room
    per_item = Counter(
        Annotation.objects.filter(project=project, is_current=True).values_list(
            "item_id", flat=True
        )
    )
    assert set(per_item.values()) == {3} and len(per_item) == len(items)
    assert len(told_none) == len(team)  # everyone ends with "nothing left"
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.ACTIVE).exists()
    assert handout.verify_project(project).ok
    assert not Item.objects.filter(project=project, handout_open=True).exists()
