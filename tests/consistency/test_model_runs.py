"""Model runs: upload predictions, error analysis against gold / consensus beside HLP."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from consistency import model_runs
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    ModelRun,
    Prediction,
    RunStatus,
)
from labeling import services as labeling_services
from labeling.models import GoldLabel, GoldSource, Item, LabelClass, PayloadKind, Role, Tag
from provenance.models import Event

pytestmark = pytest.mark.django_db


class SecureAPIClient(APIClient):
    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        extra["secure"] = True
        return super().generic(method, path, data, content_type, **extra)


def client_for(user) -> APIClient:
    client = SecureAPIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def member(project, make_user):
    def make(role):
        user = make_user(f"{role}-user")
        labeling_services.set_membership(project=project, user=user, role=role)
        return user

    return make


def cls(project, key):
    return LabelClass.objects.get(project=project, key=key)


@pytest.fixture
def world(project, manager):
    """Four items, hand-worked:

    item  factory  tags     gold       consensus (majority)  reference
    i1    A        blurry   scratch    dent                  scratch (gold wins)
    i2    A        -        -          dent                  dent
    i3    B        blurry   no_defect  -                     no_defect
    i4    B        -        -          (disputed, no label)  none -> skipped
    """
    blurry = Tag.objects.create(project=project, name="blurry")
    items = {}
    for external_id, factory in (("i1", "A"), ("i2", "A"), ("i3", "B"), ("i4", "B")):
        items[external_id] = Item.objects.create(
            project=project,
            external_id=external_id,
            kind=PayloadKind.TEXT,
            text=external_id,
            metadata={"factory": factory},
        )
    items["i1"].tags.add(blurry)
    items["i3"].tags.add(blurry)
    GoldLabel.objects.create(
        item=items["i1"], label_class=cls(project, "scratch"), source=GoldSource.IMPORT
    )
    GoldLabel.objects.create(
        item=items["i3"], label_class=cls(project, "no_defect"), source=GoldSource.IMPORT
    )
    run = AgreementRun.objects.create(
        project=project,
        status=RunStatus.SUCCEEDED,
        finished_at=timezone.now(),
        results={
            "hlp": {"value": 0.8, "method": "gold"},
            "slices": [
                {"key": "factory", "value": "A", "n_items": 2, "hlp": 0.9, "reasons": {}},
                {
                    "key": "tag",
                    "value": "blurry",
                    "n_items": 2,
                    "hlp": None,
                    "reasons": {"hlp": "too few items"},
                },
            ],
        },
    )
    for external_id, key, state in (
        ("i1", "dent", ConsensusStatus.AGREED),
        ("i2", "dent", ConsensusStatus.AGREED),
        ("i4", None, ConsensusStatus.DISPUTED),
    ):
        Consensus.objects.create(
            run=run,
            item=items[external_id],
            method=ConsensusMethod.MAJORITY,
            label_class=cls(project, key) if key else None,
            status=state,
        )
    return {"items": items, "run": run}


PREDICTIONS = [
    {"item": "i1", "value": "scratch", "confidence": 0.9},  # correct (gold)
    {"item": "i2", "value": "scratch", "confidence": 0.6},  # wrong (consensus dent)
    {"item": "i3", "value": "no_defect"},  # correct (gold)
    {"item": "i4", "value": "dent"},  # no reference: skipped
]


def post(client, project, body):
    return client.post(f"/api/v1/projects/{project.pk}/model-runs/", body, format="json")


def entry(analysis, key, value):
    matches = [s for s in analysis["slices"] if s["key"] == key and s["value"] == value]
    assert len(matches) == 1, analysis["slices"]
    return matches[0]


def test_upload_returns_error_analysis_equal_to_a_hand_count(project, manager, world):
    response = post(client_for(manager), project, {"name": "resnet-v1", "predictions": PREDICTIONS})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "resnet-v1" and body["n_predictions"] == 4
    assert {"id", "created_at", "error_analysis"} <= set(body)
    analysis = body["error_analysis"]
    assert analysis["reference"] == {
        "agreement_run": world["run"].pk,
        "n_gold": 2,
        "n_consensus": 1,
        "n_without_reference": 1,
        "final_label_source": {"ground_truth": 2, "sme": 0, "consensus": 1},
    }
    overall = analysis["overall"]
    assert overall["n_items"] == 3
    assert overall["model_accuracy"] == pytest.approx(2 / 3)
    assert overall["hlp"] == 0.8

    a = entry(analysis, "factory", "A")
    assert (a["n_items"], a["model_accuracy"], a["hlp"]) == (2, 0.5, 0.9)
    b = entry(analysis, "factory", "B")
    assert (b["n_items"], b["model_accuracy"], b["hlp"]) == (1, 1.0, None)
    assert "hlp" in b["reasons"]
    blurry = entry(analysis, "tag", "blurry")
    assert (blurry["n_items"], blurry["model_accuracy"], blurry["hlp"]) == (2, 1.0, None)
    assert blurry["reasons"]["hlp"] == "too few items"
    untagged = entry(analysis, "tag", "(no tag)")
    assert (untagged["n_items"], untagged["model_accuracy"]) == (1, 0.0)

    run = ModelRun.objects.get(pk=body["id"])
    assert run.created_by == manager
    assert Prediction.objects.filter(model_run=run).count() == 4
    assert Prediction.objects.get(model_run=run, item=world["items"]["i1"]).confidence == 0.9
    event = Event.objects.get(verb="model_run.uploaded")
    assert event.subject_id == str(run.pk) and event.project_id == project.pk

    # The same payload is served by the list and the detail endpoints.
    listed = client_for(manager).get(f"/api/v1/projects/{project.pk}/model-runs/").json()
    assert listed["count"] == 1 and listed["results"][0]["error_analysis"] == analysis
    detail = client_for(manager).get(f"/api/v1/model-runs/{run.pk}/")
    assert detail.status_code == 200 and detail.json()["error_analysis"] == analysis


def test_empty_slice_is_null_with_a_reason(project, manager, world):
    run = model_runs.upload_model_run(
        project=project,
        name="only-a",
        predictions=[{"item": "i2", "value": "dent"}],
        created_by=manager,
    )
    analysis = model_runs.error_analysis(run)
    b = entry(analysis, "factory", "B")
    assert b["n_items"] == 0 and b["model_accuracy"] is None
    assert "model_accuracy" in b["reasons"]
    assert analysis["overall"]["model_accuracy"] == 1.0


def test_without_a_succeeded_run_hlp_is_null_and_only_gold_counts(project, manager, world):
    world["run"].status = RunStatus.FAILED
    world["run"].save()
    run = model_runs.upload_model_run(
        project=project, name="m", predictions=PREDICTIONS, created_by=manager
    )
    analysis = model_runs.error_analysis(run)
    overall = analysis["overall"]
    assert overall["n_items"] == 2 and overall["model_accuracy"] == 1.0
    assert overall["hlp"] is None and "hlp" in overall["reasons"]


def test_merged_classes_map_to_their_root(project, manager, world):
    scratch = cls(project, "scratch")
    scuff = LabelClass.objects.create(project=project, key="scuff", name="Scuff")
    scrape = LabelClass.objects.create(project=project, key="scrape", name="Scrape")
    LabelClass.objects.filter(pk=scuff.pk).update(merged_into=scratch)
    LabelClass.objects.filter(pk=scrape.pk).update(merged_into=scuff)
    run = model_runs.upload_model_run(
        project=project,
        name="merged",
        predictions=[{"item": "i1", "value": "scrape"}, {"item": "i3", "value": "scuff"}],
        created_by=manager,
    )
    analysis = model_runs.error_analysis(run)
    # i1: scrape -> scuff -> scratch == gold scratch; i3: scuff -> scratch != no_defect
    assert analysis["overall"]["n_items"] == 2
    assert analysis["overall"]["model_accuracy"] == 0.5


def test_bad_rows_are_a_400_naming_them_and_nothing_is_stored(project, manager, world):
    body = {
        "name": "broken",
        "predictions": [
            {"item": "i1", "value": "scratch"},
            {"item": "nope", "value": "scratch"},
            {"item": "i2", "value": "no_such_class"},
            {"item": "i1", "value": "dent"},
        ],
    }
    events_before = Event.objects.count()
    response = post(client_for(manager), project, body)
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert payload["detail"]
    messages = payload["errors"]["predictions"]
    assert [m.split(":")[0] for m in messages] == ["row 2", "row 3", "row 4"]
    assert "nope" in messages[0] and "no_such_class" in messages[1]
    assert "duplicate" in messages[2]
    assert ModelRun.objects.count() == 0 and Prediction.objects.count() == 0
    assert Event.objects.count() == events_before


def test_missing_name_or_empty_predictions_is_a_400(project, manager, world):
    client = client_for(manager)
    assert post(client, project, {"predictions": PREDICTIONS}).status_code == 400
    assert post(client, project, {"name": "x", "predictions": []}).status_code == 400
    assert ModelRun.objects.count() == 0


def test_roles(project, manager, world, labelers, member, make_user):
    body = {"name": "m", "predictions": PREDICTIONS}
    labeler = client_for(labelers[0])
    assert post(labeler, project, body).status_code == 403
    assert labeler.get(f"/api/v1/projects/{project.pk}/model-runs/").status_code == 403
    viewer = client_for(member(Role.VIEWER))
    assert post(viewer, project, body).status_code == 403

    sme = client_for(member(Role.SME))
    created = post(sme, project, body)
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert viewer.get(f"/api/v1/model-runs/{run_id}/").status_code == 200
    assert labeler.get(f"/api/v1/model-runs/{run_id}/").status_code == 403

    outsider = client_for(make_user("outsider"))
    assert post(outsider, project, body).status_code == 404
    assert outsider.get(f"/api/v1/projects/{project.pk}/model-runs/").status_code == 404
    assert outsider.get(f"/api/v1/model-runs/{run_id}/").status_code == 404
    assert ModelRun.objects.count() == 1


def test_reference_and_hlp_from_a_real_agreement_run(project, manager, labelers):
    """Consensus by running the engine; HLP per slice read from its results."""
    from consistency import runs

    labels = {  # item -> (factory, three labels); majority in the comment
        "r1": ("A", ("scratch", "scratch", "scratch")),  # scratch
        "r2": ("A", ("dent", "dent", "scratch")),  # dent
        "r3": ("B", ("no_defect", "no_defect", "dent")),  # no_defect
        "r4": ("B", ("dent", "dent", "dent")),  # dent
    }
    for external_id, (factory, values) in labels.items():
        item = Item.objects.create(
            project=project,
            external_id=external_id,
            kind=PayloadKind.TEXT,
            text=external_id,
            metadata={"factory": factory},
        )
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=value)
    agreement = runs.start_agreement_run(
        project=project, params={"slices": ["factory"], "n_bootstrap": 0}, created_by=manager
    )
    agreement = runs.execute_agreement_run(agreement.pk)
    assert agreement.status == RunStatus.SUCCEEDED, agreement.error

    run = model_runs.upload_model_run(
        project=project,
        name="real",
        predictions=[
            {"item": "r1", "value": "scratch"},  # right
            {"item": "r2", "value": "scratch"},  # wrong
            {"item": "r3", "value": "no_defect"},  # right
            {"item": "r4", "value": "dent"},  # right
        ],
        created_by=manager,
    )
    analysis = model_runs.error_analysis(run)
    assert analysis["reference"]["agreement_run"] == agreement.pk
    assert analysis["overall"]["n_items"] == 4
    assert analysis["overall"]["model_accuracy"] == 0.75
    assert analysis["overall"]["hlp"] == agreement.results["hlp"]["value"]
    run_slices = {(s["key"], s["value"]): s for s in agreement.results["slices"]}
    for value, accuracy in (("A", 0.5), ("B", 1.0)):
        got = entry(analysis, "factory", value)
        assert (got["n_items"], got["model_accuracy"]) == (2, accuracy)
        assert got["hlp"] == run_slices[("factory", value)]["hlp"]


def post_body(client, project, body: str, content_type: str, query: str = "?name=m"):
    return client.generic(
        "POST",
        f"/api/v1/projects/{project.pk}/model-runs/{query}",
        body.encode(),
        content_type=content_type,
    )


JSONL = "\n".join(json.dumps(row) for row in PREDICTIONS)
CSV = "item,value,confidence\ni1,scratch,0.9\ni2,scratch,0.6\ni3,no_defect,\ni4,dent,\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (JSONL, "application/x-ndjson"),
        (CSV, "text/csv"),
        (json.dumps(PREDICTIONS), "application/json"),
    ],
    ids=["jsonl", "csv", "json-list"],
)
def test_jsonl_csv_and_a_json_list_store_the_same_run(project, manager, world, body, content_type):
    client = client_for(manager)
    response = post_body(client, project, body, content_type, "?name=from-file")
    assert response.status_code == 201, response.json()
    payload = response.json()
    assert payload["name"] == "from-file" and payload["n_predictions"] == 4
    assert payload["error_analysis"]["overall"]["model_accuracy"] == pytest.approx(2 / 3)
    run = ModelRun.objects.get(pk=payload["id"])
    confidences = dict(
        Prediction.objects.filter(model_run=run).values_list("item__external_id", "confidence")
    )
    assert confidences == {"i1": 0.9, "i2": 0.6, "i3": None, "i4": None}


def test_multipart_file_takes_its_format_from_the_extension(project, manager, world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("preds.csv", CSV.encode(), content_type="application/octet-stream")
    response = client_for(manager).post(
        f"/api/v1/projects/{project.pk}/model-runs/",
        {"file": upload, "name": "multipart"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "multipart" and response.json()["n_predictions"] == 4


def test_bad_jsonl_and_csv_rows_are_a_400_naming_them_and_nothing_is_stored(
    project, manager, world
):
    client = client_for(manager)
    events_before = Event.objects.count()
    jsonl = "\n".join(
        [
            json.dumps({"item": "i1", "value": "scratch"}),
            "",  # blank lines are skipped but keep the numbering by line
            json.dumps({"item": "ghost", "value": "scratch"}),
            json.dumps({"item": "i2", "value": "crack"}),
            "{not json",
        ]
    )
    response = post_body(client, project, jsonl, "application/x-ndjson")
    assert response.status_code == 400, response.json()
    messages = response.json()["errors"]["predictions"]
    assert [m.split(":")[0] for m in messages] == ["row 3", "row 4", "row 5"]
    assert "ghost" in messages[0] and "crack" in messages[1] and "malformed" in messages[2]

    csv_body = "item,value\ni1,scratch\ni2,crack\nghost,dent\n"
    response = post_body(client, project, csv_body, "text/csv")
    assert response.status_code == 400
    messages = response.json()["errors"]["predictions"]
    assert [m.split(":")[0] for m in messages] == ["row 2", "row 3"]
    assert "crack" in messages[0] and "ghost" in messages[1]

    assert post_body(client, project, "value\nscratch\n", "text/csv").status_code == 400
    assert ModelRun.objects.count() == 0 and Prediction.objects.count() == 0
    assert Event.objects.count() == events_before


def test_a_file_upload_needs_a_name(project, manager, world):
    response = post_body(client_for(manager), project, JSONL, "application/x-ndjson", "")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert ModelRun.objects.count() == 0
