"""The pure error-analysis core: doctests, and HLP per group against the agreement run's
own slice HLP (``summary.slice_summary``), an independent implementation."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from consistency.metrics import AgreementStats, slice_summary
from consistency.metrics import error_analysis as ea


def test_doctests_hold():
    result = doctest.testmod(ea)
    assert result.failed == 0 and result.attempted > 0


def random_labels(seed, n_items=60, n_labelers=5, n_classes=3):
    rng = np.random.default_rng(seed)
    rows = [
        (i, labeler, int(rng.integers(0, n_classes)))
        for i in range(n_items)
        for labeler in range(n_labelers)
        if rng.random() < 0.6
    ]
    item, labeler, value = (np.asarray(c, dtype=np.int64) for c in zip(*rows, strict=True))
    return item, labeler, value


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_hlp_per_group_equals_slice_summary(seed):
    item, labeler, value = random_labels(seed)
    stats = AgreementStats.from_labels(item, labeler, value, level="nominal", n_classes=3)
    groups = [np.arange(0, 60, 2), np.arange(10, 25), np.array([3])]
    ours = ea.group_hlp(item, labeler, value, groups)
    for members, got in zip(groups, ours, strict=True):
        mask = np.zeros(60, dtype=bool)
        mask[members] = True
        ref = slice_summary(stats, mask, n_bootstrap=0)["hlp"]
        assert got["method"] == ref["method"] == "pairwise"
        assert got["value"] == pytest.approx(ref["value"])
        assert got["n_items"] == ref["n_items"]


@pytest.mark.parametrize("seed", [0, 1])
def test_gold_hlp_per_group_equals_slice_summary(seed):
    item, labeler, value = random_labels(seed)
    rng = np.random.default_rng(seed + 10)
    gold_items = np.arange(0, 60, 3)
    gold_values = rng.integers(0, 3, gold_items.size)
    stats = AgreementStats.from_labels(item, labeler, value, level="nominal", n_classes=3)
    groups = [np.arange(0, 30), np.arange(30, 60)]
    ours = ea.group_hlp(item, labeler, value, groups, gold_item=gold_items, gold_value=gold_values)
    gold = dict(zip(gold_items.tolist(), gold_values.tolist(), strict=True))
    for members, got in zip(groups, ours, strict=True):
        mask = np.zeros(60, dtype=bool)
        mask[members] = True
        ref = slice_summary(stats, mask, gold=gold, n_bootstrap=0)["hlp"]
        assert got["method"] == ref["method"] == "gold"
        assert got["value"] == pytest.approx(ref["value"])
        assert got["n_items"] == ref["n_items"]


def test_the_ground_truth_labelers_own_label_is_left_out():
    # item 1: truth 0 carried by labeler 9 (label 0); labelers 1, 2 say 0 and 1.
    item, labeler, value = [1, 1, 1], [9, 1, 2], [0, 0, 1]
    kept = ea.group_hlp(item, labeler, value, [[1]], gold_item=[1], gold_value=[0])
    left_out = ea.group_hlp(
        item, labeler, value, [[1]], gold_item=[1], gold_value=[0], gold_labeler=[9]
    )
    assert kept[0]["value"] == pytest.approx(2 / 3)
    assert left_out[0]["value"] == 0.5


def test_prioritisation_nulls_sort_last_and_say_why():
    hlp = {"value": 0.9, "method": "gold", "n_items": 20, "reasons": {}}
    rows = ea.prioritisation(
        [
            {"key": "tag", "value": "few", "n_items": 3, "n_correct": 1, "hlp": hlp},
            {"key": "tag", "value": "small", "n_items": 10, "n_correct": 5, "hlp": hlp},
            {"key": "tag", "value": "big", "n_items": 50, "n_correct": 40, "hlp": hlp},
            {
                "key": "site",
                "value": "x",
                "n_items": 30,
                "n_correct": 30,
                "hlp": {"value": None, "method": "pairwise", "n_items": 0, "reasons": {}},
            },
        ],
        n_scored=100,
    )
    # big: (0.9 - 0.8) * 0.5 = 0.05; small: (0.9 - 0.5) * 0.1 = 0.04
    assert [r["value"] for r in rows] == ["big", "small", "x", "few"]
    assert rows[0]["potential_gain"] == pytest.approx(0.05)
    assert rows[1]["potential_gain"] == pytest.approx(0.04)
    assert rows[3]["reasons"]["model_accuracy"].startswith("too few items: 3 scored items")
    assert "hlp" in rows[2]["reasons"] and rows[2]["potential_gain"] is None


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError):
        ea.group_hlp([1, 2], [1], [0, 0], [[1]])
    with pytest.raises(ValueError):
        ea.classification_report([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError):
        ea.tag_statistics([True], {"x": [3]})


def test_model_as_labeler_kappas_equal_cohen_kappa_on_the_shared_items():
    from consistency.metrics import cohen_kappa

    item, labeler, value = random_labels(4, n_items=80, n_labelers=4, n_classes=3)
    rng = np.random.default_rng(9)
    p_item = np.arange(0, 80, 1)[rng.random(80) < 0.8]
    p_value = rng.integers(0, 3, p_item.size)
    cons_item = np.arange(0, 80, 2)
    cons_value = rng.integers(0, 3, cons_item.size)
    out = ea.model_as_labeler(
        item,
        labeler,
        value,
        p_item,
        p_value,
        n_classes=3,
        consensus_item=cons_item,
        consensus_value=cons_value,
    )
    model_of = dict(zip(p_item.tolist(), p_value.tolist(), strict=True))
    for entry in out["per_labeler"]:
        sel = (labeler == entry["labeler"]) & np.isin(item, p_item)
        expected = cohen_kappa(value[sel], [model_of[i] for i in item[sel].tolist()], n_classes=3)
        assert entry["n_shared"] == sel.sum()
        assert entry["cohen_kappa"] == pytest.approx(expected)
    # Humans among themselves: each human's mean of its pairwise kappas.
    for h, mean in out["human_mean_kappas"].items():
        kappas = []
        for other in set(labeler.tolist()) - {h}:
            a = dict(zip(item[labeler == h].tolist(), value[labeler == h].tolist(), strict=True))
            b = dict(
                zip(item[labeler == other].tolist(), value[labeler == other].tolist(), strict=True)
            )
            both = sorted(set(a) & set(b))
            if both:
                kappas.append(cohen_kappa([a[i] for i in both], [b[i] for i in both], n_classes=3))
        assert mean == pytest.approx(np.mean(kappas))
    common = sorted(set(cons_item.tolist()) & set(p_item.tolist()))
    cons_of = dict(zip(cons_item.tolist(), cons_value.tolist(), strict=True))
    assert out["consensus"]["cohen_kappa"] == pytest.approx(
        cohen_kappa([cons_of[i] for i in common], [model_of[i] for i in common], n_classes=3)
    )
    assert out["position"] in ("below", "inside", "above")
