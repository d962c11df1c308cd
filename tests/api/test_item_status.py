"""An item's target and completeness honour dynamic overlap everywhere: the REST item
list (``status`` and ``?status=``), project progress and the hand-out use one rule
(``labeling.selectors``)."""

from __future__ import annotations

import random

import pytest

from labeling import assignment, selectors, services
from labeling.models import Item, PayloadKind, Role

pytestmark = pytest.mark.django_db


def make_items(project, names):
    return {
        name: Item.objects.create(
            project=project, external_id=name, kind=PayloadKind.TEXT, text=name
        )
        for name in names
    }


def add_labelers(project, make_user, n, prefix="lab"):
    users = [make_user(f"{prefix}{i}") for i in range(n)]
    for user in users:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    return users


@pytest.fixture
def dynamic(project, make_user):
    """min 2, max 4: ``agree`` has dent, dent (done); ``disagree`` dent, scratch (needs a
    third); ``one`` has one label; ``none`` has none."""
    project.dynamic_overlap, project.min_overlap, project.max_overlap = True, 2, 4
    project.save(update_fields=["dynamic_overlap", "min_overlap", "max_overlap"])
    items = make_items(project, ["agree", "disagree", "one", "none"])
    ana, ben = add_labelers(project, make_user, 2)
    for labeler, value in [(ana, "dent"), (ben, "dent")]:
        services.submit_annotation(item=items["agree"], labeler=labeler, value=value)
    for labeler, value in [(ana, "dent"), (ben, "scratch")]:
        services.submit_annotation(item=items["disagree"], labeler=labeler, value=value)
    services.submit_annotation(item=items["one"], labeler=ana, value="dent")
    return items


def test_rest_status_follows_the_dynamic_target(manager_api, project, dynamic):
    rows = manager_api.get(f"/api/v1/projects/{project.pk}/items/").json()["results"]
    assert {r["external_id"]: r["status"] for r in rows} == {
        "agree": "complete",
        "disagree": "in_progress",
        "one": "in_progress",
        "none": "unlabeled",
    }
    detail = manager_api.get(f"/api/v1/items/{dynamic['agree'].pk}/").json()
    assert detail["status"] == "complete"


def test_status_filter_and_the_hand_out_agree(manager_api, project, dynamic, make_user):
    def listed(status):
        response = manager_api.get(f"/api/v1/projects/{project.pk}/items/?status={status}")
        return {r["external_id"] for r in response.json()["results"]}

    assert listed("complete") == {"agree"}
    assert listed("in_progress") == {"disagree", "one"}
    # A fresh labeler is handed every item that is not complete, and nothing else.
    (cy,) = add_labelers(project, make_user, 1, prefix="cy")
    handed = set()
    while (assignment_row := assignment.next_item_for(project, cy)) is not None:
        handed.add(assignment_row.item.external_id)
        assignment.skip_assignment(assignment=assignment_row, labeler=cy)
    assert handed == {"disagree", "one", "none"}


def test_project_progress_counts_complete_items_by_their_dynamic_target(project, dynamic):
    # Targets: agree 2 (done), disagree 3, one 2, none 2 -> 9 labels wanted; given
    # towards them: 2 + 2 + 1 + 0 = 5.
    assert selectors.project_progress(project) == {
        "n_items": 4,
        "n_annotations": 5,
        "n_items_complete": 1,
        "fraction": 5 / 9,
    }


def test_fixed_overlap_progress_caps_each_item_at_its_target(project, labelers, make_user):
    # overlap 3: one item with 4 labels (an explicit extra one), one with 1.
    items = make_items(project, ["full", "part"])
    extra = add_labelers(project, make_user, 1, prefix="extra")[0]
    for labeler in [*labelers, extra]:
        services.submit_annotation(item=items["full"], labeler=labeler, value="dent")
    services.submit_annotation(item=items["part"], labeler=labelers[0], value="dent")
    progress = selectors.project_progress(project)
    assert (progress["n_items_complete"], progress["fraction"]) == (1, (3 + 1) / 6)


def test_the_sql_target_is_the_python_rule_on_any_label_sequence(project, make_user):
    """items_with_counts (ORM), the hand-out query (compiled) and dynamic_target
    (Python) give the same targets, also past max_overlap and after later disagreement."""
    project.dynamic_overlap, project.min_overlap, project.max_overlap = True, 2, 4
    project.save(update_fields=["dynamic_overlap", "min_overlap", "max_overlap"])
    rng = random.Random(7)
    team = add_labelers(project, make_user, 6)
    items = make_items(project, [f"r{i}" for i in range(40)])
    for item in items.values():
        for labeler in team[: rng.randint(0, 6)]:
            value = rng.choice(["dent", "scratch", "no_defect"])
            services.submit_annotation(item=item, labeler=labeler, value=value)
    python = selectors.item_targets(project, [i.pk for i in items.values()])
    orm = dict(selectors.items_with_counts(project).values_list("pk", "n_target"))
    assert orm == python
    n_current = dict(selectors.items_with_counts(project).values_list("pk", "n_current"))
    (fresh,) = add_labelers(project, make_user, 1, prefix="fresh")
    assert assignment.count_candidates(project, fresh) == sum(
        python[pk] > n_current[pk] for pk in python
    )
