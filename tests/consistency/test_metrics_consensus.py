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


def _dawid_skene_with_nk_arrays(items, labelers, values, n_classes, max_iter=100, tol=1e-5):
    """The implementation before the memory change (per-label (N, K) arrays, np.unique),
    kept here as the reference the streaming one must reproduce."""
    eps = consensus_mod._EPS
    item, codes, lab = (np.asarray(a, dtype=np.int64) for a in (items, values, labelers))
    keep = codes >= 0
    item, codes, lab = item[keep], codes[keep], lab[keep]
    k = n_classes
    uniq, pos = np.unique(item, return_inverse=True)
    n_items, n_lab = uniq.size, int(lab.max()) + 1
    m = np.bincount(pos, minlength=n_items).astype(np.float64)
    probas = np.bincount(pos * k + codes, minlength=n_items * k).reshape(n_items, k) / m[:, None]
    lv = lab * k + codes
    observed = np.bincount(lv, minlength=n_lab * k).reshape(n_lab, k) > 0

    def m_step(t):
        err = np.empty((n_lab, k, k))
        for true in range(k):
            err[:, :, true] = np.bincount(lv, weights=t[pos, true], minlength=n_lab * k).reshape(
                n_lab, k
            )
        err = np.where(observed[:, :, None], np.maximum(err, eps), 0.0)
        return err / err.sum(axis=1, keepdims=True)

    def log_errors(err):
        with np.errstate(divide="ignore"):
            return np.log(err)

    priors = probas.mean(axis=0)
    errors = m_step(probas)
    loss, history, it = -np.inf, [], 0
    for it in range(1, max_iter + 1):  # noqa: B007
        le = log_errors(errors)[lab, codes, :]
        log_prior = np.log(np.maximum(priors, eps))
        ll = log_prior[None, :] + np.stack(
            [np.bincount(pos, weights=le[:, t], minlength=n_items) for t in range(k)], axis=1
        )
        ll -= ll.max(axis=1, keepdims=True)
        probas = np.exp(ll)
        probas /= probas.sum(axis=1, keepdims=True)
        priors = probas.mean(axis=0)
        errors = m_step(probas)
        le = log_errors(errors)[lab, codes, :]
        log_prior = np.log(np.maximum(priors, eps))
        joint = float(np.sum(probas[pos] * (le + log_prior[None, :])))
        pc = np.maximum(probas, eps)
        new_loss = (joint - float(np.sum(np.log(pc) * pc))) / codes.size
        history.append(new_loss)
        if new_loss - loss < tol:
            break
        loss = new_loss
    return uniq, probas, priors, errors, it, history


@pytest.mark.parametrize("shuffle", [False, True])
def test_dawid_skene_without_nk_arrays_gives_the_same_posteriors(shuffle, monkeypatch):
    """Dawid-Skene sums over labels one class at a time (no (N, K) per-label arrays: 480 MB
    each at 10M labels) and skips np.unique's sort on input sorted by item: the same
    posteriors, labels, priors and confusion matrices bit for bit as the (N, K) version;
    the loss (a sum in another order) to the last few bits."""
    items, workers, values, _ = _crowd(5)
    values = np.where(np.arange(values.size) % 97 == 0, -1, values)  # some missing
    if shuffle:
        order = np.random.default_rng(1).permutation(items.size)
        items, workers, values = items[order], workers[order], values[order]
    monkeypatch.setattr(consensus_mod, "_BLOCK", 1000)  # several blocks per class
    ours = dawid_skene(items, workers, values, n_classes=5)
    uniq, probas, priors, errors, n_iter, history = _dawid_skene_with_nk_arrays(
        items, workers, values, 5
    )
    assert np.array_equal(ours.items_, uniq)
    assert np.array_equal(ours.probas_, probas)
    assert np.array_equal(ours.labels_, probas.argmax(axis=1))
    assert np.array_equal(ours.priors_, priors)
    assert np.array_equal(ours.errors_, np.transpose(errors, (0, 2, 1)))
    assert ours.n_iter_ == n_iter
    assert np.allclose(ours.loss_history_, history, rtol=1e-12, atol=0)
