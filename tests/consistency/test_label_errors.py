"""Suspected label errors: a confident model against the final label where the humans
split become ``label_error`` flags, ranked by score -- figures worked by hand."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from consistency import model_runs, runs
from consistency.metrics import error_analysis as ea
from consistency.models import Flag, FlagKind, FlagStatus, RunStatus
from labeling import services as labeling_services
from labeling.models import Item, PayloadKind, Role
from review import selectors as review_selectors

pytestmark = pytest.mark.django_db

# item: (three human labels, model prediction, confidence). Majority consensus is the
# final label.
#   per-class thresholds (mean confidence of the model's predictions of the class):
#     dent      s1 .95, u1 .99, lo .50, a2 .70 -> 3.14 / 4 = 0.785
#     scratch   s2 .90, a1 .80               -> 1.70 / 2 = 0.85
#   s1: final scratch (2 of 3), model dent .95 >= .785, split -> score .95 x 1/3 = 0.31667
#   s2: final dent (2 of 3), model scratch .90 >= .85, split  -> score .90 x 1/3 = 0.3
#   u1: unanimous scratch, model dent .99: not flagged (humans agree)
#   lo: split, model dent .50 < .785: not flagged (not confident)
#   a1, a2: the model agrees with the final label
LABELS = {
    "s1": (("scratch", "scratch", "dent"), "dent", 0.95),
    "s2": (("dent", "dent", "scratch"), "scratch", 0.90),
    "u1": (("scratch", "scratch", "scratch"), "dent", 0.99),
    "lo": (("scratch", "scratch", "dent"), "dent", 0.50),
    "a1": (("scratch", "scratch", "scratch"), "scratch", 0.80),
    "a2": (("dent", "dent", "dent"), "dent", 0.70),
}
PREDICTIONS = [
    {"item": ext, "value": value, "confidence": conf} for ext, (_, value, conf) in LABELS.items()
]


@pytest.fixture
def labelled(project, manager, labelers):
    for external_id, (values, _, _) in LABELS.items():
        item = Item.objects.create(
            project=project, external_id=external_id, kind=PayloadKind.TEXT, text=external_id
        )
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=value)
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 0}, created_by=manager)
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def label_error_flags(project):
    return list(
        Flag.objects.filter(project=project, kind=FlagKind.LABEL_ERROR).order_by("-impact", "id")
    )


def test_pure_scoring_hand_worked():
    # codes: 0 scratch, 1 dent; items 1..6 = s1, s2, u1, lo, a1, a2
    out = ea.label_errors(
        [1, 2, 3, 4, 5, 6],
        [1, 0, 1, 1, 0, 1],
        [0.95, 0.90, 0.99, 0.50, 0.80, 0.70],
        [1, 2, 3, 4, 5, 6],
        [0, 1, 0, 0, 0, 1],
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6],
        [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1],
        n_classes=2,
    )
    assert out["thresholds"] == pytest.approx([0.85, 0.785])
    assert [e["item"] for e in out["errors"]] == [1, 2]
    assert [e["score"] for e in out["errors"]] == pytest.approx([0.95 / 3, 0.9 / 3])
    assert [e["human_agreement"] for e in out["errors"]] == pytest.approx([2 / 3, 2 / 3])


def test_pure_scoring_class_never_predicted_and_bad_confidence():
    out = ea.label_errors([1], [0], [0.9], [1], [1], [1, 1], [0, 1], n_classes=3)
    assert out["thresholds"] == [0.9, None, None]
    assert [e["item"] for e in out["errors"]] == [1]
    assert out["errors"][0]["score"] == pytest.approx(0.45)
    with pytest.raises(ValueError):
        ea.label_errors([1], [0], [1.5], [1], [1], [], [], n_classes=2)


def test_upload_flags_exactly_the_split_confident_items_in_score_order(project, manager, labelled):
    run = model_runs.upload_model_run(
        project=project, name="m1", predictions=PREDICTIONS, created_by=manager
    )
    flags = label_error_flags(project)
    assert [f.items.get().external_id for f in flags] == ["s1", "s2"]
    assert [f.impact for f in flags] == pytest.approx([0.95 / 3, 0.9 / 3])
    first = flags[0]
    assert first.run_id == labelled.pk
    assert first.status == FlagStatus.OPEN
    assert first.evidence["model_run"] == run.pk
    assert first.evidence["predicted"] == "dent"
    assert first.evidence["final_label"] == "scratch"
    assert first.evidence["threshold"] == pytest.approx(0.785)
    assert sorted(c.key for c in first.classes.all()) == ["dent", "scratch"]

    analysis = model_runs.error_analysis(run)
    rows = analysis["label_errors"]
    assert [(r["external_id"], r["final_label"], r["predicted"]) for r in rows] == [
        ("s1", "scratch", "dent"),
        ("s2", "dent", "scratch"),
    ]
    assert [r["score"] for r in rows] == pytest.approx([0.95 / 3, 0.3])
    assert [r["flag"] for r in rows] == [f.pk for f in flags]

    # the review queue lists them, highest score first among the label errors
    queue = list(review_selectors.flag_queue(project, kind=FlagKind.LABEL_ERROR))
    assert [f.pk for f in queue] == [f.pk for f in flags]
    assert {f.pk for f in flags} <= {f.pk for f in review_selectors.flag_queue(project)}


def test_uploading_again_does_not_duplicate_and_agreement_rerun_keeps_them(
    project, manager, labelled
):
    for name in ("m1", "m1"):
        model_runs.upload_model_run(
            project=project, name=name, predictions=PREDICTIONS, created_by=manager
        )
    assert len(label_error_flags(project)) == 2
    # a new agreement run replaces its own open flags, not the model run's
    again = runs.start_agreement_run(project=project, params={"n_bootstrap": 0}, created_by=manager)
    runs.execute_agreement_run(again.pk)
    kept = label_error_flags(project)
    assert len(kept) == 2
    # flag history supersedes the older run's detection flags, never the model run's
    assert {f.status for f in kept} == {FlagStatus.OPEN}


def test_without_confidences_no_flags_and_a_reason(project, manager, labelled):
    run = model_runs.upload_model_run(
        project=project,
        name="no-conf",
        predictions=[{"item": p["item"], "value": p["value"]} for p in PREDICTIONS],
        created_by=manager,
    )
    assert label_error_flags(project) == []
    analysis = model_runs.error_analysis(run)
    assert analysis["label_errors"] == []
    assert "confidence" in analysis["reasons"]["label_errors"]


def test_payload_and_pages(project, manager, labelled, make_user):
    sme = make_user("sme-le")
    labeling_services.set_membership(project=project, user=sme, role=Role.SME)
    client = APIClient()
    client.force_authenticate(sme)
    created = client.post(
        f"/api/v1/projects/{project.pk}/model-runs/",
        {"name": "api", "predictions": PREDICTIONS},
        format="json",
        secure=True,
    )
    assert created.status_code == 201, created.json()
    rows = created.json()["error_analysis"]["label_errors"]
    assert [r["external_id"] for r in rows] == ["s1", "s2"]
    assert set(rows[0]) == {
        "item",
        "external_id",
        "final_label",
        "final_source",
        "predicted",
        "confidence",
        "human_agreement",
        "score",
        "flag",
    }
    flag = label_error_flags(project)[0]

    client.force_login(sme)
    page = client.get(reverse("review-flag", args=[flag.pk]), secure=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert "s1" in html and "Suspected label error" in html

    run_page = client.get(
        reverse("model-run-page", args=[created.json()["id"]]), secure=True
    ).content.decode()
    assert reverse("review-flag", args=[flag.pk]) in run_page
