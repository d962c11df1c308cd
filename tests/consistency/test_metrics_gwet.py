"""Gwet's AC1 / AC2 (issue 15, item 4) against hand-worked values and a second,
pair-by-pair implementation written here from the handbook's definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from consistency.metrics import (
    AgreementStats,
    gwet_ac,
    gwet_ac1,
    gwet_ac2,
    gwet_ac_bootstrap,
    gwet_weights,
    summarize,
)


# --------------------------------------------------------------------------- hand-worked
def test_ac1_hand_worked_with_a_missing_rating():
    # item 1: a a a; item 2: a a b; item 3: b b (third rater missing)
    counts = [[3, 0], [2, 1], [0, 2]]
    # pa = (1 + (2*1)/(3*2) + 1) / 3 = 7/9; pi = (5/9, 4/9)
    # pe = sum(I)=2 * (5/9*4/9 + 4/9*5/9) / (2*1) = 40/81
    res = gwet_ac1(counts)
    assert res.pa == pytest.approx(7 / 9)
    assert res.pe == pytest.approx(40 / 81)
    assert res.value == pytest.approx((7 / 9 - 40 / 81) / (1 - 40 / 81))
    assert res.value == pytest.approx(23 / 41)


def test_weights_hand_worked():
    ordinal = gwet_weights([0, 1, 2], "ordinal")  # 1 - C(n_kl, 2) / C(3, 2)
    assert ordinal == pytest.approx(np.array([[1, 2 / 3, 0], [2 / 3, 1, 2 / 3], [0, 2 / 3, 1]]))
    quadratic = gwet_weights([0, 1, 2], "interval")
    assert quadratic == pytest.approx(np.array([[1, 0.75, 0], [0.75, 1, 0.75], [0, 0.75, 1]]))
    # ratio: ((1-2)/3)^2 = 1/9, ((1-4)/5)^2 = 9/25 (the max), ((2-4)/6)^2 = 1/9
    ratio = gwet_weights([1, 2, 4], "ratio")
    assert ratio == pytest.approx(
        np.array([[1, 56 / 81, 0], [56 / 81, 1, 56 / 81], [0, 56 / 81, 1]])
    )
    assert gwet_weights([0, 5], "ratio") == pytest.approx(np.array([[1, 0], [0, 1]]))
    assert gwet_weights([3, 7, 9], "nominal") == pytest.approx(np.eye(3))


def test_ac2_ordinal_hand_worked():
    # 2 raters, grades 0..2: (0,0), (0,1), (2,2); ordinal weights w01 = 2/3
    counts = [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    pa = (1 + 2 / 3 + 1) / 3  # the (0,1) item agrees by w01 = 2/3
    pi = np.array([1.5, 0.5, 1.0]) / 3  # item shares: (1,0,0), (.5,.5,0), (0,0,1)
    pe = (3 + 4 * 2 / 3) / 6 * (pi * (1 - pi)).sum()  # sum(W) = 3 + 4*(2/3)
    res = gwet_ac2(counts, [0, 1, 2], "ordinal")
    assert (res.pa, res.pe) == (pytest.approx(pa), pytest.approx(pe))
    assert res.value == pytest.approx((pa - pe) / (1 - pe))


def test_skewed_classes_kappa_low_ac1_high():
    """The kappa paradox: 90 items both say ok, 8 split, 2 both defect. 92% agreement;
    Fleiss' kappa (0.92 - 0.8872) / 0.1128 = 0.29; AC1 (0.92 - 0.1128) / 0.8872 = 0.91."""
    items, labelers, values = [], [], []
    pairs = [(0, 0)] * 90 + [(0, 1)] * 8 + [(1, 1)] * 2
    for i, (a, b) in enumerate(pairs):
        items += [i, i]
        labelers += [0, 1]
        values += [a, b]
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=2)
    overall = summarize(stats, classes=["ok", "defect"], n_bootstrap=0)["overall"]
    assert overall["percent_agreement"] == pytest.approx(0.92)
    assert overall["fleiss_kappa"] == pytest.approx((0.92 - 0.8872) / 0.1128)
    assert overall["gwet_ac1"] == pytest.approx((0.92 - 0.1128) / 0.8872)
    assert overall["fleiss_kappa"] < 0.3 and overall["gwet_ac1"] > 0.9
    assert overall["gwet_ac2"] is None and "nominal" in overall["reasons"]["gwet_ac2"]


# --------------------------------------------------------------------------- second impl
def _pairwise_ac(rows, values, weight):
    """AC from (item, rater, category index) rows, pair by pair: p_a is the mean over
    items with two ratings of the mean weight over ordered pairs of distinct raters;
    pi_k the mean over rated items of the share of category k; p_e as in the handbook."""
    q = len(values)
    by_item: dict = {}
    for item, _rater, k in rows:
        by_item.setdefault(item, []).append(k)
    pa_terms = []
    for ks in by_item.values():
        if len(ks) < 2:
            continue
        pairs = [weight(values[a], values[b]) for a, b in itertools.permutations(ks, 2)]
        pa_terms.append(sum(pairs) / len(pairs))
    pi = [sum(ks.count(k) / len(ks) for ks in by_item.values()) / len(by_item) for k in range(q)]
    total_w = sum(weight(values[k], values[m]) for k in range(q) for m in range(q))
    pa = sum(pa_terms) / len(pa_terms)
    pe = total_w / (q * (q - 1)) * sum(p * (1 - p) for p in pi)
    return (pa - pe) / (1 - pe)


def _w_nominal(a, b):
    return 1.0 if a == b else 0.0


def _w_ordinal_for(values):
    q = len(values)
    order = sorted(values)

    def w(a, b):
        n = abs(order.index(a) - order.index(b)) + 1
        return 1 - (n * (n - 1) / 2) / (q * (q - 1) / 2)

    return w


def _w_quadratic_for(values):
    span = (max(values) - min(values)) ** 2
    return lambda a, b: 1 - (a - b) ** 2 / span


def _w_ratio_for(values):
    top = max(((a - b) / (a + b)) ** 2 for a in values for b in values if a + b > 0)
    return lambda a, b: 1 - (((a - b) / (a + b)) ** 2 if a + b > 0 else 0) / top


def _random_rows(rng, n_items, n_raters, q, p_missing):
    rows = []
    for i in range(n_items):
        truth = rng.integers(q)
        for r in range(n_raters):
            if rng.random() < p_missing:
                continue
            k = truth if rng.random() < 0.7 else rng.integers(q)
            rows.append((i, r, int(k)))
    return rows


def _counts(rows, n_items, q):
    c = np.zeros((n_items, q), dtype=np.int64)
    for i, _, k in rows:
        c[i, k] += 1
    return c


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("level", "values"),
    [
        ("nominal", [0, 1, 2, 3]),
        ("ordinal", [0, 1, 2, 3, 4]),
        ("interval", [1.0, 2.5, 3.0, 7.0]),
        ("ratio", [0.0, 1.0, 2.0, 5.0]),
    ],
)
def test_matches_the_pairwise_implementation_with_missing_ratings(seed, level, values):
    rng = np.random.default_rng(seed)
    rows = _random_rows(rng, n_items=40, n_raters=5, q=len(values), p_missing=0.3)
    counts = _counts(rows, 40, len(values))
    weight = {
        "nominal": _w_nominal,
        "ordinal": _w_ordinal_for(values),
        "interval": _w_quadratic_for(values),
        "ratio": _w_ratio_for(values),
    }[level]
    expected = _pairwise_ac(rows, values, weight)
    got = gwet_ac1(counts) if level == "nominal" else gwet_ac2(counts, values, level)
    assert got.value == pytest.approx(expected, abs=1e-12)


def test_summary_reports_ac1_and_ac2_for_an_ordinal_run():
    rng = np.random.default_rng(5)
    rows = _random_rows(rng, n_items=30, n_raters=4, q=3, p_missing=0.2)
    items, labelers, vals = zip(*rows, strict=True)
    stats = AgreementStats.from_labels(items, labelers, vals, level="ordinal", n_classes=3)
    overall = summarize(stats, n_bootstrap=0)["overall"]
    counts = _counts(rows, 30, 3)
    assert overall["gwet_ac1"] == pytest.approx(_pairwise_ac(rows, [0, 1, 2], _w_nominal))
    assert overall["gwet_ac2"] == pytest.approx(
        _pairwise_ac(rows, [0, 1, 2], _w_ordinal_for([0, 1, 2]))
    )
    assert overall["gwet_ac2"] == pytest.approx(gwet_ac2(counts, [0, 1, 2], "ordinal").value)


def test_interval_run_reports_ac2_with_quadratic_weights_and_no_ac1():
    items = [0, 0, 1, 1, 2, 2]
    labelers = [0, 1, 0, 1, 0, 1]
    vals = [1.0, 2.0, 3.0, 3.0, 5.0, 4.0]
    stats = AgreementStats.from_labels(items, labelers, vals, level="interval")
    overall = summarize(stats, n_bootstrap=0)["overall"]
    points = [1.0, 2.0, 3.0, 4.0, 5.0]
    rows = [(i, r, points.index(v)) for i, r, v in zip(items, labelers, vals, strict=True)]
    assert overall["gwet_ac2"] == pytest.approx(
        _pairwise_ac(rows, points, _w_quadratic_for(points))
    )
    assert overall["gwet_ac1"] is None and "interval" in overall["reasons"]["gwet_ac1"]


# --------------------------------------------------------------------------- boundaries
def test_not_computable_is_none_with_a_reason():
    one_each = gwet_ac1([[1, 0], [0, 1]])
    assert one_each.value is None and "two or more" in one_each.reason
    single = gwet_ac1([[3], [2]])
    assert single.value is None and "two categories" in single.reason
    stats = AgreementStats.from_labels([0, 1], [0, 1], [0, 1], level="nominal", n_classes=2)
    overall = summarize(stats, n_bootstrap=0)["overall"]
    assert overall["gwet_ac1"] is None and overall["reasons"]["gwet_ac1"]


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: gwet_ac1([1, 2]), "2-D"),
        (lambda: gwet_ac1([[1, -1]]), "non-negative"),
        (lambda: gwet_ac1([[1.5, 1]]), "whole"),
        (lambda: gwet_ac([[1, 1]], np.eye(3)), "weights"),
        (lambda: gwet_ac2([[1, 1]], [0, 1, 2], "ordinal"), "categories"),
        (lambda: gwet_ac2([[1, 1]], [0, 1], "nominal"), "gwet_ac1"),
        (lambda: gwet_weights([0, 1], "loud"), "level"),
        (lambda: gwet_weights([0, 0], "interval"), "distinct"),
        (lambda: gwet_weights([-1, 1], "ratio"), "non-negative"),
        (lambda: gwet_weights([0, np.nan], "interval"), "finite"),
    ],
)
def test_bad_input_is_a_value_error(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --------------------------------------------------------------------------- bootstrap
def _slow_bootstrap(counts, weights, n_bootstrap, seed, confidence):
    """The same replicates, item rows actually repeated and AC recomputed from scratch."""
    counts = np.asarray(counts)
    rated = counts[counts.sum(axis=1) > 0]
    n = rated.shape[0]
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_bootstrap):
        f = rng.multinomial(n, np.full(n, 1.0 / n))
        value = gwet_ac(np.repeat(rated, f, axis=0), weights).value
        if value is not None:
            reps.append(value)
    tail = (1 - confidence) / 2 * 100
    return list(np.percentile(reps, [tail, 100 - tail]))


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_bootstrap_interval_matches_recomputing_on_resampled_items(level):
    rows = _random_rows(np.random.default_rng(9), n_items=25, n_raters=4, q=3, p_missing=0.3)
    counts = _counts(rows, 25, 3)
    weights = gwet_weights([0, 1, 2], level)
    got = gwet_ac_bootstrap(counts, weights, n_bootstrap=200, seed=4, confidence=0.9)
    assert got == pytest.approx(_slow_bootstrap(counts, weights, 200, 4, 0.9), abs=1e-12)
    point = gwet_ac(counts, weights).value
    assert got[0] <= point <= got[1]
    assert gwet_ac_bootstrap(counts, weights, n_bootstrap=200, seed=4, confidence=0.9) == got


def test_summary_intervals_and_their_reasons():
    rows = _random_rows(np.random.default_rng(2), n_items=30, n_raters=3, q=3, p_missing=0.1)
    items, labelers, vals = zip(*rows, strict=True)
    stats = AgreementStats.from_labels(items, labelers, vals, level="nominal", n_classes=3)
    overall = summarize(stats, n_bootstrap=100, seed=3)["overall"]
    counts = _counts(rows, 30, 3)
    # The run draws profiles (see gwet_ac_bootstrap), the same distribution as items.
    assert overall["gwet_ac1_ci"] == pytest.approx(
        gwet_ac_bootstrap(counts, n_bootstrap=100, seed=3, confidence=0.95, by_profile=True)
    )
    assert overall["gwet_ac2_ci"] is None and overall["reasons"]["gwet_ac2_ci"]
    none = summarize(stats, n_bootstrap=0)["overall"]
    assert none["gwet_ac1_ci"] is None and "n_bootstrap=0" in none["reasons"]["gwet_ac1_ci"]


@pytest.mark.parametrize(
    "shape, top",
    [((500, 4), 6), ((2000, 2), 30), ((300, 40), 3), ((50, 12), 40_000), ((0, 3), 1)],
)
def test_profile_rows_by_integer_key_equal_numpy_unique_rows(shape, top):
    """The profile bootstrap groups rows by one integer per row where it fits in 62 bits
    (the last three cases take numpy's record sort): same rows, order and counts."""
    from consistency.metrics.gwet import _unique_rows

    rows = np.random.default_rng(top).integers(0, top, shape).astype(np.float64)
    got_rows, got_freq = _unique_rows(rows)
    want_rows, want_freq = np.unique(rows, axis=0, return_counts=True)
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(got_freq, want_freq)
