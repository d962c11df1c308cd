"""HLP against ground truth: the labeler whose annotation carries an item's ground truth
is not measured against it, and SME decisions are never a reference for HLP."""

from __future__ import annotations

import json

import pytest

from consistency import runs, selectors
from consistency.models import AgreementRun, Flag, RunStatus
from labeling import services
from labeling.access import Role
from labeling.imports.annotations import import_annotations
from labeling.models import GoldLabel, GoldSource, Item, ItemDecision, PayloadKind
from review.services import resolve_flag

pytestmark = pytest.mark.django_db

# Four items, gold labeler g (its rows carry gold: true), labelers a and b.
#   item  g (gold)    a          b
#   it-1  scratch     scratch    scratch
#   it-2  dent        dent       scratch
#   it-3  scratch     dent       scratch
#   it-4  dent        dent       dent
# a against gold: 3 of 4; b: 3 of 4 -> HLP = 6 / 8 = 0.75 on 4 items.
# Counting g's own labels (always right) would give (6 + 4) / 12 = 0.8333.
LABELS = {
    "it-1": ("scratch", "scratch", "scratch"),
    "it-2": ("dent", "dent", "scratch"),
    "it-3": ("scratch", "dent", "scratch"),
    "it-4": ("dent", "dent", "dent"),
}


def run_agreement(project) -> AgreementRun:
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 0, "slices": []})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


@pytest.fixture
def imported(project, manager):
    for ext in LABELS:
        Item.objects.create(project=project, external_id=ext, kind=PayloadKind.TEXT, text=ext)
    rows = [
        {"item": ext, "labeler": who, "value": value, "gold": who == "g"}
        for ext, values in LABELS.items()
        for who, value in zip(("g", "a", "b"), values, strict=True)
    ]
    import_annotations(project=project, data=json.dumps(rows).encode(), fmt="json", actor=manager)
    return project


def test_gold_label_records_the_labeler_whose_annotation_carries_it(imported, manager):
    golds = GoldLabel.objects.filter(item__project=imported).select_related("labeler")
    assert golds.count() == 4
    assert {g.labeler.username for g in golds} == {"g"}
    assert {g.created_by_id for g in golds} == {manager.pk}


def test_hlp_with_a_ground_truth_labeler_is_the_others_accuracy_against_it(imported):
    hlp = run_agreement(imported).results["hlp"]
    assert hlp["method"] == "gold"
    assert hlp["value"] == pytest.approx(6 / 8)
    assert hlp["n_items"] == 4
    per = {r["labeler"]: r for r in run_agreement(imported).results["per_labeler"]}
    assert per["a"]["accuracy_vs_gold"] == pytest.approx(3 / 4)
    assert per["b"]["accuracy_vs_gold"] == pytest.approx(3 / 4)


@pytest.fixture
def unlabelled_truth(project, labelers):
    """it-1..it-4 with ground truth carried by no labeler; it-5, it-6 without ground truth
    (the labelers split on them)."""
    values = {
        "it-1": ["scratch", "dent", "scratch"],
        "it-2": ["no_defect", "scratch", "no_defect"],
        "it-3": ["dent", "dent", "dent"],
        "it-4": ["no_defect", "no_defect", "dent"],
        "it-5": ["scratch", "dent", "no_defect"],
        "it-6": ["dent", "no_defect", "dent"],
    }
    truth = {"it-1": "scratch", "it-2": "no_defect", "it-3": "dent", "it-4": "no_defect"}
    items = {}
    for ext, labels in values.items():
        item = Item.objects.create(
            project=project, external_id=ext, kind=PayloadKind.TEXT, text=ext
        )
        for labeler, value in zip(labelers, labels, strict=True):
            services.submit_annotation(item=item, labeler=labeler, value=value)
        if ext in truth:
            services.set_gold_label(item=item, value=truth[ext], source=GoldSource.IMPORT)
        items[ext] = item
    return items


def test_sme_decisions_leave_hlp_unchanged_and_change_final_labels(
    project, unlabelled_truth, make_user
):
    sme = make_user("sam-sme")
    services.set_membership(project=project, user=sme, role=Role.SME)
    first = run_agreement(project)
    hlp = first.results["hlp"]
    # by hand: it-1 2/3, it-2 2/3, it-3 3/3, it-4 2/3 -> 9 / 12 on 4 items
    assert (hlp["method"], hlp["n_items"]) == ("gold", 4)
    assert hlp["value"] == pytest.approx(9 / 12)

    def flag_on(*ext):
        flag = Flag.objects.create(
            project=project, run=first, kind="disagreement", impact=1.0,
            suggested_action="set_label", summary="test flag", evidence={},
        )  # fmt: skip
        flag.items.set([unlabelled_truth[e] for e in ext])
        return flag

    resolve_flag(
        flag=flag_on("it-5"), actor=sme, action="set_label", label="scratch", rationale="seen"
    )
    resolve_flag(flag=flag_on("it-6"), actor=sme, action="mark_borderline", rationale="faint")
    second = run_agreement(project)
    after = second.results["hlp"]
    assert (after["method"], after["n_items"]) == ("gold", 4)
    assert after["value"] == pytest.approx(hlp["value"])
    final = selectors.final_labels(project, second)
    assert final[unlabelled_truth["it-5"].pk].source == selectors.SOURCE_SME
    keys = dict(project.classes.values_list("id", "key"))
    assert keys[final[unlabelled_truth["it-5"].pk].label_class_id] == "scratch"
    assert keys[final[unlabelled_truth["it-6"].pk].label_class_id] == "borderline"
    imported = GoldLabel.objects.filter(item__project=project, source=GoldSource.IMPORT)
    assert imported.count() == 4


def test_both_hlp_estimates_are_reported_with_the_gold_one_as_headline(imported):
    hlp = run_agreement(imported).results["hlp"]
    assert hlp["gold"] == {"value": pytest.approx(6 / 8), "n_items": 4}
    # pairwise over all three labelers, per item: it-1 3/3, it-2 1/3, it-3 1/3, it-4 3/3
    assert hlp["pairwise"]["value"] == pytest.approx((1 + 1 / 3 + 1 / 3 + 1) / 4)
    assert hlp["pairwise"]["n_items"] == 4
    assert hlp["method"] == "gold" and hlp["reasons"]["method"].startswith("gold")


def test_a_decision_against_ground_truth_keeps_it_and_is_reported_as_a_conflict(
    project, unlabelled_truth, make_user
):
    sme = make_user("sam-sme")
    services.set_membership(project=project, user=sme, role=Role.SME)
    run = run_agreement(project)
    flag = Flag.objects.create(
        project=project, run=run, kind="disagreement", impact=1.0,
        suggested_action="set_label", summary="test flag", evidence={},
    )  # fmt: skip
    item = unlabelled_truth["it-3"]  # ground truth: dent
    flag.items.set([item])
    resolution = resolve_flag(flag=flag, actor=sme, action="mark_borderline", rationale="faint")
    assert resolution.details["conflicts_with_ground_truth"] is True
    assert resolution.details["decided"][0]["conflicts_with_ground_truth"] is True
    gold = GoldLabel.objects.get(item=item)
    assert (gold.label_class.key, gold.source) == ("dent", GoldSource.IMPORT)
    assert ItemDecision.objects.get(item=item).label_class.key == "borderline"
    after = run_agreement(project).results["hlp"]
    assert (after["method"], after["n_items"]) == ("gold", 4)
    assert after["value"] == pytest.approx(9 / 12)
