"""The demo's box project: truth boxes sit on the drawn defects, and the planted
conventions are really in the labels (pure Python, no database)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labeling.boxes import normalize_boxes
from labeling.demo import BOX_PROJECT_SLUG, build_demo
from labeling.demo.boxes import GROUP_LABELER, LOOSE_LABELER, n_box_images


@pytest.fixture(scope="module")
def boxes_project():
    return build_demo(seed=5, n_images=48).project(BOX_PROJECT_SLUG)


def iou(a: dict, b: dict) -> float:
    left, top = max(a["x"], b["x"]), max(a["y"], b["y"])
    right = min(a["x"] + a["w"], b["x"] + b["w"])
    bottom = min(a["y"] + a["h"], b["y"] + b["h"])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    return inter / (a["w"] * a["h"] + b["w"] * b["h"] - inter)


def best_match(box: dict, truth: list[dict]) -> dict:
    return max(truth, key=lambda t: iou(box, t))


def test_size_and_every_label_is_a_valid_box_list(boxes_project):
    assert len(boxes_project.items) == n_box_images(48) == 48
    keys = {c.key for c in boxes_project.classes}
    for a in boxes_project.annotations:
        assert normalize_boxes(a.value, class_keys=keys, image_size=(256, 384)) == a.value
    assert any(it.boxes == [] for it in boxes_project.items)
    assert any(it.metadata["n_clusters"] for it in boxes_project.items)


def test_truth_boxes_hold_the_drawn_defects(boxes_project):
    """Inside each truth box the screen is darker or shaded than a clean screen: the
    darkest pixel of a scratch or crack box is well below the box's median."""
    checked = 0
    for item in boxes_project.items:
        pixels = np.asarray(Image.open(io.BytesIO(item.image_png)).convert("L"), dtype=float)
        for box in item.boxes:
            x0, y0 = int(box["x"]), int(box["y"])
            x1, y1 = int(np.ceil(box["x"] + box["w"])), int(np.ceil(box["y"] + box["h"]))
            patch = pixels[y0:y1, x0:x1]
            assert patch.size
            spread = np.median(patch) - patch.min()
            assert spread > 12, (item.external_id, box, spread)
            checked += 1
    assert checked > 20


def test_jittered_labelers_draw_the_truth(boxes_project):
    truth = {it.external_id: it.boxes for it in boxes_project.items}
    ious = [
        iou(box, best_match(box, truth[a.item]))
        for a in boxes_project.annotations
        if a.labeler in ("labeler1", "labeler2", "labeler6")
        for box in a.value
    ]
    # Every jittered box matches its defect at the project IoU threshold (0.5).
    assert ious and min(ious) > 0.5 and np.mean(ious) > 0.85


def test_the_loose_labeler_draws_larger_boxes(boxes_project):
    truth = {it.external_id: it.boxes for it in boxes_project.items}
    ratios = [
        (box["w"] * box["h"]) / (t["w"] * t["h"])
        for a in boxes_project.annotations
        if a.labeler == LOOSE_LABELER
        for box in a.value
        for t in [best_match(box, truth[a.item])]
    ]
    assert ratios and np.median(ratios) > 1.6
    others = [
        (box["w"] * box["h"]) / (t["w"] * t["h"])
        for a in boxes_project.annotations
        if a.labeler not in (LOOSE_LABELER, GROUP_LABELER)
        for box in a.value
        for t in [best_match(box, truth[a.item])]
    ]
    assert 0.85 < np.median(others) < 1.15


def test_the_group_labeler_boxes_a_cluster_as_one(boxes_project):
    items = {it.external_id: it for it in boxes_project.items}
    seen = 0
    for a in boxes_project.annotations:
        item = items[a.item]
        n_clusters = item.metadata["n_clusters"]
        if not n_clusters:
            continue
        n_truth = len(item.boxes)
        if a.labeler == GROUP_LABELER:
            assert len(a.value) < n_truth
            seen += 1
        else:
            assert len(a.value) == n_truth
    assert seen >= 1
