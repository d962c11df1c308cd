"""Box agreement core (consistency.metrics.boxes): hand-worked IoU, matching, F1 and
consensus; alpha from sufficient statistics against the krippendorff package; planted
conventions; AP@0.5 against pycocotools."""

from __future__ import annotations

import contextlib
import io

import krippendorff
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from consistency.metrics import boxes as bx
from tests.consistency.box_synth import JITTER_ONLY, synthetic_labels


def box(x, y, w, h, cls="scratch", **extra):
    return {"class": cls, "x": x, "y": y, "w": w, "h": h, **extra}


# ------------------------------------------------------------------ IoU and matching
def test_iou_on_hand_worked_boxes():
    m = bx.iou_matrix([[0, 0, 2, 2]], [[1, 0, 2, 2], [0, 0, 2, 2], [5, 5, 1, 1], [0.5, 0.5, 1, 1]])
    # overlap 1x2 = 2 of union 4 + 4 - 2 = 6; identical; disjoint; inside: 1 of 4
    assert m[0].tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.25])
    assert bx.iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_matching_is_optimal_not_greedy():
    # Greedy would take the 0.9 pair and leave 0.3 (below 0.5): one match. The optimal
    # one-to-one assignment pairs a0-b1 and a1-b0 at 0.6 each: two matches.
    ious = np.array([[0.9, 0.6], [0.6, 0.3]])
    match = bx.match_boxes(np.zeros((2, 4)) + 1, np.zeros((2, 4)) + 1, 0.5, ious=ious)
    assert match.i.tolist() == [0, 1]
    assert match.j.tolist() == [1, 0]
    assert match.iou.tolist() == [0.6, 0.6]


def test_matching_prefers_higher_iou_among_equal_counts():
    ious = np.array([[0.7, 0.8], [0.0, 0.0]])
    match = bx.match_boxes(np.ones((2, 4)), np.ones((2, 4)), 0.5, ious=ious)
    assert (match.i.tolist(), match.j.tolist()) == ([0], [1])


def test_f1_on_hand_worked_items():
    a = [box(0, 0, 10, 10), box(20, 0, 10, 10)]
    b = [box(1, 0, 10, 10), box(20, 1, 10, 10), box(50, 50, 5, 5)]
    s = bx.pair_score(a, b, 0.5)
    # two matches: IoU 90/110 each; precision 2/2, recall 2/3, F1 4/5
    assert (s.tp, s.precision, s.recall, s.f1) == (2, 1.0, pytest.approx(2 / 3), 0.8)
    assert s.mean_iou == pytest.approx(90 / 110)


def test_f1_with_empty_annotations():
    both = bx.pair_score([], [])
    assert (both.f1, both.precision, both.recall, both.mean_iou) == (1.0, None, None, None)
    only_b = bx.pair_score([], [box(0, 0, 5, 5), box(10, 10, 5, 5)])
    assert (only_b.f1, only_b.precision, only_b.recall) == (0.0, None, 0.0)
    only_a = bx.pair_score([box(0, 0, 5, 5)], [])
    assert (only_a.f1, only_a.precision, only_a.recall) == (0.0, 0.0, None)


def test_threshold_decides_a_match():
    a, b = [box(0, 0, 2, 2)], [box(1, 0, 2, 2)]  # IoU 1/3
    assert bx.pair_score(a, b, 0.5).f1 == 0.0
    assert bx.pair_score(a, b, 0.3).f1 == 1.0


def test_class_aware_scoring_never_matches_across_classes():
    a, b = [box(0, 0, 10, 10, "dent")], [box(0, 0, 10, 10, "scratch")]
    assert bx.pair_score(a, b).f1 == 1.0
    assert bx.pair_score(a, b, by_class=True).f1 == 0.0


# ------------------------------------------------------------------ consensus
def test_consensus_boxes_on_a_hand_built_item():
    labels = {
        "a": [box(0, 0, 10, 10, "scratch"), box(100, 100, 20, 20), box(300, 0, 8, 8)],
        "b": [box(2, 0, 10, 10, "scratch"), box(101, 100, 20, 20)],
        "c": [box(1, 0, 10, 10, "dent")],
    }
    out = bx.consensus_boxes(labels, threshold=0.5)
    assert out["quorum"] == 2 and out["n_labelers"] == 3
    kept = sorted(out["boxes"], key=lambda b: b["x"])
    # object 1: all three, corners averaged: x1 = (0+2+1)/3 = 1, x2 = (10+12+11)/3 = 11
    assert kept[0] == {
        "class": "scratch",
        "x": 1.0,
        "y": 0.0,
        "w": 10.0,
        "h": 10.0,
        "support": 3,
        "class_votes": {"scratch": 2, "dent": 1},
    }
    # object 2: a and b -> kept (2 of 3); object 3: a alone -> dropped
    assert kept[1]["x"] == 100.5 and kept[1]["support"] == 2
    assert [d["x"] for d in out["dropped"]] == [300.0]
    assert out["status"] == "disputed"

    strict = bx.consensus_boxes(labels, threshold=0.5, quorum=3)
    assert [b["support"] for b in strict["boxes"]] == [3]
    weighted = bx.consensus_boxes(labels, threshold=0.5, weights={"a": 1, "b": 3, "c": 0})
    # weights 1, 3, ~0: x1 = (0*1 + 2*3) / 4 = 1.5
    assert sorted(b["x"] for b in weighted["boxes"])[0] == 1.5


def test_consensus_of_nothing_there_is_agreed_and_empty():
    out = bx.consensus_boxes({"a": [], "b": [], "c": [box(0, 0, 5, 5)]})
    assert out["boxes"] == [] and out["status"] == "disputed"
    out = bx.consensus_boxes({"a": [], "b": []})
    assert out == {"boxes": [], "dropped": [], "n_labelers": 2, "quorum": 2, "status": "agreed"}


# ------------------------------------------------------------------ alpha
def test_interval_and_nominal_alpha_equal_the_krippendorff_package():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 5, size=(4, 30)).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    units = [[v for v in data[:, u] if not np.isnan(v)] for u in range(data.shape[1])]
    parts = bx.interval_alpha_parts(units).sum(axis=0)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert float(bx.interval_alpha(parts)) == pytest.approx(expected, abs=1e-12)
    nominal = bx.nominal_alpha_parts([[int(v) for v in u] for u in units], 5).sum(axis=0)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert float(bx.nominal_alpha(nominal)) == pytest.approx(expected, abs=1e-12)


def test_run_figures_on_a_hand_worked_project():
    labels = {
        "i1": {"a": [box(0, 0, 10, 10)], "b": [box(0, 0, 10, 10)]},  # F1 1, IoU 1
        "i2": {"a": [], "b": []},  # both empty: F1 1
        "i3": {"a": [box(0, 0, 10, 10)], "b": []},  # F1 0
        "i4": {"a": [box(0, 0, 10, 10), box(50, 50, 10, 10)], "b": [box(0, 0, 10, 8)]},
    }
    agreement = bx.BoxAgreement(labels, classes=["scratch"], threshold=0.5)
    s = agreement.summary(n_bootstrap=0)
    # i4: one match at IoU 80/100, F1 2/3; mean F1 = (1 + 1 + 0 + 2/3) / 4
    assert s["box_f1"] == pytest.approx((2 + 2 / 3) / 4, abs=1e-6)
    assert s["box_mean_iou"] == pytest.approx((1 + 0.8) / 2, abs=1e-6)
    counts = np.array([[1, 0, 1, 2], [1, 0, 0, 1]], dtype=float)
    expected = krippendorff.alpha(reliability_data=counts, level_of_measurement="interval")
    assert s["count_alpha"] == pytest.approx(expected, abs=1e-6)
    assert s["box_f1_ci"] is None and "box_f1_ci" in s["reasons"]
    a, b = agreement.per_labeler(n_bootstrap=0)
    assert a["precision"] == pytest.approx(2 / 4) and a["recall"] == pytest.approx(2 / 2)
    assert b["precision"] == pytest.approx(2 / 2) and b["recall"] == pytest.approx(2 / 4)


# ------------------------------------------------------------------ conventions
@pytest.fixture(scope="module")
def planted():
    labels, _ = synthetic_labels(n_items=60, seed=1)
    agreement = bx.BoxAgreement(labels, classes=["scratch", "dent"], threshold=0.5)
    per_labeler = agreement.per_labeler(n_bootstrap=300, seed=0)
    return agreement, per_labeler, bx.box_conventions(agreement, per_labeler)


def test_group_boxer_is_flagged_and_no_one_else_for_grouping(planted):
    _, _, found = planted
    groups = [f for f in found if f["convention"] == "group"]
    assert [f["labeler"] for f in groups] == ["dan"]
    # every example item holds one of the planted clusters (every third item)
    assert groups[0]["items"] and all(int(i[1:]) % 3 == 0 for i in groups[0]["items"])


def test_loose_and_tight_labelers_are_flagged_with_their_size_ratio(planted):
    _, per_labeler, found = planted
    sizes = {f["labeler"]: f for f in found if f["convention"] in ("loose", "tight")}
    assert sorted(sizes) == ["cat", "fay"]
    assert sizes["cat"]["convention"] == "loose" and sizes["fay"]["convention"] == "tight"
    ratio = {e["labeler"]: e for e in per_labeler}
    # planted area ratios: 1.25^2 and 0.8^2, recovered within a few percent
    assert ratio["cat"]["size_ratio"] == pytest.approx(1.5625, rel=0.03)
    assert ratio["fay"]["size_ratio"] == pytest.approx(0.64, rel=0.03)
    assert ratio["cat"]["size_ratio_ci"][0] > 1.4 and ratio["fay"]["size_ratio_ci"][1] < 0.7


def test_jitter_only_labelers_raise_no_convention(planted):
    _, per_labeler, found = planted
    assert not [f for f in found if f["labeler"] in JITTER_ONLY]
    for e in per_labeler:
        if e["labeler"] in JITTER_ONLY:
            low, high = e["size_ratio_ci"]
            assert 0.95 < low <= high < 1.05
            assert e["group_box_rate"] == 0.0


def test_item_disagreement_ranks_the_grouped_clusters_first(planted):
    agreement, _, _ = planted
    top = agreement.item_disagreement()[:5]
    assert all(int(e["item"][1:]) % 3 == 0 and e["count_range"] == 2 for e in top)


def test_sizes_need_three_labelers():
    labels, _ = synthetic_labels(n_items=10, labelers=("ann", "cat"))
    agreement = bx.BoxAgreement(labels, classes=["scratch", "dent"])
    entries = agreement.per_labeler(n_bootstrap=50)
    assert all(e["size_ratio"] is None and "three" in e["reasons"]["size_ratio"] for e in entries)


# ------------------------------------------------------------------ AP vs pycocotools
def _coco_ap(ground_truth, predictions, classes):
    images = sorted(ground_truth)
    image_id = {k: n + 1 for n, k in enumerate(images)}
    cat_id = {c: n + 1 for n, c in enumerate(classes)}
    annotations = []
    for k in images:
        for b in ground_truth[k]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id[k],
                    "category_id": cat_id[b["class"]],
                    "bbox": [b["x"], b["y"], b["w"], b["h"]],
                    "area": b["w"] * b["h"],
                    "iscrowd": 0,
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in image_id.values()],
        "annotations": annotations,
        "categories": [{"id": i, "name": c} for c, i in cat_id.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(
            [
                {
                    "image_id": image_id[k],
                    "category_id": cat_id[b["class"]],
                    "bbox": [b["x"], b["y"], b["w"], b["h"]],
                    "score": b["score"],
                }
                for k in images
                for b in predictions.get(k, [])
            ]
        )
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][0, :, :, 0, 2]  # IoU 0.5, all recalls, area all, 100 dets
    per_class = {
        c: float(precision[:, cat_id[c] - 1].mean())
        for c in classes
        if (precision[:, cat_id[c] - 1] > -1).all()
    }
    return float(ev.stats[1]), per_class


def _model_run(seed):
    """A synthetic model: finds most true boxes (jittered), misses some, adds false ones,
    confuses a class now and then; scores higher for the good boxes, with overlap."""
    rng = np.random.default_rng(seed)
    _, truth = synthetic_labels(n_items=40, seed=seed)
    predictions = {}
    for k, boxes in truth.items():
        out = []
        for b in boxes:
            if rng.random() < 0.15:
                continue  # missed
            j = rng.normal(0, 6, 4)
            cls = (
                b["class"]
                if rng.random() > 0.1
                else ("dent" if b["class"] == "scratch" else "scratch")
            )
            out.append(
                box(
                    b["x"] + j[0],
                    b["y"] + j[1],
                    max(b["w"] + j[2], 5),
                    max(b["h"] + j[3], 5),
                    cls,
                    score=float(rng.uniform(0.3, 1.0)),
                )
            )
            if rng.random() < 0.1:  # a duplicate detection of the same object
                out.append(
                    box(
                        b["x"] + 2,
                        b["y"] + 2,
                        b["w"],
                        b["h"],
                        cls,
                        score=float(rng.uniform(0, 0.6)),
                    )
                )
        for _ in range(int(rng.poisson(0.5))):
            out.append(
                box(
                    *rng.uniform(0, 600, 2),
                    *rng.uniform(20, 100, 2),
                    "scratch",
                    score=float(rng.uniform(0, 0.7)),
                )
            )
        predictions[k] = out
    truth["empty"] = []
    predictions["empty"] = [box(10, 10, 30, 30, "dent", score=0.95)]
    return truth, predictions


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_ap50_equals_pycocotools(seed):
    truth, predictions = _model_run(seed)
    expected, expected_per_class = _coco_ap(truth, predictions, ["scratch", "dent"])
    got = bx.average_precision(truth, predictions, iou_threshold=0.5)
    assert got["ap"] == pytest.approx(expected, abs=1e-6)
    assert got["per_class"] == pytest.approx(expected_per_class, abs=1e-6)
    assert 0.3 < got["ap"] < 0.95  # a model with real errors, not a degenerate case


def test_ap_without_ground_truth_is_null_with_a_reason():
    got = bx.average_precision({"a": []}, {"a": [box(0, 0, 5, 5, score=0.9)]})
    assert got["ap"] is None and got["reasons"]["ap"]


def test_detection_scores_on_a_hand_worked_case():
    truth = {"a": [box(0, 0, 10, 10), box(50, 50, 10, 10)], "b": []}
    preds = {
        "a": [box(0, 0, 10, 10, score=0.9), box(50, 50, 10, 10, "dent", score=0.8)],
        "b": [box(0, 0, 4, 4, score=0.2)],
    }
    s = bx.detection_scores(truth, preds, score_threshold=0.5)
    # a: 1 match of 2 predicted / 2 true (the dent is the wrong class); b: nothing above 0.5
    assert (s["precision"], s["recall"]) == (0.5, 0.5)
    assert s["box_f1"] == pytest.approx((0.5 + 1.0) / 2)


def test_a_labeler_who_skips_small_objects_is_flagged_for_recall_by_size():
    labels, _ = synthetic_labels(n_items=45, seed=2, labelers=("ann", "bob", "eve", "gus"))
    agreement = bx.BoxAgreement(labels, classes=["scratch", "dent"])
    per_labeler = agreement.per_labeler(n_bootstrap=100)
    found = bx.box_conventions(agreement, per_labeler)
    assert [(f["labeler"], f["convention"]) for f in found] == [("gus", "misses_small")]
    gus = next(e for e in per_labeler if e["labeler"] == "gus")
    assert gus["recall_by_size"]["small"]["recall"] < 0.5
    assert gus["recall_by_size"]["large"]["recall"] == 1.0


def test_hlp_uses_ground_truth_and_leaves_the_ground_truth_labeler_out():
    truth = [box(0, 0, 10, 10), box(50, 50, 10, 10)]
    labels = {
        "i1": {"a": truth, "b": truth[:1], "c": truth},
        "i2": {"a": [], "b": [], "c": [box(0, 0, 5, 5)]},
    }
    gold = {"i1": truth, "i2": []}
    agreement = bx.BoxAgreement(labels, classes=["scratch"], gold=gold, gold_labeler={"i1": "a"})
    hlp = agreement.summary(n_bootstrap=0)["hlp"]
    # scored against gold: i1 b (F1 2/3), c (1); i2 a (1), b (1), c (0) -- a left out on i1
    assert hlp["method"] == "gold"
    assert hlp["value"] == pytest.approx((2 / 3 + 1 + 1 + 1 + 0) / 5, abs=1e-6)
    assert hlp["gold"]["n_items"] == 2
    by_name = {e["labeler"]: e for e in agreement.per_labeler(n_bootstrap=0)}
    assert by_name["a"]["hlp_f1"] == 1.0 and by_name["a"]["hlp_method"] == "gold"
    assert by_name["b"]["hlp_f1"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)
