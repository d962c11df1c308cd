"""The data manager's status and label counts read from the state kept on the items
(``selectors.items_with_kept_counts``) equal a recount from the annotations, after a
random sequence of the writes that move them: submits, revisions, skips, relabels,
ground-truth checks answered and unmarked, and overlap settings switched between fixed
and dynamic.

The recount here is written again in the test, from the rows: an item's count is every
current label (check answers included, as the status has always counted them); with
dynamic overlap it is done at ``min`` labels when a strict majority agrees, else one more
label at a time up to ``max`` (DESIGN).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from consistency import data_manager
from labeling import assignment as A
from labeling import selectors, services
from labeling.models import Annotation, CheckAnswer, Item, PayloadKind, Project, Role
from review import services as review

pytestmark = pytest.mark.django_db

CLASSES = ["no_defect", "scratch", "dent"]


def recount(project: Project) -> dict[int, tuple[int, str]]:
    """``{item id: (current labels, status)}`` from the annotation rows."""
    project.refresh_from_db()
    labels: dict[int, list] = {
        pk: [] for pk in Item.objects.filter(project=project).values_list("pk", flat=True)
    }
    for a in Annotation.objects.filter(project=project, is_current=True):
        labels[a.item_id].append(
            (a.label_class_id, a.value_number, a.value_text.strip(" ").lower())
        )
    out = {}
    for pk, given in labels.items():
        n = len(given)
        top = max(Counter(given).values()) if given else 0
        if not project.dynamic_overlap:
            target = project.overlap
        elif n < project.min_overlap:
            target = project.min_overlap
        elif n >= project.max_overlap or 2 * top > n:
            target = n
        else:
            target = n + 1
        status = "unlabeled" if n == 0 else ("complete" if n >= target else "in_progress")
        out[pk] = (n, status)
    return out


def kept(project: Project) -> dict[int, tuple[int, str]]:
    return {
        row[0]: (row[1], row[2])
        for row in selectors.items_with_kept_counts(project).values_list(
            "pk", "n_current", "item_status"
        )
    }


def assert_table_is_a_recount(project: Project, step) -> Counter:
    """The kept counts, the data manager's status filters and its label-count sort all
    agree with the recount; returns how many items are in each status."""
    expected = recount(project)
    assert kept(project) == expected, f"after step {step}"
    statuses = Counter(status for _, status in expected.values())
    for status in selectors.ITEM_STATUSES:
        query = data_manager.parse_query({"status": status}, paged=False)
        got = set(data_manager.filtered_items(project, query).values_list("pk", flat=True))
        want = {pk for pk, (_, s) in expected.items() if s == status}
        assert got == want, f"status={status} after step {step}"
        # The REST list's ?status= reads the same kept counts (labeling.selectors).
        listed = set(selectors.filter_items(project, status=status).values_list("pk", flat=True))
        assert listed == want, f"filter_items status={status} after step {step}"
    progress = selectors.project_progress(project)
    assert progress["n_items_complete"] == statuses["complete"], f"after step {step}"
    query = data_manager.parse_query({"sort": "-n_labels"}, paged=False)
    order = list(data_manager.filtered_items(project, query).values_list("pk", flat=True))
    assert order == sorted(expected, key=lambda pk: (expected[pk][0], pk), reverse=True)
    rows = data_manager.item_rows(project, list(expected), run=None)
    assert {r["id"]: (r["n_labels"], r["status"]) for r in rows} == expected
    return statuses


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_kept_counts_equal_a_recount_after_random_writes(seed, project, make_user, manager):
    rng = random.Random(seed)
    A.check_draw.seed(seed)
    team = [make_user(f"k{seed}l{i}") for i in range(5)]
    for user in team:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    items = [
        Item.objects.create(project=project, external_id=f"k{i}", kind=PayloadKind.TEXT, text="t")
        for i in range(16)
    ]
    for item in items[:3]:
        services.set_gold_label(item=item, value="dent", actor=manager)
    services.update_check_settings(project=project, actor=manager, rate=0.25, min_checks=50)
    services.update_project(
        project=project, actor=manager, dynamic_overlap=True, min_overlap=2, max_overlap=4
    )
    ops = Counter()
    seen = Counter()
    for step in range(150):
        op = rng.choices(
            ["work", "revise", "relabel", "overlap", "direct", "checks"],
            weights=[45, 10, 5, 5, 8, 4],
        )[0]
        ops[op] += 1
        labeler = rng.choice(team)
        try:
            if op == "work":
                got = A.next_item_for(project, labeler)
                if got is not None:
                    if rng.random() < 0.85:
                        A.submit_label(
                            item=got.item,
                            labeler=labeler,
                            value=rng.choice(CLASSES),
                            assignment_id=got.pk,
                        )
                    else:
                        A.skip_assignment(assignment=got, labeler=labeler)
            elif op == "revise":
                mine = list(Annotation.objects.filter(labeler=labeler, is_current=True))
                if mine:
                    a = rng.choice(mine)
                    A.submit_label(item=a.item, labeler=labeler, value=rng.choice(CLASSES))
            elif op == "relabel":
                item = rng.choice(items)
                if item.annotations.filter(is_current=True).exists():
                    review.send_for_relabel(
                        project=project, items=[item], actor=manager, rationale="again"
                    )
            elif op == "overlap":
                dynamic = rng.random() < 0.7
                low, high = rng.choice([1, 2]), rng.choice([3, 4])
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
                    external_ids=[rng.choice(items[:3]).external_id],
                    is_check=rng.random() < 0.7,
                    actor=manager,
                )
        except (ValidationError, PermissionDenied):
            ops[f"{op} refused"] += 1
        project.refresh_from_db()
        if step % 15 == 14:
            seen.update(assert_table_is_a_recount(project, step))
            seen["dynamic"] += project.dynamic_overlap
    seen.update(assert_table_is_a_recount(project, "end"))
    # The sequence reached what it claims to test: every status, dynamic overlap, and
    # labels given as check answers (which the kept count leaves out and the status counts).
    assert seen["unlabeled"] and seen["in_progress"] and seen["complete"] and seen["dynamic"]
    assert ops["revise"] and ops["relabel"] and ops["overlap"]
    assert CheckAnswer.objects.filter(project=project, annotation__is_current=True).exists()


def test_dynamic_overlap_hand_worked(project, make_user, manager):
    """min 2, max 4: two agreeing labels are complete; 1-1 needs a third; 2-1 after three
    is complete; a lone label is in progress; no label is unlabeled."""
    services.update_project(
        project=project, actor=manager, dynamic_overlap=True, min_overlap=2, max_overlap=4
    )
    users = [make_user(f"h{i}") for i in range(3)]
    for user in users:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    plan = {
        "agree": ["dent", "dent"],
        "split": ["dent", "scratch"],
        "settled": ["dent", "scratch", "dent"],
        "lone": ["dent"],
        "none": [],
    }
    ids = {}
    for name, values in plan.items():
        item = Item.objects.create(project=project, external_id=name, kind=PayloadKind.TEXT)
        ids[name] = item.pk
        for user, value in zip(users, values, strict=False):
            A.submit_label(item=item, labeler=user, value=value)
    project.refresh_from_db()
    got = kept(project)
    assert got[ids["agree"]] == (2, "complete")
    assert got[ids["split"]] == (2, "in_progress")
    assert got[ids["settled"]] == (3, "complete")
    assert got[ids["lone"]] == (1, "in_progress")
    assert got[ids["none"]] == (0, "unlabeled")
