"""The hand-out state kept on the items (labeling.handout) equals a full recount after
any sequence of the writes that move it (issue 14, item 1), and the state is what the
hand-out and ``verify_handout_state`` use.

The recount here is written independently of ``labeling.handout``: from the rows, with
the dynamic-overlap rule spelt out again (DESIGN: done at ``min`` when a strict majority
agrees, else one more label at a time up to ``max``).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from labeling import assignment as A
from labeling import handout, services
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    CheckAnswer,
    Item,
    LabelerState,
    PayloadKind,
    Project,
    Role,
)
from review import services as review

pytestmark = pytest.mark.django_db

CLASSES = ["no_defect", "scratch", "dent"]


@pytest.fixture
def clock(monkeypatch):
    real_now = timezone.now
    offset = timedelta()

    def advance(**delta):
        nonlocal offset
        offset += timedelta(**delta)
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return advance


def recount(project: Project) -> dict[int, dict]:
    """Every item's state from the rows, independently of labeling.handout."""
    project.refresh_from_db()
    now = timezone.now()
    out = {}
    for item in Item.objects.filter(project=project):
        answered = set(CheckAnswer.objects.filter(item=item).values_list("labeler_id", flat=True))
        current = list(Annotation.objects.filter(item=item, is_current=True))
        with_label = {a.labeler_id for a in current}
        counted = []
        for a in current:
            if a.labeler_id in answered:
                continue
            if a.label_class_id is not None:
                counted.append(("class", a.label_class_id))
            elif a.value_number is not None:
                counted.append(("number", a.value_number))
            else:
                counted.append(("text", a.value_text.strip(" ").lower()))
        n = len(counted)
        top = max(Counter(counted).values()) if counted else 0
        holds = [
            s.expires_at
            for s in Assignment.objects.filter(
                item=item, status=AssignmentStatus.ACTIVE, expires_at__gt=now
            )
            if s.labeler_id not in with_label
        ]
        if not project.dynamic_overlap:
            target = project.overlap
        elif n < project.min_overlap:
            target = project.min_overlap
        elif n >= project.max_overlap or 2 * top > n:
            target = n
        else:
            target = n + 1
        load = n + len(holds)
        out[item.pk] = {
            "handout_labels": n,
            "handout_top": top,
            "handout_holds": len(holds),
            "handout_load": load,
            "handout_open": (not item.is_check) and load < target,
            "handout_hold_expires_at": min(holds) if holds else None,
        }
    return out


def stored(project: Project) -> dict[int, dict]:
    return {
        row["id"]: {k: v for k, v in row.items() if k != "id"}
        for row in Item.objects.filter(project=project).values("id", *handout.STATE_FIELDS)
    }


def done_counts(project: Project) -> tuple[dict, dict]:
    kept = dict(LabelerState.objects.filter(project=project).values_list("labeler_id", "n_done"))
    counted = Counter(
        Annotation.objects.filter(project=project, is_current=True).values_list(
            "labeler_id", flat=True
        )
    )
    return kept, {k: counted.get(k, 0) for k in kept}


def assert_state_is_a_recount(project, step):
    assert stored(project) == recount(project), f"after step {step}"
    kept, counted = done_counts(project)
    assert kept == counted, f"labeler counters after step {step}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_equals_a_recount_after_a_random_sequence_of_writes(
    seed, project, make_user, manager, clock
):
    rng = random.Random(seed)
    A.check_draw.seed(seed)
    team = [make_user(f"p{seed}l{i}") for i in range(6)]
    for user in team:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    items = [
        Item.objects.create(project=project, external_id=f"s{i}", kind=PayloadKind.TEXT, text="t")
        for i in range(14)
    ]
    # Two items with ground truth, so checks can be marked and answered.
    for item in items[:2]:
        services.set_gold_label(item=item, value="dent", actor=manager)
    services.update_check_settings(project=project, actor=manager, rate=0.2, min_checks=50)
    counts = Counter()
    for step in range(160):
        op = rng.choices(
            [
                "work",
                "revise",
                "time",
                "relabel",
                "merge",
                "overlap",
                "direct",
                "checks",
                "expire",
            ],
            weights=[40, 8, 8, 5, 4, 5, 6, 3, 3],
        )[0]
        counts[op] += 1
        labeler = rng.choice(team)
        try:
            if op == "work":
                got = A.next_item_for(project, labeler)
                if got is not None:
                    fate = rng.random()
                    if fate < 0.75:
                        A.submit_label(
                            item=got.item,
                            labeler=labeler,
                            value=rng.choice(CLASSES),
                            assignment_id=got.pk,
                        )
                    elif fate < 0.9:
                        A.skip_assignment(assignment=got, labeler=labeler)
                    # else: abandoned, expires later
            elif op == "revise":
                mine = list(Annotation.objects.filter(labeler=labeler, is_current=True))
                if mine:
                    a = rng.choice(mine)
                    A.submit_label(item=a.item, labeler=labeler, value=rng.choice(CLASSES))
            elif op == "time":
                clock(minutes=rng.choice([1, 10, 25, 40]))
            elif op == "relabel":
                item = rng.choice(items)
                who = None if rng.random() < 0.5 else [rng.choice(team)]
                if who is None and not item.annotations.filter(is_current=True).exists():
                    who = [rng.choice(team)]
                review.send_for_relabel(
                    project=project, items=[item], actor=manager, rationale="again", labelers=who
                )
            elif op == "merge":
                if project.classes.filter(key="scratch", merged_into__isnull=False).exists():
                    review.unmerge_classes(
                        project=project, class_keys=["scratch"], actor=manager, rationale="undo"
                    )
                else:
                    review.merge_classes(
                        project=project,
                        class_keys=["scratch"],
                        into="dent",
                        actor=manager,
                        rationale="same thing",
                    )
            elif op == "overlap":
                dynamic = rng.random() < 0.6
                low = rng.choice([1, 2])
                high = rng.choice([3, 4])
                services.update_project(
                    project=project,
                    actor=manager,
                    dynamic_overlap=dynamic,
                    min_overlap=low,
                    max_overlap=high,
                    overlap=rng.choice([low, high]) if dynamic else rng.choice([1, 2, 3]),
                )
            elif op == "direct":
                A.submit_label(item=rng.choice(items), labeler=labeler, value=rng.choice(CLASSES))
            elif op == "checks":
                A.mark_checks(
                    project=project,
                    external_ids=[rng.choice(items[:2]).external_id],
                    is_check=rng.random() < 0.7,
                    actor=manager,
                )
            elif op == "expire":
                A.expire_stale_assignments()
        except (ValidationError, PermissionDenied):
            counts[f"{op} refused"] += 1
        project.refresh_from_db()
        if step % 20 == 19:
            assert_state_is_a_recount(project, step)
    assert_state_is_a_recount(project, "end")
    # The sequence exercised what it claims to (a test that never revised proves nothing).
    assert counts["work"] > 40 and counts["revise"] and counts["relabel"] and counts["merge"]
    assert counts["overlap"] and counts["time"] and counts["checks"]
    assert Annotation.objects.filter(project=project, is_current=False).exists()
    assert handout.verify_project(project).ok


def test_state_of_a_new_item_is_open_without_any_write(project, labelers):
    item = Item.objects.create(project=project, external_id="fresh", kind=PayloadKind.TEXT)
    assert stored(project)[item.pk] == recount(project)[item.pk]
    assert A.next_item_for(project, labelers[0]).item_id == item.pk


def test_verify_command_finds_and_repairs_drift(project, labelers):
    items = [
        Item.objects.create(project=project, external_id=f"v{i}", kind=PayloadKind.TEXT)
        for i in range(3)
    ]
    got = A.next_item_for(project, labelers[0])
    A.submit_label(item=got.item, labeler=labelers[0], value="dent", assignment_id=got.pk)
    out = StringIO()
    call_command("verify_handout_state", project=[project.pk], stdout=out)
    assert "agrees" in out.getvalue()
    # Drift planted behind the services' back: a closed item and a wrong counter.
    Item.objects.filter(pk=items[2].pk).update(handout_open=False, handout_load=3)
    LabelerState.objects.filter(project=project, labeler=labelers[0]).update(n_done=7)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_handout_state", project=[project.pk], stdout=out)
    assert "1 item(s) and 1 labeler counter(s) differ" in out.getvalue()
    call_command("verify_handout_state", project=[project.pk], repair=True, stdout=StringIO())
    assert stored(project) == recount(project)
    assert LabelerState.objects.get(project=project, labeler=labelers[0]).n_done == 1
    out = StringIO()
    call_command("verify_handout_state", stdout=out)
    assert "agrees" in out.getvalue()


def test_migration_builder_matches_the_services(project, labelers):
    """Data migration 0010 rebuilds the same state as the services keep (its rule is a
    copy made for the historical models)."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("labeling.migrations.0010_build_handout_state")
    items = [
        Item.objects.create(project=project, external_id=f"m{i}", kind=PayloadKind.TEXT)
        for i in range(4)
    ]
    for labeler in labelers[:2]:
        got = A.next_item_for(project, labeler)
        A.submit_label(item=got.item, labeler=labeler, value="dent", assignment_id=got.pk)
    A.next_item_for(project, labelers[2])  # a live hold
    before = stored(project)
    Item.objects.filter(pk__in=[i.pk for i in items]).update(
        handout_labels=0, handout_top=0, handout_holds=0, handout_load=0, handout_open=True
    )
    LabelerState.objects.filter(project=project).delete()
    migration.forward(apps, None)
    assert stored(project) == before == recount(project)
    assert LabelerState.objects.filter(project=project).count() == 2


def test_updating_the_overlap_reopens_and_closes_items(project, labelers, manager):
    (item,) = [Item.objects.create(project=project, external_id="o", kind=PayloadKind.TEXT)]
    for labeler in labelers[:2]:
        services.submit_annotation(item=item, labeler=labeler, value="dent")
    item.refresh_from_db()
    assert item.handout_open  # 2 of 3
    services.update_project(project=project, actor=manager, overlap=2)
    item.refresh_from_db()
    assert not item.handout_open and A.next_item_for(project, labelers[2]) is None
    services.update_project(project=project, actor=manager, overlap=3)
    assert A.next_item_for(project, labelers[2]).item_id == item.pk
