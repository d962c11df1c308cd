"""Majority vote (ties disputed) and Dawid-Skene vs crowd-kit."""

import doctest

import numpy as np
import pandas as pd
import pytest

import consistency.metrics.consensus as consensus_mod
from consistency.metrics import dawid_skene, majority_consensus


def test_consensus_doctests():
    assert doctest.testmod(consensus_mod).failed == 0


def test_majority_ties_are_disputed_never_broken():
    items = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    values = [1, 1, 1, 0, 2, 0, 0, 2, 2, 3]
    df = majority_consensus(items, values, n_classes=4).set_index("item")
    assert df.loc[0, "status"] == "unanimous" and df.loc[0, "label"] == 1
    assert df.loc[0, "support"] == 1.0 and df.loc[0, "entropy"] == 0.0
    assert df.loc[1, "status"] == "disputed" and pd.isna(df.loc[1, "label"])
    assert df.loc[1, "entropy"] == pytest.approx(1.0)  # two equal halves: 1 bit
    assert df.loc[2, "status"] == "disputed" and pd.isna(df.loc[2, "label"])
    assert df.loc[2, "support"] == 0.5
    assert df.loc[3, "status"] == "single" and df.loc[3, "label"] == 3


def test_majority_support_and_entropy():
    df = majority_consensus([0, 0, 0, 0], [2, 2, 2, 0])
    assert df.loc[0, "label"] == 2 and df.loc[0, "status"] == "majority"
    assert df.loc[0, "support"] == 0.75
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert df.loc[0, "entropy"] == pytest.approx(h)


def _crowd(seed, n_items=4000, n_workers=40, k=5):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    skill = rng.uniform(0.35, 0.95, n_workers)
    bias = rng.integers(0, k, n_workers)  # each worker's favourite wrong answer
    m = rng.integers(2, 7, n_items)
    items = np.repeat(np.arange(n_items), m)
    workers = np.concatenate([rng.choice(n_workers, c, replace=False) for c in m])
    right = rng.random(items.size) < skill[workers]
    wrong = np.where(rng.random(items.size) < 0.5, bias[workers], rng.integers(0, k, items.size))
    values = np.where(right, truth[items], wrong)
    return items, workers, values, truth


@pytest.mark.parametrize("seed", [0, 1])
def test_dawid_skene_matches_crowdkit(seed):
    from crowdkit.aggregation import DawidSkene

    items, workers, values, truth = _crowd(seed)
    ours = dawid_skene(items, workers, values, n_classes=5, max_iter=100, tol=1e-5)
    df = pd.DataFrame({"task": items, "worker": workers, "label": values})
    ck = DawidSkene(n_iter=100, tol=1e-5).fit(df)
    ck_labels = ck.labels_.reindex(ours.items_).to_numpy()
    assert np.mean(ck_labels == ours.labels_) >= 0.99
    ck_probas = ck.probas_.reindex(ours.items_)[list(range(5))].to_numpy()
    assert np.abs(ck_probas - ours.probas_).max() < 1e-3
    assert ours.converged_
    # sanity: better than chance and confusion rows are distributions
    assert np.mean(ours.labels_ == truth) > 0.8
    assert np.allclose(ours.errors_.sum(axis=2), 1.0)
    assert ours.confidence_.shape == (4000,)
    assert np.allclose(ours.probas_.sum(axis=1), 1.0)


def test_dawid_skene_is_deterministic_and_validates():
    items, workers, values, _ = _crowd(3, n_items=500)
    a = dawid_skene(items, workers, values)
    b = dawid_skene(items, workers, values)
    assert np.array_equal(a.probas_, b.probas_)
    assert list(a.to_frame().columns) == ["item", "label", "confidence"]
    with pytest.raises(ValueError):
        dawid_skene(items, workers[:-1], values)
    with pytest.raises(ValueError):
        dawid_skene(items, workers, values, max_iter=0)
