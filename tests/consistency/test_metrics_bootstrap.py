"""Bootstrap intervals over items and per-slice metrics."""

import numpy as np
import pytest

from consistency.metrics import AgreementStats, slice_summary, summarize


def data(seed, n_items, n_labelers=6, p_noise=0.3):
    rng = np.random.default_rng(seed)
    m = rng.integers(2, 5, n_items)
    items = np.repeat(np.arange(n_items), m)
    labelers = np.concatenate([rng.choice(n_labelers, k, replace=False) for k in m])
    truth = rng.integers(0, 3, n_items)
    noisy = rng.random(items.size) < p_noise
    values = np.where(noisy, rng.integers(0, 3, items.size), truth[items])
    return AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=3)


def test_ci_reproducible_with_seed_and_varies_with_seed():
    stats = data(0, 500)
    a = summarize(stats, n_bootstrap=300, seed=42)["overall"]
    b = summarize(stats, n_bootstrap=300, seed=42)["overall"]
    c = summarize(stats, n_bootstrap=300, seed=43)["overall"]
    assert a["krippendorff_alpha_ci"] == b["krippendorff_alpha_ci"]
    assert a["krippendorff_alpha_ci"] != c["krippendorff_alpha_ci"]


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_ci_contains_point_estimate(level):
    base = data(1, 2000)
    vals = base.value if level in ("nominal", "ordinal") else base.value * 2.5 + 1.0
    kw = {"n_classes": 3} if level in ("nominal", "ordinal") else {}
    stats = AgreementStats.from_labels(base.item, base.labeler, vals, level=level, **kw)
    res = summarize(stats, n_bootstrap=400, seed=0)
    lo, hi = res["overall"]["krippendorff_alpha_ci"]
    assert lo < res["overall"]["krippendorff_alpha"] < hi
    lo, hi = res["hlp"]["ci"]
    assert lo < res["hlp"]["value"] < hi


def test_ci_narrows_with_more_items():
    small = summarize(data(2, 200), n_bootstrap=400, seed=0)["overall"]["krippendorff_alpha_ci"]
    large = summarize(data(2, 5000), n_bootstrap=400, seed=0)["overall"]["krippendorff_alpha_ci"]
    assert (large[1] - large[0]) < 0.5 * (small[1] - small[0])


def test_bootstrap_replicate_equals_recomputation_on_resampled_items():
    """A multinomial replicate over profiles is the alpha of a resample of items."""
    from consistency.metrics import krippendorff_alpha
    from consistency.metrics.alpha import AlphaEngine, _item_value_counts, build_profiles

    stats = data(4, 300)
    rng = np.random.default_rng(9)
    pick = rng.integers(0, 300, 300)  # resample item indices
    w_items = np.bincount(pick, minlength=300)
    uniq, pos = np.unique(stats.item, return_inverse=True)
    t = _item_value_counts(pos, stats.value, uniq.size, 3)
    prof = build_profiles(*t, uniq.size, 3)
    w = np.bincount(prof.item_profile, weights=w_items, minlength=prof.m.size)
    got, _ = AlphaEngine(prof, "nominal", np.arange(3.0)).alpha(w)
    # explicit resampled data set: copy each picked item with a fresh item code
    rows_i, rows_v = [], []
    for new, old in enumerate(pick):
        sel = stats.item == old
        rows_i.append(np.full(sel.sum(), new))
        rows_v.append(stats.value[sel])
    ref = krippendorff_alpha(np.concatenate(rows_i), np.concatenate(rows_v), level="nominal")
    assert got == pytest.approx(ref, abs=1e-12)


def test_slice_summary_equals_summarize_on_subset():
    stats = data(5, 1000)
    mask = np.zeros(1000, dtype=bool)
    mask[::3] = True
    sl = slice_summary(stats, mask, n_bootstrap=100, seed=1)
    full = summarize(stats.subset(mask), n_bootstrap=100, seed=1)
    assert sl["n_items"] == full["overall"]["n_items"] == mask.sum()
    assert sl["krippendorff_alpha"] == full["overall"]["krippendorff_alpha"]
    assert sl["krippendorff_alpha_ci"] == full["overall"]["krippendorff_alpha_ci"]
    assert sl["hlp"]["value"] == full["hlp"]["value"]
    empty = slice_summary(stats, np.zeros(1000, dtype=bool), n_bootstrap=10)
    assert empty["krippendorff_alpha"] is None
    assert empty["reasons"]["krippendorff_alpha"] == "no item in the slice"


def test_no_bootstrap_gives_null_ci_with_reason():
    ov = summarize(data(6, 100), n_bootstrap=0)["overall"]
    assert ov["krippendorff_alpha_ci"] is None
    assert "n_bootstrap=0" in ov["reasons"]["krippendorff_alpha_ci"]
