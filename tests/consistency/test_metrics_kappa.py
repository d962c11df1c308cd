"""Kappas, per-class alpha, confusion, consensus agreement and gold accuracy in summarize()."""

import doctest

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

import consistency.metrics.kappa as kappa_mod
from consistency.metrics import AgreementStats, cohen_kappa, fleiss_kappa, summarize


def synthetic(seed, *, n_items=600, n_labelers=8, n_classes=4, per_item=(2, 5), p_noise=0.35):
    rng = np.random.default_rng(seed)
    m = rng.integers(per_item[0], per_item[1] + 1, n_items)
    items = np.repeat(np.arange(n_items), m)
    labelers = np.concatenate([rng.choice(n_labelers, k, replace=False) for k in m])
    truth = rng.integers(0, n_classes, n_items)
    noisy = rng.random(items.size) < p_noise
    values = np.where(noisy, rng.integers(0, n_classes, items.size), truth[items])
    return items, labelers, values, truth


def test_kappa_doctests():
    assert doctest.testmod(kappa_mod, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("seed", range(6))
def test_fleiss_equals_statsmodels_with_equal_counts(seed):
    items, labelers, values, _ = synthetic(seed, per_item=(4, 4))
    table = np.zeros((600, 4), dtype=int)
    np.add.at(table, (items, values), 1)
    ref = sm_fleiss(table, method="fleiss")
    assert fleiss_kappa(items, values, n_classes=4) == pytest.approx(ref, abs=1e-12)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    got = summarize(stats, n_bootstrap=0)["overall"]["fleiss_kappa"]
    assert got == pytest.approx(ref, abs=1e-12)


def test_fleiss_varying_counts_matches_per_item_definition():
    # items: (0,0,1) (1,1) (0,1,1,1)
    items = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    values = [0, 0, 1, 1, 1, 0, 1, 1, 1]
    p_i = [2 / 6, 2 / 2, 6 / 12]  # agreeing ordered pairs / m(m-1)
    pbar = np.mean(p_i)
    p0, p1 = 3 / 9, 6 / 9
    pe = p0**2 + p1**2
    assert fleiss_kappa(items, values) == pytest.approx((pbar - pe) / (1 - pe), abs=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_cohen_per_pair_equals_sklearn(seed):
    items, labelers, values, _ = synthetic(seed, n_labelers=6)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    res = summarize(stats, n_bootstrap=0)
    pw = res["pairwise"]
    lookup = {(int(i), int(j)): int(v) for i, j, v in zip(items, labelers, values, strict=True)}
    defined = []
    for a in range(6):
        for b in range(6):
            shared = sorted(i for (i, lab) in lookup if lab == a and (i, b) in lookup)
            if a == b:
                assert pw["n_shared"][a][a] == int(np.sum(labelers == a))
                assert pw["cohen_kappa"][a][a] is None
                continue
            assert pw["n_shared"][a][b] == len(shared)
            x = [lookup[(i, a)] for i in shared]
            y = [lookup[(i, b)] for i in shared]
            ref = cohen_kappa_score(x, y)
            assert pw["cohen_kappa"][a][b] == pytest.approx(ref, abs=1e-12)
            assert cohen_kappa(x, y) == pytest.approx(ref, abs=1e-12)
            if a < b:
                defined.append(ref)
    assert res["overall"]["mean_pairwise_cohen_kappa"] == pytest.approx(np.mean(defined))
    for row in res["per_labeler"]:
        a = int(row["labeler"])
        mine = [pw["cohen_kappa"][a][b] for b in range(6) if b != a]
        assert row["cohen_kappa_mean"] == pytest.approx(np.mean(mine))


def test_per_class_alpha_is_one_vs_rest_krippendorff():
    items, labelers, values, _ = synthetic(11, n_labelers=5)
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    res = summarize(stats, classes=["a", "b", "c", "d"], n_bootstrap=0)
    for c, entry in enumerate(res["per_class"]):
        data = np.full((5, 600), np.nan)
        data[labelers, items] = (values == c).astype(float)
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert entry["class"] == "abcd"[c]
        assert entry["krippendorff_alpha"] == pytest.approx(ref, abs=1e-9)
        assert entry["support"] == int(np.sum(values == c))


def test_confusion_counts_pairs_of_labels_by_hand():
    # item 0: labelers 0,1,2 say (a, a, b); item 1: labelers 0,1 say (b, b)
    stats = AgreementStats.from_labels(
        [0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [0, 0, 1, 1, 1], level="nominal", n_classes=2
    )
    conf = summarize(stats, classes=["a", "b"], n_bootstrap=0)["confusion"]
    # ordered pairs: item 0 -> (a,a) x2, (a,b) x2, (b,a) x2; item 1 -> (b,b) x2
    assert conf["counts"] == [[2, 2], [2, 2]]
    # Krippendorff coincidences: item 0 (m=3): o_aa = 2*1/2, o_ab = o_ba = 2*1/2;
    # item 1 (m=2): o_bb = 2*1/1
    assert conf["coincidences"] == [[1.0, 1.0], [1.0, 2.0]]


def test_leave_one_out_consensus_by_hand():
    # item 0: L0=a L1=a L2=a L3=b  -> L0..L2 agree with others' majority (a,a);
    #         L3: others a,a,a -> disagree
    # item 1: L0=a L1=b            -> each sees one other label: L0 vs b disagree, L1 vs a
    # item 2: L0=a L1=b L2=c       -> others tie (b vs c etc.) -> ties
    # item 3: L0=a L1=a L2=b L3=b  -> L0: others a,b,b -> b wins -> disagree
    # item 4: L0=a                 -> no other label
    items = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4]
    labs = [0, 1, 2, 3, 0, 1, 0, 1, 2, 0, 1, 2, 3, 0]
    vals = [0, 0, 0, 1, 0, 1, 0, 1, 2, 0, 0, 1, 1, 0]
    stats = AgreementStats.from_labels(items, labs, vals, level="nominal", n_classes=3)
    rows = {r["labeler"]: r for r in summarize(stats, n_bootstrap=0)["per_labeler"]}
    # L0: agree(0), disagree(1), tie(2), disagree(3), alone(4) -> 1/3
    assert rows["0"]["agreement_with_consensus"] == pytest.approx(1 / 3)
    assert rows["0"]["consensus_ties"] == 1
    assert rows["0"]["consensus_no_other_label"] == 1
    # L3: disagree(0), disagree(3) -> 0
    assert rows["3"]["agreement_with_consensus"] == 0.0
    assert rows["3"]["n"] == 2


def test_leave_one_out_matches_brute_force():
    items, labelers, values, _ = synthetic(5, n_labelers=7, per_item=(1, 6))
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    rows = {int(r["labeler"]): r for r in summarize(stats, n_bootstrap=0)["per_labeler"]}
    agree = np.zeros(7)
    dec = np.zeros(7)
    ties = np.zeros(7)
    for i in np.unique(items):
        idx = np.flatnonzero(items == i)
        for j in idx:
            others = values[idx[idx != j]]
            if others.size == 0:
                continue
            cnt = np.bincount(others, minlength=4)
            if np.sum(cnt == cnt.max()) > 1:
                ties[labelers[j]] += 1
                continue
            dec[labelers[j]] += 1
            agree[labelers[j]] += cnt.argmax() == values[j]
    for lab in range(7):
        assert rows[lab]["agreement_with_consensus"] == pytest.approx(agree[lab] / dec[lab])
        assert rows[lab]["consensus_ties"] == ties[lab]


def test_gold_accuracy_and_gold_hlp():
    items, labelers, values, truth = synthetic(3, n_labelers=5)
    gold = {int(i): int(truth[i]) for i in range(0, 600, 3)}
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    res = summarize(stats, gold=gold, n_bootstrap=100)
    on_gold = np.isin(items, list(gold))
    correct = values == truth[items]
    for row in res["per_labeler"]:
        sel = on_gold & (labelers == int(row["labeler"]))
        assert row["accuracy_vs_gold"] == pytest.approx(correct[sel].mean())
        assert row["n_gold"] == int(sel.sum())
    hlp = res["hlp"]
    assert hlp["method"] == "gold"
    assert hlp["value"] == pytest.approx(correct[on_gold].mean())
    assert hlp["ci"][0] < hlp["value"] < hlp["ci"][1]
    no_gold = summarize(stats, n_bootstrap=0)
    assert no_gold["hlp"]["method"] == "pairwise"
    assert no_gold["hlp"]["value"] == no_gold["overall"]["percent_agreement"]
    assert no_gold["per_labeler"][0]["accuracy_vs_gold"] is None
    assert no_gold["per_labeler"][0]["reasons"]["accuracy_vs_gold"] == "no gold labels"


def test_percent_agreement_by_hand():
    # item 0 (a,a,b): 2 of 6 ordered pairs agree; item 1 (b,b): 2/2 -> mean 2/3
    stats = AgreementStats.from_labels(
        [0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [0, 0, 1, 1, 1], level="nominal", n_classes=2
    )
    ov = summarize(stats, n_bootstrap=0)["overall"]
    assert ov["percent_agreement"] == pytest.approx((2 / 6 + 1) / 2)


def test_two_conventions_are_named():
    rng = np.random.default_rng(0)
    n_items = 800
    classes = ["car", "truck", "bus", "person"]
    truth = rng.integers(0, 4, n_items)
    items = np.repeat(np.arange(n_items), 4)
    labelers = np.tile([0, 1, 2, 3], n_items)
    values = truth[items].copy()
    # labelers 2 and 3 call every truck a car
    values[(labelers >= 2) & (values == 1)] = 0
    noise = rng.random(items.size) < 0.03
    values[noise] = rng.integers(0, 4, noise.sum())
    stats = AgreementStats.from_labels(items, labelers, values, level="nominal", n_classes=4)
    res = summarize(stats, classes=classes, labeler_names=["a", "b", "c", "d"], n_bootstrap=0)
    conv = res["hlp"]["conventions"]
    assert conv and conv[0]["classes"] == ["car", "truck"]
    assert conv[0]["labelers_split"] is True
    assert conv[0]["labelers_preferring"]["car"] == ["c", "d"]
    assert conv[0]["labelers_preferring"]["truck"] == ["a", "b"]
    assert "'car' and 'truck'" in res["hlp"]["warnings"][0]
    # no convention on clean data
    clean = AgreementStats.from_labels(items, labelers, truth[items], level="nominal", n_classes=4)
    assert summarize(clean, classes=classes, n_bootstrap=0)["hlp"]["conventions"] == []


def test_interval_level_reports_categorical_metrics_as_null():
    rng = np.random.default_rng(2)
    items = np.repeat(np.arange(100), 3)
    labelers = np.tile([0, 1, 2], 100)
    values = rng.normal(0, 1, 300).round(1)
    res = summarize(AgreementStats.from_labels(items, labelers, values, level="interval"))
    ov = res["overall"]
    assert ov["krippendorff_alpha"] is not None
    assert ov["fleiss_kappa"] is None and "interval" in ov["reasons"]["fleiss_kappa"]
    assert res["confusion"]["counts"] is None
    assert res["pairwise"]["n_shared"][0][1] == 100
