"""A slice's figures from its items' value counts (``slice_summary_from_counts``, what
runs without gold and flag detection use) equal the figures from its labels
(``slice_summary``) to the last bit, bootstrap intervals included, at every level."""

from __future__ import annotations

import numpy as np
import pytest

from consistency.metrics import (
    AgreementStats,
    item_value_counts,
    slice_summary,
    slice_summary_from_counts,
)


def random_stats(seed: int, level: str) -> AgreementStats:
    rng = np.random.default_rng(seed)
    n_items = 400
    per_item = rng.integers(1, 6, n_items)  # some items with a single label
    items = np.repeat(rng.choice(10 * n_items, n_items, replace=False), per_item)
    labelers = np.concatenate([rng.choice(9, k, replace=False) for k in per_item])
    truth = np.repeat(rng.integers(0, 4, n_items), per_item)
    values = np.where(rng.random(items.size) < 0.65, truth, rng.integers(0, 4, items.size))
    if level == "interval":
        return AgreementStats.from_labels(
            items, labelers, values * 0.5 + 1.0, level=level, n_labelers=9
        )
    return AgreementStats.from_labels(
        items, labelers, values, level=level, n_classes=5, n_labelers=9
    )


def from_counts(stats, counts, **kw):
    return slice_summary_from_counts(
        counts,
        level=stats.level,
        value_points=None if stats.categorical else stats.value_points,
        **kw,
    )


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_slices_from_counts_equal_slices_from_labels(level, seed):
    stats = random_stats(seed, level)
    item_ids, counts = item_value_counts(stats)
    assert counts.sum() == stats.n_annotations
    rng = np.random.default_rng(100 + seed)
    size = int(stats.item.max()) + 1
    masks = [
        rng.random(size) < 0.3,
        rng.random(size) < 0.9,
        np.ones(size, dtype=bool),
        np.zeros(size, dtype=bool),  # an empty slice: nulls with reasons
    ]
    for mask in masks:
        for n_bootstrap in (0, 60):
            want = slice_summary(stats, mask, n_bootstrap=n_bootstrap, seed=seed)
            got = from_counts(stats, counts[mask[item_ids]], n_bootstrap=n_bootstrap, seed=seed)
            assert got == want


@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_label_subsets_from_counts_equal_a_subset_of_labels(level):
    stats = random_stats(7, level)
    subset = np.random.default_rng(3).random(stats.n_annotations) < 0.5
    sub = AgreementStats.from_labels(
        stats.item[subset],
        stats.labeler[subset],
        stats.value[subset],
        level=stats.level,
        n_classes=stats.n_values if stats.categorical else None,
        value_points=None if stats.categorical else stats.value_points,
        n_labelers=stats.n_labelers,
    )
    want = slice_summary(sub, np.ones(int(sub.item.max()) + 1, dtype=bool), n_bootstrap=40)
    got = from_counts(stats, item_value_counts(stats, subset)[1], n_bootstrap=40)
    assert got == want


def test_counts_that_are_not_a_table_of_whole_numbers_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        slice_summary_from_counts(np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match="whole numbers"):
        slice_summary_from_counts(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        slice_summary_from_counts(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="value points"):
        slice_summary_from_counts(
            np.ones((2, 3), dtype=np.int64), level="interval", value_points=[1.0, 2.0]
        )


def test_without_gwet_the_other_figures_are_unchanged_and_gwet_says_why():
    stats = random_stats(4, "ordinal")
    counts = item_value_counts(stats)[1]
    full = from_counts(stats, counts, n_bootstrap=30)
    lean = from_counts(stats, counts, n_bootstrap=30, gwet=False)
    gwet_keys = ("gwet_ac1", "gwet_ac1_ci", "gwet_ac2", "gwet_ac2_ci")
    assert full["gwet_ac2"] is not None
    for key in gwet_keys:
        assert lean[key] is None
        assert lean["reasons"][key] == "not computed (gwet=False)"
    same = {k: v for k, v in full.items() if k not in (*gwet_keys, "reasons")}
    assert {k: v for k, v in lean.items() if k in same} == same
