"""Pure flag detection (no database): the demo's planted ambiguity is rediscovered, and
synthetic projects pin the rules (one labeler's habit is not a merge, drift, ties)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from consistency.detection import (
    DEFAULT_THRESHOLDS,
    LabelData,
    _Prepared,
    detect_flags,
    guess_negative_class,
)
from labeling.demo import DARK_CAMERA, IMAGE_PROJECT_SLUG, build_demo

SLICE_KEYS = ("camera", "factory", "line", "phone_model", "device")


@functools.lru_cache(maxsize=1)
def demo_image_project():
    """The demo's phone-screen project (seed 7, 320 images), built once per session."""
    return build_demo(seed=7, n_images=320).project(IMAGE_PROJECT_SLUG)


def demo_label_data() -> LabelData:
    project = demo_image_project()
    df = pd.DataFrame(
        {
            "item": [a.item for a in project.annotations],
            "labeler": [a.labeler for a in project.annotations],
            "value": [a.value for a in project.annotations],
            "t": [a.created_at for a in project.annotations],
        }
    )
    slices = {k: {it.external_id: it.metadata[k] for it in project.items} for k in SLICE_KEYS}
    return LabelData.from_frame(
        df,
        classes=[c.key for c in project.classes],
        time_col="t",
        item_slices=slices,
        borderline_class="borderline",
        class_ranks=[c.rank for c in project.classes],
    )


@pytest.fixture(scope="module")
def demo_flags():
    return detect_flags(demo_label_data())


def of_kind(flags, kind):
    return [f for f in flags if f["kind"] == kind]


# --------------------------------------------------------------------------- demo data
def test_demo_top_merge_suggestion_is_deep_vs_shallow_scratch(demo_flags):
    merges = of_kind(demo_flags, "merge_classes")
    assert merges, "no merge suggestion at all"
    assert set(merges[0]["classes"]) == {"deep_scratch", "shallow_scratch"}
    ev = merges[0]["evidence"]
    # symmetric confusion from many labelers, not one labeler's habit
    assert ev["n_labelers"] >= 3 and ev["top_labeler_share"] < 0.5
    assert ev["example_items"] and ev["labelers_pick"]


def test_demo_faint_scratches_are_flagged_borderline(demo_flags):
    faint = {it.external_id for it in demo_image_project().items if it.is_faint}
    flagged = set().union(*(set(f["items"]) for f in of_kind(demo_flags, "borderline")))
    assert len(faint & flagged) >= 0.75 * len(faint)
    top = of_kind(demo_flags, "borderline")[0]
    assert set(top["classes"][:2]) == {"no_defect", "shallow_scratch"}
    assert top["suggested_action"] == "mark_borderline"


def test_demo_careless_and_shallow_to_deep_labelers_are_flagged(demo_flags):
    by_labeler = {f["labeler"]: f for f in of_kind(demo_flags, "labeler")}
    assert "labeler5" in by_labeler  # careless: random class ~30% of the time
    assert "outlier" in by_labeler["labeler5"]["evidence"]["reasons"]
    assert "labeler6" in by_labeler  # calls shallow scratches deep
    habit = by_labeler["labeler6"]["evidence"]["habits"][0]
    assert (habit["consensus"], habit["says"]) == ("shallow_scratch", "deep_scratch")
    assert habit["rate"] >= 0.5
    # careful labelers are not flagged
    assert not {"labeler1", "labeler2", "labeler8"} & set(by_labeler)


def test_demo_dark_camera_slice_is_flagged_and_its_factory_is_not(demo_flags):
    slices = {
        (f["slice"]["key"], f["slice"]["value"]) for f in of_kind(demo_flags, "unclear_slice")
    }
    assert ("camera", DARK_CAMERA) in slices
    # penang-b / line B1 / its device are low only because they hold cam-4
    assert ("factory", "penang-b") not in slices
    assert ("line", "B1") not in slices
    flag = next(f for f in of_kind(demo_flags, "unclear_slice") if f["slice"]["value"] == "cam-4")
    ev = flag["evidence"]
    assert ev["slice"]["ci"][1] < ev["rest"]["value"]
    assert flag["suggested_action"] == "check_input"


def test_demo_flags_are_ranked_by_impact(demo_flags):
    impacts = [f["impact"] for f in demo_flags]
    assert impacts == sorted(impacts, reverse=True)


# --------------------------------------------------------------------------- synthetic
CLASSES = ["none", "a", "b", "c", "d", "borderline"]


def synthetic(
    *,
    n_items=300,
    n_labelers=6,
    seed=0,
    ab_confusion=0.35,
    habit_labeler="l5",
    habit=("c", "d", 0.9),
    faint_share=0.15,
    drift_labeler=None,
    with_borderline=True,
):
    """Planted ambiguity: a/b confused by everyone (symmetrically), c→d by one labeler
    only, faint 'a' items split between none and a, optional drift late in time."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["none", "a", "b", "c", "d"], size=n_items, p=[0.3, 0.2, 0.2, 0.15, 0.15])
    faint = rng.random(n_items) < faint_share
    truth[faint] = "a"
    labelers = [f"l{i}" for i in range(n_labelers)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n_items):
        for lab in rng.choice(labelers, size=3, replace=False):
            t = start + timedelta(hours=i)
            v = truth[i]
            if faint[i]:
                v = rng.choice(
                    ["none", "a", "borderline" if with_borderline else "a"], p=[0.45, 0.45, 0.1]
                )
            elif v in ("a", "b") and rng.random() < ab_confusion:
                v = "b" if v == "a" else "a"
            elif lab == habit_labeler and v == habit[0] and rng.random() < habit[2]:
                v = habit[1]
            elif (drift_labeler == lab and i > 0.6 * n_items and rng.random() < 0.5) or (
                rng.random() < 0.02
            ):
                v = rng.choice(["none", "a", "b", "c", "d"])
            rows.append((f"it{i:04d}", lab, v, t))
    df = pd.DataFrame(rows, columns=["item", "labeler", "value", "t"])
    classes = CLASSES if with_borderline else CLASSES[:-1]
    data = LabelData.from_frame(
        df,
        classes=classes,
        time_col="t",
        negative_class="none",
        borderline_class="borderline" if with_borderline else None,
    )
    return data, faint, df


def test_synthetic_planted_pair_is_top_merge_and_one_labelers_pair_is_not():
    data, _, _ = synthetic()
    flags = detect_flags(data)
    merges = of_kind(flags, "merge_classes")
    assert merges and set(merges[0]["classes"]) == {"a", "b"}
    assert not any(set(f["classes"]) == {"c", "d"} for f in merges)
    # ... but the labeler with the habit is flagged, with that habit as evidence
    labeler = {f["labeler"]: f for f in of_kind(flags, "labeler")}
    assert labeler["l5"]["evidence"]["habits"][0]["consensus"] == "c"
    assert labeler["l5"]["evidence"]["habits"][0]["says"] == "d"


def test_one_labeler_pair_is_confusable_enough_to_matter():
    """Guard for the test above: the c/d pair alone would pass the share threshold, so
    it is the attribution test that keeps it out."""
    data, _, _ = synthetic()
    p = _Prepared(data)
    c, d = CLASSES.index("c"), CLASSES.index("d")
    assert p.pair_share(c, d) >= DEFAULT_THRESHOLDS["merge_min_confusion_share"]
    att = p.pair_attribution(c, d)
    assert att["top_labeler"] == "l5" and att["top_labeler_share"] >= 0.5


def test_synthetic_faint_items_are_flagged_borderline():
    data, faint, _ = synthetic()
    flags = of_kind(detect_flags(data), "borderline")
    flagged = set().union(*(set(f["items"]) for f in flags))
    faint_ids = {f"it{i:04d}" for i in np.flatnonzero(faint)}
    assert len(faint_ids & flagged) >= 0.6 * len(faint_ids)


def test_without_a_borderline_class_the_suggestion_is_to_add_one():
    data, _, _ = synthetic(with_borderline=False)
    flags = of_kind(detect_flags(data), "borderline")
    assert flags and all(f["suggested_action"] == "add_borderline_class" for f in flags)
    assert flags[0]["evidence"]["has_borderline_class"] is False


def test_labeler_whose_agreement_drops_over_time_is_flagged_for_drift():
    data, _, _ = synthetic(drift_labeler="l2", n_items=600, habit=("c", "d", 0.0))
    by_labeler = {f["labeler"]: f for f in of_kind(detect_flags(data), "labeler")}
    assert "drift" in by_labeler["l2"]["evidence"]["reasons"]
    dr = by_labeler["l2"]["evidence"]["drift"]
    assert dr["late"] < dr["early"]


def test_slice_with_low_agreement_is_flagged_only_with_enough_items():
    data, _, df = synthetic(habit=("c", "d", 0.0))
    keys = data.item_keys
    # "bad" slice: relabel its items' labels at random
    rng = np.random.default_rng(3)
    bad = set(keys[:60])
    df = df.copy()
    m = df["item"].isin(bad)
    df.loc[m, "value"] = rng.choice(["none", "a", "b", "c", "d"], size=int(m.sum()))
    slices = {"camera": {k: ("cam-x" if k in bad else f"cam-{i % 3}") for i, k in enumerate(keys)}}
    data2 = LabelData.from_frame(
        df,
        classes=CLASSES,
        item_slices=slices,
        negative_class="none",
        borderline_class="borderline",
    )
    flagged = [f["slice"]["value"] for f in of_kind(detect_flags(data2), "unclear_slice")]
    assert flagged == ["cam-x"]
    strict = detect_flags(data2, {"slice_min_items": 61})
    assert not of_kind(strict, "unclear_slice")


def test_item_disagreement_hand_worked_case():
    # it1: 3-way split; it2: 2-1; it3: unanimous; it4: 1-1 tie; it5 resolved 3-way split
    rows = [
        ("it1", "x", "a"), ("it1", "y", "b"), ("it1", "z", "c"),
        ("it2", "x", "a"), ("it2", "y", "a"), ("it2", "z", "b"),
        ("it3", "x", "c"), ("it3", "y", "c"), ("it3", "z", "c"),
        ("it4", "x", "a"), ("it4", "y", "c"),
        ("it5", "x", "a"), ("it5", "y", "b"), ("it5", "z", "c"),
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["item", "labeler", "value"])
    data = LabelData.from_frame(df, classes=["a", "b", "c"], resolved_items=["it5"])
    flags = of_kind(detect_flags(data), "item_disagreement")
    by_item = {f["items"][0]: f for f in flags}
    assert set(by_item) == {"it1", "it2", "it4"}  # 2/3 = 0.667 < 0.67: a 2-1 split counts
    assert by_item["it1"]["impact"] == pytest.approx(2 / 3, abs=1e-4)
    assert by_item["it4"]["evidence"]["tie"] is True
    assert by_item["it1"]["evidence"]["entropy_bits"] == pytest.approx(np.log2(3), abs=1e-4)
    # ranked: the 3-way split first
    assert flags[0]["items"] == ["it1"]


def test_confusion_share_matches_hand_computed_coincidences():
    # items: (a,a,b), (a,b), (b,b,b) -> o_ab = 2*1/2 + 1*1/1 = 2; n_a = 3, n_b = 5
    rows = [("1", "x", "a"), ("1", "y", "a"), ("1", "z", "b"), ("2", "x", "a"), ("2", "y", "b"),
            ("3", "x", "b"), ("3", "y", "b"), ("3", "z", "b")]  # fmt: skip
    data = LabelData.from_frame(
        pd.DataFrame(rows, columns=["item", "labeler", "value"]), classes=["a", "b"]
    )
    p = _Prepared(data)
    assert p.coinc[0, 1] == pytest.approx(2.0)
    assert p.n_c.tolist() == pytest.approx([3.0, 5.0])
    assert p.pair_share(0, 1) == pytest.approx(2 * 2 / 8)
    # LOO: on item 1 z's 'b' deviates from the others' (a, a) while x's and y's 'a' face a
    # tie; on item 2 each label deviates from the single other one. Item 3 agrees.
    att = p.pair_attribution(0, 1)
    assert att["n_deviations"] == 3
    assert {k: sum(v.values()) for k, v in att["per_labeler"].items()} == {"x": 1, "y": 1, "z": 1}
    assert att["top_labeler_share"] == pytest.approx(1 / 3, abs=1e-4)


def test_thresholds_fall_back_to_defaults_and_negative_class_is_guessed():
    assert guess_negative_class(["dent", "no_defect"]) == "no_defect"
    assert guess_negative_class(["cat", "dog"]) is None
    data, _, _ = synthetic()
    assert detect_flags(data, {"merge_min_confusion_share": None}) == detect_flags(data)


def test_empty_input_gives_no_flags():
    data = LabelData(
        items=np.zeros(0, dtype=np.int64),
        labelers=np.zeros(0, dtype=np.int64),
        values=np.zeros(0, dtype=np.int64),
        classes=["a"],
        item_keys=[],
        labeler_names=[],
    )
    assert detect_flags(data) == []


def test_on_an_ordinal_scale_adjacent_grades_are_borderline_not_merge():
    data, _, df = synthetic()
    ordinal = LabelData.from_frame(
        df,
        classes=CLASSES,
        negative_class="none",
        borderline_class="borderline",
        class_ranks=[0, 1, 2, 3, 4, None],  # a and b are adjacent grades
        ordinal=True,
    )
    flags = detect_flags(ordinal)
    assert not any(set(f["classes"]) == {"a", "b"} for f in of_kind(flags, "merge_classes"))
    assert any(set(f["classes"][:2]) == {"a", "b"} for f in of_kind(flags, "borderline"))


def test_kinds_restricts_the_detectors():
    data, _, _ = synthetic()
    flags = detect_flags(data, kinds={"labeler"})
    assert flags and {f["kind"] for f in flags} == {"labeler"}
    with pytest.raises(ValueError, match="unknown flag kinds"):
        detect_flags(data, kinds={"nope"})


# --------------------------------------------------------------------------- defect view
def _defect_view_data(*, classes=("ok", "deep_scratch", "shallow_scratch", "borderline")):
    """Five labelers. f1..f6: three say ok, one deep, one shallow (who says which
    rotates); c1..c8 all ok; d1..d6 all deep_scratch; s1..s6 all shallow_scratch."""
    ok, deep, shallow = classes[:3]
    labelers = [f"l{i}" for i in range(1, 6)]
    rows = []
    for n in range(6):
        values = [ok, ok, ok, deep, shallow]
        values = values[n % 5 :] + values[: n % 5]
        rows += [(f"f{n + 1}", lab, v) for lab, v in zip(labelers, values, strict=True)]
    for prefix, value, n_items in (("c", ok, 8), ("d", deep, 6), ("s", shallow, 6)):
        rows += [(f"{prefix}{n + 1}", lab, value) for n in range(n_items) for lab in labelers]
    df = pd.DataFrame(rows, columns=["item", "labeler", "value"])
    return LabelData.from_frame(df, classes=list(classes), borderline_class=classes[3])


def test_a_split_between_no_defect_and_several_defect_classes_is_borderline():
    """Issue 15, item 3: 3 ok / 1 deep / 1 shallow is a no-defect vs defect split of
    2/5 = 0.4 >= 0.3, although no pair (ok vs deep: 1/4 = 0.25) reaches the split."""
    data = _defect_view_data()
    assert data.negative_class == "ok"
    flags = of_kind(detect_flags(data), "borderline")
    faint = {f"f{n}" for n in range(1, 7)}
    by_view = {f["evidence"].get("view"): f for f in flags}
    assert set(by_view) == {"defect"}  # the pairwise rule finds nothing here
    flag = by_view["defect"]
    assert set(flag["items"]) == faint  # clean items (c*, d*, s*) are not flagged
    assert flag["classes"] == ["ok", "deep_scratch", "shallow_scratch", "borderline"]
    assert flag["suggested_action"] == "mark_borderline"
    ev = flag["evidence"]
    assert ev["item_splits"]["f1"] == {"ok": 3, "deep_scratch": 1, "shallow_scratch": 1}
    # hand-worked: each faint item's two defect labels face the others' ok consensus
    # (3 ok of 4 others), every ok label faces ok (2 of 4): 2 deviations per item, one
    # per labeler over the rotation.
    assert ev["n_deviations"] == 12 and ev["n_labelers"] == 5
    assert ev["mean_minority_share"] == pytest.approx(0.4)
    assert flag["impact"] == pytest.approx(6 * 0.4)
    # the split goes to the SME once: not again as item disagreement
    items = of_kind(detect_flags(data), "item_disagreement")
    assert not faint & {i for f in items for i in f["items"]}


def test_without_a_no_defect_class_there_is_no_defect_view():
    data = _defect_view_data(classes=("cat", "deep_scratch", "shallow_scratch", "borderline"))
    assert data.negative_class is None
    flags = of_kind(detect_flags(data), "borderline")
    assert not any(f["evidence"].get("view") == "defect" for f in flags)


def test_one_labelers_habit_is_not_a_defect_view_split():
    """Only l1 ever says a defect where the others say ok: a habit, not borderline."""
    rows = []
    for n in range(10):
        rows += [(f"f{n}", "l1", "deep_scratch" if n % 2 else "shallow_scratch")]
        rows += [(f"f{n}", lab, "ok") for lab in ("l2", "l3")]
    data = LabelData.from_frame(
        pd.DataFrame(rows, columns=["item", "labeler", "value"]),
        classes=["ok", "deep_scratch", "shallow_scratch", "borderline"],
        borderline_class="borderline",
    )
    flags = of_kind(detect_flags(data), "borderline")
    assert not any(f["evidence"].get("view") == "defect" for f in flags)


def test_blocked_leave_one_out_and_grouped_rows_equal_the_whole_array_version(monkeypatch):
    """The leave-one-out consensus is computed in blocks of labels and labels_of reads
    rows grouped once (bounded memory and time at 10M labels): same outputs as the
    one-array computation and a scan per item, written again here."""
    from consistency import detection

    data = demo_label_data()
    monkeypatch.setattr(detection, "LOO_BLOCK", 37)  # many blocks, a ragged last one
    p = _Prepared(data)
    it, val = data.items, data.values
    others = p.counts[it].copy()
    others[np.arange(it.size), val] -= 1
    top = others.max(axis=1)
    n_top = (others == top[:, None]).sum(axis=1)
    want = np.where((top > 0) & (n_top == 1), others.argmax(axis=1), -1)
    assert it.size > 37 * 10
    np.testing.assert_array_equal(p.loo, want)
    assert p.loo.dtype == np.int32  # class codes: half the memory of int64 at 10M labels
    for code in (0, 1, p.n_items // 2, p.n_items - 1):
        rows = np.flatnonzero(data.items == code)
        assert p.labels_of(code) == [
            {
                "labeler": data.labeler_names[int(data.labelers[j])],
                "value": data.classes[int(data.values[j])],
            }
            for j in rows
        ]
