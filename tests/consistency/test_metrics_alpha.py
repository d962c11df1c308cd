"""Krippendorff's alpha and mergeable statistics, checked against the krippendorff package."""

import doctest
import math

import krippendorff
import numpy as np
import pandas as pd
import pytest

import consistency.metrics.alpha as alpha_mod
import consistency.metrics.table as table_mod
from consistency.metrics import AgreementStats, LabelTable, krippendorff_alpha, summarize

LEVELS = ("nominal", "ordinal", "interval", "ratio")
NAN = np.nan

# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", 4 coders x 12 units.
PUBLISHED = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
PUBLISHED_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}


def to_long(matrix):
    """labelers x items matrix with NaN -> (items, labelers, values) long arrays."""
    data = np.asarray(matrix, dtype=float)
    labeler, item = np.nonzero(~np.isnan(data))
    return item, labeler, data[labeler, item]


def random_matrix(rng, *, n_labelers, n_items, n_values, p_missing, real=False):
    if real:
        data = np.round(rng.normal(10, 3, (n_labelers, n_items)), 2)
    else:
        data = rng.integers(1, n_values + 1, (n_labelers, n_items)).astype(float)
    data[rng.random(data.shape) < p_missing] = NAN
    return data


def test_doctests_hold_published_values():
    for mod in (alpha_mod, table_mod):
        result = doctest.testmod(mod)
        assert result.failed == 0, mod.__name__
        assert result.attempted > 0


@pytest.mark.parametrize("level", LEVELS)
def test_published_example(level):
    item, _, values = to_long(PUBLISHED)
    ours = krippendorff_alpha(item, values, level=level)
    ref = krippendorff.alpha(reliability_data=PUBLISHED, level_of_measurement=level)
    assert round(ours, 3) == PUBLISHED_ALPHA[level]
    assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(12))
def test_equals_krippendorff_package_with_missing_values(level, seed):
    rng = np.random.default_rng(seed)
    data = random_matrix(
        rng,
        n_labelers=int(rng.integers(2, 9)),
        n_items=int(rng.integers(5, 200)),
        n_values=int(rng.integers(2, 8)),
        p_missing=float(rng.uniform(0, 0.6)),
    )
    item, labeler, values = to_long(data)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    ours = krippendorff_alpha(item, values, level=level)
    assert ours == pytest.approx(ref, abs=1e-9)
    # the same through the sufficient statistics + summarize
    if level in ("nominal", "ordinal"):
        vals = values.astype(np.int64) - 1
        stats = AgreementStats.from_labels(item, labeler, vals, level=level, n_classes=7)
    else:
        stats = AgreementStats.from_labels(item, labeler, values, level=level)
    res = summarize(stats, n_bootstrap=0)
    assert res["overall"]["krippendorff_alpha"] == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("level", ["interval", "ratio"])
def test_real_values_with_many_distinct_values(level):
    rng = np.random.default_rng(7)
    data = random_matrix(rng, n_labelers=5, n_items=120, n_values=0, p_missing=0.3, real=True)
    item, _, values = to_long(data)
    assert np.unique(values).size > 300
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(item, values, level=level) == pytest.approx(ref, abs=1e-9)


def test_codes_with_value_metric_points():
    item, _, values = to_long(PUBLISHED)
    points = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    codes = values.astype(np.int64) - 1
    got = krippendorff_alpha(item, codes, level="interval", value_metric_points=points)
    assert round(got, 3) == 0.849


def test_perfect_agreement_is_one():
    assert krippendorff_alpha([0, 0, 0, 1, 1, 1], [0, 0, 0, 2, 2, 2]) == 1.0
    assert krippendorff_alpha([0, 0, 1, 1], [1.5, 1.5, 3.0, 3.0], level="interval") == 1.0


def test_two_by_two_by_hand():
    # Items A: (0, 1), B: (1, 1), C: (0, 0), two coders.
    # Coincidences: o_01 = o_10 = 1 (from A), o_11 = 2 (B), o_00 = 2 (C).
    # n_0 = 3, n_1 = 3, n = 6.  D_o = (o_01 + o_10) / n = 2/6.
    # D_e = 2 n_0 n_1 / (n (n - 1)) = 18/30.  alpha = 1 - (1/3) / (3/5) = 4/9.
    got = krippendorff_alpha([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 0])
    assert got == pytest.approx(4 / 9, abs=1e-15)


def test_one_item_single_value_is_undefined():
    # one item, values (0, 1): o_01 = o_10 = 1, n_0 = n_1 = 1, n = 2:
    # D_o = 2/2 = 1, D_e = 2*1*1/(2*1) = 1 -> alpha = 0 (the krippendorff package agrees)
    assert krippendorff_alpha([5, 5], [0, 1]) == 0.0
    assert krippendorff.alpha([[0], [1]], level_of_measurement="nominal") == 0.0
    assert krippendorff_alpha([5, 5], [1, 1]) is None


def test_one_labeler_gives_none_with_reason():
    stats = AgreementStats.from_labels([0, 1, 2], [0, 0, 0], [0, 1, 0], level="nominal")
    res = summarize(stats, n_bootstrap=10)
    ov = res["overall"]
    assert ov["krippendorff_alpha"] is None
    assert "one labeler" in ov["reasons"]["krippendorff_alpha"]
    assert ov["krippendorff_alpha_ci"] is None
    assert ov["fleiss_kappa"] is None and "fleiss_kappa" in ov["reasons"]
    assert ov["mean_pairwise_cohen_kappa"] is None
    assert res["hlp"]["value"] is None and res["hlp"]["reasons"]


def test_single_class_gives_none_with_reason():
    stats = AgreementStats.from_labels(
        [0, 0, 1, 1], [0, 1, 0, 1], [2, 2, 2, 2], level="nominal", n_classes=3
    )
    res = summarize(stats, classes=["a", "b", "c"], n_bootstrap=10)
    ov = res["overall"]
    assert ov["krippendorff_alpha"] is None
    assert ov["reasons"]["krippendorff_alpha"] == (
        "only one value used: expected disagreement is 0"
    )
    assert ov["percent_agreement"] == 1.0
    assert res["hlp"]["value"] == 1.0
    assert res["per_class"][0]["krippendorff_alpha"] is None
    assert res["per_class"][0]["reasons"]["krippendorff_alpha"]


def test_no_item_with_two_labels():
    stats = AgreementStats.from_labels([0, 1, 2], [0, 1, 2], [0, 1, 0], level="nominal")
    ov = summarize(stats, n_bootstrap=0)["overall"]
    assert ov["krippendorff_alpha"] is None
    assert "two or more labels" in ov["reasons"]["krippendorff_alpha"]


def test_duplicate_item_labeler_raises():
    with pytest.raises(ValueError, match="duplicate"):
        AgreementStats.from_labels([0, 0], [1, 1], [0, 1], level="nominal")


def test_bad_level_and_shapes_raise():
    with pytest.raises(ValueError):
        krippendorff_alpha([0, 1], [0, 1], level="cardinal")
    with pytest.raises(ValueError):
        krippendorff_alpha([0, 1, 2], [0, 1], level="nominal")
    with pytest.raises(ValueError):
        krippendorff_alpha([0, 0], [0.5, 1.0], level="nominal")


def _chunks(rng, n_items, n_chunks):
    assign = rng.integers(0, n_chunks, n_items)
    return [np.flatnonzero(assign == c) for c in range(n_chunks)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(4))
def test_chunked_merge_is_identical_to_single_pass(level, seed):
    """Chunks partition the items; the merged statistics hold the very arrays of a single
    pass, so the full results dict (bootstrap included) compares equal with ==."""
    rng = np.random.default_rng(100 + seed)
    n_items, n_labelers = 400, 12
    m = rng.integers(1, 6, n_items)
    items = np.repeat(np.arange(n_items), m)
    labelers = np.concatenate([rng.choice(n_labelers, k, replace=False) for k in m])
    truth = rng.integers(0, 5, n_items)
    noisy = rng.random(items.size) < 0.3
    codes = np.where(noisy, rng.integers(0, 5, items.size), truth[items])
    if level in ("nominal", "ordinal"):
        values, kw = codes, {"n_classes": 5}
    else:
        values, kw = codes * 1.7 + rng.normal(0, 0.01, items.size).round(2) + 1.0, {}
    perm = rng.permutation(items.size)  # arbitrary row order
    items, labelers, values = items[perm], labelers[perm], values[perm]
    single = AgreementStats.from_labels(items, labelers, values, level=level, **kw)
    parts = _chunks(rng, n_items, int(rng.integers(3, 8)))
    merged = None
    for part in parts:
        rows = np.isin(items, part)
        st = AgreementStats.from_labels(
            items[rows], labelers[rows], values[rows], level=level, n_labelers=n_labelers, **kw
        )
        merged = st if merged is None else merged + st
    for name in ("item", "labeler", "value", "value_points", "pair_a", "pair_b", "pair_n"):
        assert np.array_equal(getattr(single, name), getattr(merged, name)), name
    gold = {int(i): int(truth[i]) for i in range(0, n_items, 7)} if kw else None
    a = summarize(single, gold=gold, n_bootstrap=50, seed=3)
    b = summarize(merged, gold=gold, n_bootstrap=50, seed=3)
    assert a == b  # exact equality, floats included


def test_merge_rejects_overlapping_chunks():
    a = AgreementStats.from_labels([0, 0], [0, 1], [0, 1], level="nominal", n_classes=2)
    b = AgreementStats.from_labels([0, 1], [2, 0], [0, 1], level="nominal", n_classes=2)
    with pytest.raises(ValueError, match="partition"):
        a.merge(b)


def test_label_table_from_frame_roundtrip():
    df = pd.DataFrame(
        {
            "item": ["u1", "u1", "u2", "u2", "u3"],
            "who": ["ann", "bob", "ann", "bob", "ann"],
            "lab": ["low", "high", "low", None, "mid"],
        }
    )
    t = LabelTable.from_frame(
        df, "item", "who", "lab", level="ordinal", classes=["low", "mid", "high"]
    )
    assert t.classes == ["low", "mid", "high"]
    assert t.values.tolist() == [0, 2, 0, 1]
    assert t.item_keys == ["u1", "u2", "u3"]
    res = summarize(t.stats(), classes=t.classes, labeler_names=t.labeler_names, n_bootstrap=0)
    assert res["overall"]["n_annotations"] == 4
    assert res["overall"]["level"] == "ordinal"
    with pytest.raises(ValueError, match="not in classes"):
        LabelTable.from_frame(df, "item", "who", "lab", classes=["low", "mid"])


def test_results_are_plain_json_types():
    import json

    rng = np.random.default_rng(1)
    items = np.repeat(np.arange(50), 3)
    labelers = np.tile([0, 1, 2], 50)
    values = rng.integers(0, 3, items.size)
    res = summarize(
        AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4),
        n_bootstrap=20,
    )
    text = json.dumps(res, allow_nan=False)
    assert "NaN" not in text

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (int, float, str, bool), type(x)
            if isinstance(x, float):
                assert math.isfinite(x)

    walk(res)
