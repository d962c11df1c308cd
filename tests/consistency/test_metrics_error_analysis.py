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
