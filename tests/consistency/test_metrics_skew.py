"""Agreement that survives skewed classes: AC1 per class and per slice with intervals,
Byrt's prevalence and bias indices, and the kappa-paradox warning (issue 15, item 4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from consistency.metrics import AgreementStats, gwet_ac, gwet_ac1, slice_summary, summarize
from consistency.metrics.gwet import (
    PARADOX_RULE,
    gwet_ac_bootstrap,
    kappa_paradox,
    prevalence_bias_indices,
)
from tests.consistency.test_metrics_gwet import _counts, _pairwise_ac, _random_rows, _w_nominal

OK, DEFECT = 0, 1


def skewed_stats(n_clean=90, n_split=8, n_defect=2, offset=0):
    """Two labelers: ``n_clean`` items both say ok, ``n_split`` the first ok and the
    second defect, ``n_defect`` both defect. Item codes start at ``offset``."""
    pairs = [(OK, OK)] * n_clean + [(OK, DEFECT)] * n_split + [(DEFECT, DEFECT)] * n_defect
    items, labelers, values = [], [], []
    for i, (a, b) in enumerate(pairs):
        items += [offset + i, offset + i]
        labelers += [0, 1]
        values += [a, b]
    return items, labelers, values


def test_skewed_example_kappa_low_ac1_high_and_the_warning_is_given():
    """92% agreement; Fleiss' kappa (0.92 - 0.8872) / 0.1128 = 0.29; AC1 0.91 (worked in
    test_metrics_gwet); Krippendorff's alpha below 0.4 too."""
    stats = AgreementStats.from_labels(*skewed_stats(), level="nominal", n_classes=2)
    results = summarize(stats, classes=["ok", "defect"], n_bootstrap=0)
    overall = results["overall"]
    assert overall["fleiss_kappa"] == pytest.approx(0.2908, abs=1e-4)
    assert overall["krippendorff_alpha"] < 0.4
    assert overall["gwet_ac1"] == pytest.approx((0.92 - 0.1128) / 0.8872)
    warning = results["reasons"]["paradox"]
    assert "Krippendorff's alpha 0.29" in warning and "92%" in warning and "AC1 is 0.91" in warning
    assert results["paradox_rule"] == PARADOX_RULE
    # Byrt: a = 2 (both defect), b = 0, c = 8, d = 90 -> PI |2 - 90| / 100, BI |0 - 8| / 100
    assert overall["prevalence_index"] == pytest.approx(0.88)
    assert overall["bias_index"] == pytest.approx(0.08)


def test_no_warning_when_agreement_is_plainly_poor_or_plainly_good():
    poor = AgreementStats.from_labels(
        *skewed_stats(n_clean=30, n_split=40, n_defect=30), level="nominal", n_classes=2
    )
    assert "paradox" not in summarize(poor, n_bootstrap=0)["reasons"]
    balanced = AgreementStats.from_labels(
        *skewed_stats(n_clean=48, n_split=4, n_defect=48), level="nominal", n_classes=2
    )
    good = summarize(balanced, n_bootstrap=0)
    assert good["overall"]["krippendorff_alpha"] > 0.8
    assert "paradox" not in good["reasons"]


def test_rule_boundaries():
    assert kappa_paradox({"alpha": 0.39}, 0.8, 0.6, "AC1") is not None
    assert kappa_paradox({"alpha": 0.4}, 0.95, 0.9, "AC1") is None
    assert kappa_paradox({"alpha": 0.1}, 0.79, 0.9, "AC1") is None
    assert kappa_paradox({"alpha": 0.1}, 0.9, 0.59, "AC1") is None
    assert kappa_paradox({"alpha": None}, 0.9, 0.9, "AC1") is None
    assert kappa_paradox({"alpha": 0.1}, None, 0.9, "AC1") is None


def test_per_class_ac1_is_ac1_of_the_one_vs_rest_labels():
    rows = _random_rows(np.random.default_rng(11), n_items=40, n_raters=4, q=3, p_missing=0.2)
    items, labelers, values = zip(*rows, strict=True)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=3)
    per_class = summarize(stats, classes=["a", "b", "c"], n_bootstrap=50, seed=1)["per_class"]
    for c, entry in enumerate(per_class):
        recoded = [(i, r, 0 if k == c else 1) for i, r, k in rows]
        assert entry["gwet_ac1"] == pytest.approx(
            _pairwise_ac(recoded, [0, 1], _w_nominal), abs=1e-12
        )
        # one-vs-rest percent agreement: agreeing ordered pairs / pairs, per item, averaged
        by_item: dict = {}
        for i, _, k in recoded:
            by_item.setdefault(i, []).append(k)
        terms = [
            np.mean([a == b for a, b in itertools.permutations(ks, 2)])
            for ks in by_item.values()
            if len(ks) >= 2
        ]
        assert entry["percent_agreement"] == pytest.approx(np.mean(terms))
        low, high = entry["gwet_ac1_ci"]
        assert low <= entry["gwet_ac1"] <= high


def test_per_class_prevalence_and_bias_pool_every_labeler_pair():
    rows = _random_rows(np.random.default_rng(4), n_items=30, n_raters=3, q=3, p_missing=0.25)
    items, labelers, values = zip(*rows, strict=True)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=3)
    per_class = summarize(stats, n_bootstrap=0)["per_class"]
    label = {(i, r): k for i, r, k in rows}
    for c, entry in enumerate(per_class):
        both = neither = 0
        bias_sum = total = 0
        for r1, r2 in itertools.combinations(range(3), 2):
            shared = [i for i in range(30) if (i, r1) in label and (i, r2) in label]
            b = sum(label[(i, r1)] == c and label[(i, r2)] != c for i in shared)
            cc = sum(label[(i, r1)] != c and label[(i, r2)] == c for i in shared)
            both += sum(label[(i, r1)] == c and label[(i, r2)] == c for i in shared)
            neither += sum(label[(i, r1)] != c and label[(i, r2)] != c for i in shared)
            bias_sum += abs(b - cc)
            total += len(shared)
        assert entry["prevalence_index"] == pytest.approx(abs(both - neither) / total)
        assert entry["bias_index"] == pytest.approx(bias_sum / total)


def test_byrt_two_by_two_and_bad_input():
    # Byrt et al. define PI = (a - d) / n and BI = (b - c) / n
    got = prevalence_bias_indices([[5, 20], [3, 72]])
    assert (got.prevalence_index, got.bias_index) == (pytest.approx(0.67), pytest.approx(0.17))
    assert prevalence_bias_indices(np.zeros((0, 2, 2))).reason
    with pytest.raises(ValueError, match="shape"):
        prevalence_bias_indices([[1, 2, 3]])
    with pytest.raises(ValueError, match="non-negative"):
        prevalence_bias_indices([[1, -2], [3, 4]])


def test_a_non_binary_run_reports_indices_per_class_only():
    rows = _random_rows(np.random.default_rng(1), n_items=20, n_raters=3, q=3, p_missing=0.0)
    items, labelers, values = zip(*rows, strict=True)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=3)
    overall = summarize(stats, n_bootstrap=0)["overall"]
    assert overall["prevalence_index"] is None and "per_class" in overall["reasons"]["bias_index"]


def _slow_profile_bootstrap(counts, n_bootstrap, seed, confidence):
    """The profile draws, with the item rows actually repeated and AC recomputed."""
    counts = np.asarray(counts)
    rated = counts[counts.sum(axis=1) > 0]
    profiles, freq = np.unique(rated, axis=0, return_counts=True)
    n = rated.shape[0]
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_bootstrap):
        f = rng.multinomial(n, freq / n)
        value = gwet_ac(np.repeat(profiles, f, axis=0)).value
        if value is not None:
            reps.append(value)
    tail = (1 - confidence) / 2 * 100
    return list(np.percentile(reps, [tail, 100 - tail]))


def test_profile_bootstrap_matches_recomputing_on_resampled_items():
    rows = _random_rows(np.random.default_rng(3), n_items=60, n_raters=3, q=2, p_missing=0.2)
    counts = _counts(rows, 60, 2)
    got = gwet_ac_bootstrap(counts, n_bootstrap=300, seed=8, confidence=0.9, by_profile=True)
    assert got == pytest.approx(_slow_profile_bootstrap(counts, 300, 8, 0.9), abs=1e-12)
    assert got[0] <= gwet_ac1(counts).value <= got[1]


def test_slices_carry_ac1_with_an_interval_and_their_own_warning():
    skew = skewed_stats()
    flat = skewed_stats(n_clean=30, n_split=40, n_defect=30, offset=100)
    stats = AgreementStats.from_labels(
        *(a + b for a, b in zip(skew, flat, strict=True)), level="nominal", n_classes=2
    )
    mask = np.zeros(200, dtype=bool)
    mask[:100] = True
    skewed = slice_summary(stats, mask, n_bootstrap=200, seed=2)
    only = AgreementStats.from_labels(*skew, level="nominal", n_classes=2)
    assert skewed["gwet_ac1"] == pytest.approx(
        summarize(only, n_bootstrap=0)["overall"]["gwet_ac1"]
    )
    assert skewed["gwet_ac1_ci"][0] <= skewed["gwet_ac1"] <= skewed["gwet_ac1_ci"][1]
    assert "paradox" in skewed["reasons"]
    other = slice_summary(stats, ~mask, n_bootstrap=0)
    assert other["gwet_ac1"] is not None and "paradox" not in other["reasons"]
    assert "n_bootstrap=0" in other["reasons"]["gwet_ac1_ci"]
