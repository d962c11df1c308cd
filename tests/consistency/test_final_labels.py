"""The final label of an item: an SME decision wins over the run's consensus; the dataset
build and the error analysis read it from consistency.selectors.final_labels."""

from __future__ import annotations

import json

import pytest

from consistency import model_runs
from consistency.models import ConsensusStatus
from consistency.selectors import SOURCE_CONSENSUS, SOURCE_SME, final_labels
from labeling.models import LabelClass
from tests.datasets.conftest import (
    build,
    label_items,
    make_items,
    run_majority,
    sme_decision,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project, labelers, manager):
    """i0 dent ×3 (decided no_defect by an SME), i1 scratch ×3, i2 unlabeled (decided
    dent by an SME), i3 unlabeled."""
    items = make_items(project, 4)
    votes = [["dent"] * 3, ["scratch"] * 3]
    label_items(items[:2], labelers, lambda i, j: votes[i][j])
    run = run_majority(project)
    sme_decision(project, [items[0]], "no_defect", by=manager)
    sme_decision(project, [items[2]], "dent", by=manager)
    return {"items": items, "run": run}


def key(class_id):
    return LabelClass.objects.get(pk=class_id).key


def test_sme_decisions_win_over_consensus_and_items_without_either_are_absent(project, world):
    i0, i1, i2, i3 = world["items"]
    final = final_labels(project, world["run"])
    assert {pk: (key(f.label_class_id), f.source) for pk, f in final.items()} == {
        i0.pk: ("no_defect", SOURCE_SME),
        i1.pk: ("scratch", SOURCE_CONSENSUS),
        i2.pk: ("dent", SOURCE_SME),
    }
    assert (final[i0.pk].status, final[i0.pk].confidence) == (ConsensusStatus.RESOLVED, 1.0)
    assert i3.pk not in final


def test_without_a_run_only_sme_decisions_are_final(project, world):
    i0, _, i2, _ = world["items"]
    assert set(final_labels(project, None)) == {i0.pk, i2.pk}


def test_the_dataset_rows_are_the_final_labels(project, world):
    lines = build(project).rows.values_list("line", flat=True)
    rows = {r["external_id"]: (r["label"], r["status"]) for r in map(json.loads, lines)}
    assert rows == {
        "item-000": ("no_defect", "resolved"),
        "item-001": ("scratch", "agreed"),
        "item-002": ("dent", "resolved"),
    }


def test_error_analysis_counts_an_sme_decision_as_gold(project, manager, world):
    i0, i1, i2, _ = world["items"]
    run = model_runs.upload_model_run(
        project=project,
        created_by=manager,
        name="m1",
        predictions=[
            {"item": i0.external_id, "value": "no_defect"},  # right (SME)
            {"item": i1.external_id, "value": "dent"},  # wrong (consensus scratch)
            {"item": i2.external_id, "value": "dent"},  # right (SME)
        ],
    )
    analysis = model_runs.error_analysis(run)
    assert (analysis["reference"]["n_gold"], analysis["reference"]["n_consensus"]) == (2, 1)
    assert analysis["overall"]["model_accuracy"] == pytest.approx(2 / 3)
