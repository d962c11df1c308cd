"""The pure drift tests (consistency.metrics.drift): hand-worked values, a second
implementation for the multiple-testing correction, no verdict on tiny windows, about zero
alarms on pure noise, and no NaN / Infinity on constant or empty columns.

Pure numerics: run with ``-p no:django``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from consistency.metrics import drift


def strict_json(obj) -> object:
    """Round-trip through JSON refusing NaN / Infinity both ways."""

    def refuse(name):
        raise ValueError(f"non-finite constant {name}")

    return json.loads(json.dumps(obj, allow_nan=False), parse_constant=refuse)


# --------------------------------------------------------------------------- hand-worked


def test_ks_statistic_and_wasserstein_on_hand_worked_samples():
    base = [1.0, 2.0, 3.0] * 10
    cur = [4.0, 5.0, 6.0] * 10
    check = drift.numeric_check(base, cur, min_n=30)
    assert check["test"] == "ks"
    assert check["statistic"] == 1.0  # the empirical CDFs never overlap
    assert check["p_value"] < 1e-10
    # W1 = 3 (every value moved by 3); pooled values 1..6 equally often: std = 1.7078
    assert check["effect_size"] == pytest.approx(3 / np.std([1, 2, 3, 4, 5, 6]), abs=1e-6)


def test_chi_square_on_a_hand_worked_table():
    # [[10, 20], [20, 10]]: expected 15 everywhere, chi2 = 4 * 25 / 15 = 6.6667, 1 dof
    check = drift.categorical_check({"a": 10, "b": 20}, {"a": 20, "b": 10}, min_n=30)
    assert check["test"] == "chi_square"
    assert check["statistic"] == pytest.approx(20 / 3, abs=1e-5)
    assert check["p_value"] == pytest.approx(0.009823, abs=1e-5)  # chi2.sf(6.667, 1)


def test_clustered_labels_count_as_their_items():
    # the same table as above, but every item carries three identical labels: 30 items
    # in each window, so the statistic is a third (design effect 3)
    check = drift.categorical_check(
        {"a": 30, "b": 60}, {"a": 60, "b": 30}, min_n=30, n_clusters=(30, 30)
    )
    assert check["design_effect"] == 3.0
    assert check["statistic"] == pytest.approx(20 / 3, abs=1e-5)
    assert check["p_value"] == pytest.approx(0.009823, abs=1e-5)


def test_jensen_shannon_distance_by_hand():
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4);
    # KL(p||m) = log2(4/3); KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2)
    jsd = 0.5 * np.log2(4 / 3) + 0.5 * (0.5 * np.log2(2 / 3) + 0.5)
    assert drift.js_distance([4, 0], [2, 2]) == pytest.approx(np.sqrt(jsd), abs=1e-6)


def test_benjamini_hochberg_matches_statsmodels():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(size=150), rng.uniform(0, 0.001, size=50)])
    ours = drift.benjamini_hochberg(list(p))
    theirs = multipletests(p, method="fdr_bh")[1]
    assert np.allclose(ours, theirs, atol=1e-6)


def test_large_samples_use_wasserstein_and_jensen_shannon_without_p_values():
    rng = np.random.default_rng(0)
    num = drift.numeric_check(rng.normal(size=40000), rng.normal(0.5, 1, size=40000))
    assert num["test"] == "wasserstein" and num["p_value"] is None
    assert num["effect_size"] == pytest.approx(0.5 / np.sqrt(1 + 0.0625), abs=0.03)
    cat = drift.categorical_check({"a": 1500, "b": 1500}, {"a": 2500, "b": 500})
    assert cat["test"] == "jensen_shannon" and cat["p_value"] is None
    drift.decide([num, cat])
    assert num["drifted"] is True and cat["drifted"] is True


def test_bootstrap_difference_of_agreement():
    rng = np.random.default_rng(1)
    reps_b = drift.bootstrap_proportion(90, 100, n_bootstrap=2000, rng=rng)
    reps_c = drift.bootstrap_proportion(60, 100, n_bootstrap=2000, rng=rng)
    check = drift.agreement_check(0.9, reps_b, 0.6, reps_c, n_baseline=100, n_current=100, min_n=30)
    assert check["statistic"] == pytest.approx(-0.3)
    assert check["effect_size"] == pytest.approx(0.3)
    # by hand: se = sqrt(.9 * .1 / 100 + .6 * .4 / 100) = 0.0574, z = 5.22
    assert check["standard_error"] == pytest.approx(0.0574, abs=0.004)
    assert check["p_value"] < 1e-5
    lo, hi = check["difference_ci"]
    assert lo < -0.3 < hi < 0
    same = drift.agreement_check(
        0.9,
        drift.bootstrap_proportion(90, 100, n_bootstrap=2000, rng=rng),
        0.9,
        drift.bootstrap_proportion(90, 100, n_bootstrap=2000, rng=rng),
        n_baseline=100,
        n_current=100,
    )
    assert same["p_value"] > 0.5


def test_rate_check_exact_binomial():
    # 28 days vs 14 days at the same rate: 280 vs 140 is exactly on the expected split
    same = drift.rate_check(280, 28, 140, 14)
    assert same["statistic"] == 1.0 and same["p_value"] == pytest.approx(1.0)
    halved = drift.rate_check(280, 28, 70, 14)
    assert halved["effect_size"] == pytest.approx(0.5) and halved["p_value"] < 1e-6


def test_ac1_replicates_match_the_agreement_run_bootstrap():
    """Profile-collapsed replicates against gwet_ac_bootstrap (items drawn one by one):
    the same distribution, so the same interval up to Monte Carlo error, centred on AC1."""
    from consistency.metrics.gwet import gwet_ac1, gwet_ac_bootstrap

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 4, 3000)
    labels = np.where(rng.random((3000, 3)) < 0.8, truth[:, None], rng.integers(0, 4, (3000, 3)))
    counts = np.stack([(labels == k).sum(axis=1) for k in range(4)], axis=1)
    counts[::7, :] = 0  # items without labels are ignored by both
    counts[1::11] = np.eye(4, dtype=int)[truth[1::11]]  # single-label items
    reps = drift.gwet_ac1_replicates(counts, n_bootstrap=4000, seed=1)
    ours = np.percentile(reps, [2.5, 97.5])
    theirs = gwet_ac_bootstrap(counts, n_bootstrap=4000, seed=2)
    assert np.allclose(ours, theirs, atol=0.004)
    assert abs(reps.mean() - gwet_ac1(counts).value) < 0.002


# --------------------------------------------------------------------------- no false alarms


def test_too_few_items_is_no_verdict():
    check = drift.numeric_check(np.arange(100.0), [500.0] * 5, min_n=30)
    drift.decide([check])
    assert check["drifted"] is None
    assert check["reasons"]["drifted"] == "too few items (5)"
    assert check["statistic"] is None and check["p_value"] is None


def _noise_checks(rng, n_checks: int) -> list[dict]:
    """Pure noise: both windows from the same distribution, a mix of sizes and kinds."""
    checks = []
    for k in range(n_checks):
        n_b, n_c = int(rng.integers(30, 400)), int(rng.integers(30, 200))
        kind = k % 4
        if kind == 0:
            checks.append(drift.numeric_check(rng.normal(size=n_b), rng.normal(size=n_c)))
        elif kind == 1:
            p = rng.dirichlet(np.ones(5))
            b, c = rng.multinomial(n_b, p), rng.multinomial(n_c, p)
            checks.append(
                drift.categorical_check(dict(enumerate(b.tolist())), dict(enumerate(c.tolist())))
            )
        elif kind == 2:
            p = rng.uniform(0.6, 0.95)
            checks.append(
                drift.agreement_check(
                    rng.binomial(n_b, p) / n_b,
                    drift.bootstrap_proportion(rng.binomial(n_b, p), n_b, n_bootstrap=500, rng=rng),
                    rng.binomial(n_c, p) / n_c,
                    drift.bootstrap_proportion(rng.binomial(n_c, p), n_c, n_bootstrap=500, rng=rng),
                    n_baseline=n_b,
                    n_current=n_c,
                )
            )
        else:  # large windows: the effect size alone decides
            checks.append(
                drift.numeric_check(rng.uniform(size=2000 + n_b), rng.uniform(size=1500 + n_c))
            )
    return checks


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_two_hundred_checks_on_pure_noise_raise_at_most_one_alarm(seed):
    rng = np.random.default_rng(seed)
    checks = _noise_checks(rng, 200)
    raw = sum(1 for c in checks if c["p_value"] is not None and c["p_value"] < 0.05)
    drift.decide(checks, q_threshold=0.05, min_effect=0.1)
    assert raw >= 1  # uncorrected, noise fires: the correction is what keeps it quiet
    assert sum(1 for c in checks if c["drifted"]) <= 1


def test_a_real_shift_among_noise_is_still_found():
    rng = np.random.default_rng(9)
    checks = _noise_checks(rng, 199)
    shifted = drift.numeric_check(rng.normal(size=300), rng.normal(1.0, 1, size=100))
    checks.append(shifted)
    drift.decide(checks)
    assert shifted["drifted"] is True and shifted["q_value"] < 0.05


# --------------------------------------------------------------------------- edge columns


def test_constant_and_empty_columns_give_values_or_reasons_never_nan():
    cases = [
        drift.numeric_check([7.0] * 40, [7.0] * 40),
        drift.numeric_check([7.0] * 40, [9.0] * 40),
        drift.numeric_check([], []),
        drift.numeric_check([np.nan] * 40, [np.inf] * 40),
        drift.numeric_check([7.0] * 2000, [7.0] * 2000),
        drift.categorical_check({}, {}),
        drift.categorical_check({"a": 50}, {"a": 40}),
        drift.categorical_check({"a": 0, "b": 0}, {"a": 0}),
        drift.agreement_check(None, [], None, [], n_baseline=50, n_current=50),
        drift.agreement_check(1.0, [1.0] * 10, 1.0, [1.0] * 10, n_baseline=50, n_current=50),
        drift.rate_check(0, 0, 0, 0),
    ]
    drift.decide(cases)
    strict_json(cases)
    const_same, const_moved, empty = cases[0], cases[1], cases[2]
    assert const_same["effect_size"] == 0.0 and const_same["drifted"] is False
    assert const_moved["effect_size"] == 2.0 and const_moved["drifted"] is True
    assert empty["drifted"] is None and empty["reasons"]["drifted"] == "too few items (0)"
    one_cat = cases[6]
    assert one_cat["p_value"] == 1.0 and one_cat["effect_size"] == 0.0
    undefined = cases[8]
    assert undefined["drifted"] is None and undefined["reasons"]["drifted"]
    for check in cases:
        if check["drifted"] is None:
            assert check["reasons"].get("drifted"), check
