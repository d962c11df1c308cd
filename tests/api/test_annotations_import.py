"""POST /api/v1/projects/{id}/annotations/import/: historical labels and Label Studio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from labeling import services
from labeling.models import (
    Annotation,
    GoldLabel,
    Item,
    ProjectMembership,
    Role,
    SourceBatch,
    SourceBatchKind,
    TaskType,
)
from provenance.models import Event

pytestmark = pytest.mark.django_db
User = get_user_model()
LABEL_STUDIO_EXPORT = Path(__file__).parent / "data" / "label_studio_export.json"


def url(project, query=""):
    return f"/api/v1/projects/{project.pk}/annotations/import/{query}"


def post(client, project, body, content_type="application/json", query=""):
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    return client.post(url(project, query), data=body, content_type=content_type)


@pytest.fixture
def items(project):
    return [
        services.create_image_item(project=project, external_id=f"it-{n}", image_bytes=png)
        for n, png in enumerate([_png(n) for n in range(3)], start=1)
    ]


def _png(n):
    from tests.conftest import png_bytes

    return png_bytes(8, 8, color=(n * 40, 0, 0))


def test_rows_become_annotations_of_the_named_labelers(manager_api, project, items, labelers):
    rows = [
        {
            "item": "it-1",
            "labeler": "labeler1",
            "value": "scratch",
            "created_at": "2024-03-01T10:00:00Z",
            "guideline_version": 1,
            "time_spent_ms": 2500,
            "comment": "faint",
        },
        {"item": "it-1", "labeler": "labeler2", "value": "dent"},
        {"item": "it-2", "labeler": "labeler1", "value": "no_defect"},
    ]
    response = post(manager_api, project, rows)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["n_rows"], body["n_created"], body["n_errors"]) == (3, 3, 0)
    a = Annotation.objects.get(item__external_id="it-1", labeler__username="labeler1")
    assert a.label_class.key == "scratch" and a.is_current and a.source == "import"
    assert a.guideline.version == 1 and a.time_spent_ms == 2500 and a.comment == "faint"
    assert a.created_at.isoformat() == "2024-03-01T10:00:00+00:00"
    batch = SourceBatch.objects.get(pk=body["source_batch"])
    assert batch.kind == SourceBatchKind.ANNOTATIONS
    assert Event.objects.filter(verb="annotation.imported").count() == 3


def test_unknown_labeler_ids_become_inactive_labelers_that_cannot_log_in(
    manager_api, project, items, client
):
    response = post(manager_api, project, [{"item": "it-1", "labeler": "ext-42", "value": "dent"}])
    assert response.status_code == 201, response.json()
    assert response.json()["n_labelers_created"] == 1
    user = User.objects.get(username="ext-42")
    assert not user.is_active and not user.has_usable_password()
    membership = ProjectMembership.objects.get(project=project, user=user)
    assert membership.role == Role.LABELER
    assert not client.login(username="ext-42", password="")


def test_rows_for_items_the_project_lacks_are_refused_naming_the_rows(
    manager_api, project, items, db_counts
):
    before = db_counts()
    rows = [
        {"item": "it-1", "labeler": "a", "value": "dent"},
        {"item": "nope", "labeler": "a", "value": "dent"},
        {"item": "it-2", "labeler": "a", "value": "dent"},
        {"item": "gone", "labeler": "b", "value": "dent"},
    ]
    response = post(manager_api, project, rows)
    assert response.status_code == 400
    body = response.json()
    assert [e["row"] for e in body["errors"]] == [2, 4]
    assert "no item with external_id 'nope'" in body["errors"][0]["message"]
    assert "rows 2, 4" in body["detail"]
    assert db_counts() == before  # no account, membership, batch or event either


def test_unknown_class_is_refused_naming_the_row_and_the_known_classes(
    manager_api, project, items, db_counts
):
    before = db_counts()
    rows = "item,labeler,value\nit-1,a,dent\nit-2,a,crack\n"
    response = post(manager_api, project, rows, "text/csv")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (2, "value")
    assert "unknown class 'crack'" in error["message"] and "scratch" in error["message"]
    assert db_counts() == before


def test_csv_without_the_value_column_is_refused(manager_api, project, items, db_counts):
    before = db_counts()
    response = post(manager_api, project, "item,labeler\nit-1,a\n", "text/csv")
    assert response.status_code == 400 and "no value column" in response.json()["detail"]
    assert db_counts() == before


def test_malformed_json_is_refused_and_nothing_is_stored(manager_api, project, items, db_counts):
    before = db_counts()
    response = post(manager_api, project, '[{"item": "it-1", "labeler": "a", "value": "dent"')
    assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]
    assert db_counts() == before


def test_bad_fields_are_reported_per_row(manager_api, project, items):
    rows = [
        {"item": "it-1", "labeler": "a", "value": "dent", "created_at": "yesterday"},
        {"item": "it-1", "labeler": "b b", "value": "dent"},
        {"item": "it-1", "labeler": "c", "value": "dent", "guideline_version": 9},
        {"item": "it-1", "labeler": "d", "value": "dent", "time_spent_ms": -5},
        {"item": "it-1", "labeler": "e"},
    ]
    response = post(manager_api, project, rows)
    assert response.status_code == 400
    fields = [(e["row"], e["field"]) for e in response.json()["errors"]]
    assert fields == [
        (1, "created_at"),
        (2, "labeler"),
        (3, "guideline_version"),
        (4, "time_spent_ms"),
        (5, "value"),
    ]


def test_two_rows_for_one_item_and_labeler_keep_the_later_as_current(manager_api, project, items):
    rows = [
        {"item": "it-1", "labeler": "a", "value": "dent", "created_at": "2024-01-02T00:00:00Z"},
        {"item": "it-1", "labeler": "a", "value": "scratch", "created_at": "2024-01-01T00:00:00Z"},
    ]
    assert post(manager_api, project, rows).status_code == 201
    current = Annotation.objects.get(is_current=True)
    old = Annotation.objects.get(is_current=False)
    assert current.label_class.key == "dent" and old.label_class.key == "scratch"
    assert current.supersedes_id == old.pk


def test_a_newer_imported_label_supersedes_the_stored_current_one(
    manager_api, project, items, labelers
):
    stored = services.submit_annotation(item=items[0], labeler=labelers[0], value="dent")
    rows = [{"item": "it-1", "labeler": "labeler1", "value": "scratch"}]  # created now
    response = post(manager_api, project, rows)
    assert response.status_code == 201 and response.json()["n_updated"] == 1
    stored.refresh_from_db()
    assert not stored.is_current
    new = Annotation.objects.get(is_current=True, labeler=labelers[0])
    assert new.supersedes_id == stored.pk and new.label_class.key == "scratch"


def test_an_older_imported_label_is_stored_as_history_behind_the_current_one(
    manager_api, project, items, labelers
):
    stored = services.submit_annotation(item=items[0], labeler=labelers[0], value="dent")
    rows = [{"item": "it-1", "labeler": "labeler1", "value": "scratch", "created_at": "2020-01-01"}]
    assert post(manager_api, project, rows).status_code == 201
    stored.refresh_from_db()
    assert stored.is_current
    assert Annotation.objects.get(is_current=False).label_class.key == "scratch"


def test_gold_rows_set_gold_labels_and_conflicting_gold_is_refused(manager_api, project, items):
    rows = [
        {"item": "it-1", "labeler": "sme1", "value": "dent", "gold": True},
        {"item": "it-2", "labeler": "sme1", "value": "scratch", "gold": "false"},
    ]
    assert post(manager_api, project, rows).status_code == 201
    gold = GoldLabel.objects.get()
    assert gold.item.external_id == "it-1" and gold.label_class.key == "dent"
    assert Event.objects.filter(verb="item.gold_set", item_id_ref=gold.item_id).exists()
    conflicting = [
        {"item": "it-2", "labeler": "x", "value": "dent", "gold": True},
        {"item": "it-2", "labeler": "y", "value": "scratch", "gold": True},
    ]
    response = post(manager_api, project, conflicting)
    assert response.status_code == 400
    assert "disagrees with row 1" in response.json()["errors"][0]["message"]


def test_partial_label_import_stores_the_good_rows(manager_api, project, items):
    rows = [
        {"item": "it-1", "labeler": "a", "value": "dent"},
        {"item": "zz", "labeler": "a", "value": "dent"},
    ]
    response = post(manager_api, project, rows, query="?partial=true")
    assert response.status_code == 201
    assert (response.json()["n_created"], response.json()["n_errors"]) == (1, 1)
    assert SourceBatch.objects.get().errors[0]["row"] == 2


def test_jsonl_transcription_rows_store_text(manager_api, manager, make_user):
    project = services.create_project(
        name="Calls", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    Item.objects.create(project=project, external_id="call-1", kind="audio_url")
    body = '{"item": "call-1", "labeler": "t1", "value": "hello there"}\n'
    response = post(manager_api, project, body, "application/x-ndjson")
    assert response.status_code == 201, response.json()
    assert Annotation.objects.get().value_text == "hello there"


# --- Label Studio ------------------------------------------------------------------------
def test_label_studio_export_round_trips_into_items_labels_and_gold(manager_api, project):
    export = LABEL_STUDIO_EXPORT.read_bytes()
    response = post(manager_api, project, export)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["format"] == "label_studio"
    assert (body["n_items_created"], body["n_annotations_created"]) == (2, 5)
    assert (body["n_cancelled_skipped"], body["n_gold"], body["n_errors"]) == (1, 1, 0)
    # Tasks became items: LS id as external id unless the data carries one.
    first = Item.objects.get(project=project, external_id="101")
    assert first.image_url == "https://cdn.example.org/phones/101.jpg"
    assert first.metadata == {"factory": "A", "line": 2}
    assert Item.objects.filter(project=project, external_id="phone-102").exists()
    labels = {
        (a.item.external_id, a.labeler.username): (a.label_class.key, a.time_spent_ms)
        for a in Annotation.objects.select_related("item", "labeler", "label_class")
    }
    assert labels == {
        ("101", "ana@example.org"): ("scratch", 4288),
        ("101", "ls-user-7"): ("dent", 12500),
        ("phone-102", "ana@example.org"): ("no_defect", 2000),
        ("phone-102", "ls-user-7"): ("no_defect", 3250),
        ("phone-102", "chen@example.org"): ("scratch", 5000),
    }
    # The cancelled annotation was skipped: ben has no label and no account.
    assert not User.objects.filter(username="ben@example.org").exists()
    gold = GoldLabel.objects.get()
    assert gold.item.external_id == "phone-102" and gold.label_class.key == "no_defect"
    new_labelers = User.objects.filter(username__in=["ana@example.org", "ls-user-7"])
    assert all(not u.is_active for u in new_labelers)
    batch = SourceBatch.objects.get(pk=body["source_batch"])
    assert batch.kind == SourceBatchKind.LABEL_STUDIO and batch.n_rows == 2


def test_label_studio_reimport_updates_items_and_revises_labels(manager_api, project):
    export = LABEL_STUDIO_EXPORT.read_bytes()
    assert post(manager_api, project, export).status_code == 201
    response = post(manager_api, project, export, query="?format=label_studio")
    assert response.status_code == 201, response.json()
    assert response.json()["n_items_updated"] == 2
    assert Item.objects.filter(project=project).count() == 2
    # Same created_at: each re-imported label supersedes the stored one.
    assert Annotation.objects.filter(is_current=True).count() == 5
    assert Annotation.objects.filter(is_current=False).count() == 5


def test_label_studio_transcription_takes_the_textarea(manager_api, manager):
    project = services.create_project(
        name="Notes", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    tasks = [
        {
            "id": 5,
            "data": {"audio": "https://cdn.example.org/5.wav"},
            "annotations": [
                {
                    "completed_by": 3,
                    "result": [{"type": "textarea", "value": {"text": ["turn left"]}}],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": "2024-05-03T08:00:00Z",
                    "lead_time": 1.5,
                }
            ],
        }
    ]
    response = post(manager_api, project, tasks)
    assert response.status_code == 201, response.json()
    assert Annotation.objects.get().value_text == "turn left"
    assert Item.objects.get().audio_url == "https://cdn.example.org/5.wav"


def test_label_studio_upload_paths_need_a_base_url(manager_api, project, db_counts):
    tasks = json.loads(LABEL_STUDIO_EXPORT.read_text())
    tasks[0]["data"]["image"] = "/data/upload/3/abc-101.jpg"
    before = db_counts()
    response = post(manager_api, project, tasks)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "data.image"
    assert "base_url" in response.json()["errors"][0]["message"]
    assert db_counts() == before
    response = post(manager_api, project, tasks, query="?base_url=https://ls.example.org")
    assert response.status_code == 201, response.json()
    item = Item.objects.get(external_id="101")
    assert item.image_url == "https://ls.example.org/data/upload/3/abc-101.jpg"


def test_label_studio_unknown_choice_is_refused_naming_task_and_annotation(
    manager_api, project, db_counts
):
    tasks = json.loads(LABEL_STUDIO_EXPORT.read_text())
    tasks[1]["annotations"][2]["result"][0]["value"]["choices"] = ["Crack"]
    before = db_counts()
    response = post(manager_api, project, tasks)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (2, "annotations[2].value")
    assert "unknown class 'Crack'" in error["message"]
    assert db_counts() == before


def test_label_studio_labelers_named_by_email_keep_it_as_their_email(manager_api, project):
    assert post(manager_api, project, LABEL_STUDIO_EXPORT.read_bytes()).status_code == 201
    assert User.objects.get(username="chen@example.org").email == "chen@example.org"
    assert User.objects.get(username="ls-user-7").email == ""
