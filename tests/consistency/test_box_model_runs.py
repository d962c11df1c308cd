"""Model runs on a detection project: boxes with scores are stored, and the error
analysis reports precision, recall and AP at IoU 0.5 (equal to pycocotools) beside HLP,
overall, per slice and per tag."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from consistency import model_runs
from consistency.models import Prediction
from labeling.models import GoldLabel, GoldSource, Item, Tag
from tests.consistency.box_project import build_detection_project
from tests.consistency.test_metrics_boxes import _coco_ap, _model_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def detection(manager, make_user):
    return build_detection_project(manager, make_user, n_items=40, labelers=("ann", "bob", "cat"))


def _with_ground_truth(project, truth):
    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    GoldLabel.objects.bulk_create(
        GoldLabel(item=items[k], value_boxes=boxes, source=GoldSource.IMPORT)
        for k, boxes in truth.items()
        if k in items
    )
    return items


def test_ap50_of_a_model_run_equals_pycocotools(detection, manager):
    project, _, _, _, items = detection
    truth, predictions = _model_run(5)
    truth = {k: v for k, v in truth.items() if k in items}
    _with_ground_truth(project, truth)
    tag = Tag.objects.create(project=project, name="blurry")
    blurry = [items[k] for k in sorted(items)[:20]]
    for item in blurry:
        item.tags.add(tag)
    rows = [
        {"item": k, "value": [{**b, "x": max(b["x"], 0), "y": max(b["y"], 0)} for b in v]}
        for k, v in predictions.items()
        if k in items
    ]
    run = model_runs.upload_model_run(
        project=project, name="detector v1", predictions=rows, created_by=manager
    )
    stored = {p.item.external_id: p.value_boxes for p in Prediction.objects.filter(model_run=run)}
    assert all("score" in b for boxes in stored.values() for b in boxes)

    analysis = model_runs.error_analysis(run)
    expected, per_class = _coco_ap(truth, stored, ["scratch", "dent"])
    overall = analysis["overall"]
    assert overall["ap50"] == pytest.approx(expected, abs=1e-6)
    assert overall["ap50_per_class"] == pytest.approx(per_class, abs=1e-6)
    assert 0 < overall["precision"] <= 1 and 0 < overall["recall"] <= 1
    assert analysis["reference"]["n_gold"] == len(truth)
    # HLP beside it: the labelers against ground truth on the same items
    assert overall["hlp"] is not None and overall["hlp_method"] == "gold"
    tags = {s["value"]: s for s in analysis["slices"] if s["key"] == "tag"}
    blurry_truth = {i.external_id: truth[i.external_id] for i in blurry}
    blurry_expected, _ = _coco_ap(blurry_truth, stored, ["scratch", "dent"])
    assert tags["blurry"]["ap50"] == pytest.approx(blurry_expected, abs=1e-6)
    assert tags["blurry"]["n_items"] == 20 and tags["blurry"]["hlp"] is not None
    lines = {s["value"] for s in analysis["slices"] if s["key"] == "line"}
    assert lines == {"A", "B"}


def test_a_bad_box_prediction_is_refused_naming_the_row(detection, manager):
    project, *_ = detection
    rows = [
        {"item": "i000", "value": [{"class": "scratch", "x": 1, "y": 1, "w": 5, "h": 5}]},
        {
            "item": "i001",
            "value": [{"class": "scratch", "x": 1, "y": 1, "w": 5, "h": 5, "score": 2}],
        },
        {"item": "i002", "value": [{"class": "crack", "x": 1, "y": 1, "w": 5, "h": 5}]},
    ]
    with pytest.raises(ValidationError) as caught:
        model_runs.upload_model_run(
            project=project, name="bad", predictions=rows, created_by=manager
        )
    messages = caught.value.message_dict["predictions"]
    assert messages[0].startswith("row 2: box 1: score")
    assert messages[1].startswith("row 3: box 1: unknown class 'crack'")
    assert not Prediction.objects.exists()


def test_rest_get_of_a_detection_model_run(detection, manager, client):
    project, _, truth, _, items = detection
    _with_ground_truth(project, truth)
    rows = [{"item": k, "value": [{**b, "score": 0.9} for b in v]} for k, v in truth.items()]
    run = model_runs.upload_model_run(
        project=project, name="perfect", predictions=rows, created_by=manager
    )
    client.force_login(manager)
    body = client.get(f"/api/v1/model-runs/{run.pk}/", secure=True).json()
    overall = body["error_analysis"]["overall"]
    assert (overall["ap50"], overall["precision"], overall["recall"]) == (1.0, 1.0, 1.0)
    assert overall["model_accuracy"] == 1.0
    assert body["error_analysis"]["detection"]["iou_threshold"] == 0.5


def test_the_model_run_page_shows_ap50_beside_hlp(detection, manager):
    project, _, truth, _, items = detection
    _with_ground_truth(project, truth)
    rows = [{"item": k, "value": [{**b, "score": 0.9} for b in v]} for k, v in truth.items()]
    run = model_runs.upload_model_run(
        project=project, name="perfect", predictions=rows, created_by=manager
    )
    client = Client()
    client.force_login(manager)
    page = client.get(reverse("model-run-page", args=[run.pk]), secure=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-testid="detection-row"') == 1 + len(
        model_runs.error_analysis(run)["slices"]
    )
    assert 'data-metric="ap50">1.000<' in html
