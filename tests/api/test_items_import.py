"""POST /api/v1/projects/{id}/items/import/: formats, row errors, atomicity, re-import."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import (
    ImageStatsStatus,
    Item,
    PayloadKind,
    SourceBatch,
    SourceBatchStatus,
)
from provenance.models import Event
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db


def url(project, query=""):
    return f"/api/v1/projects/{project.pk}/items/import/{query}"


def post(client, project, body, content_type, query=""):
    if isinstance(body, str):
        body = body.encode()
    return client.post(url(project, query), data=body, content_type=content_type)


def jsonl(rows) -> str:
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buffer.getvalue()


ROWS = [
    {
        "external_id": "img-1",
        "image_url": "https://cdn.example.org/1.jpg",
        "metadata": {"factory": "A", "line": 1},
        "tags": ["blurry"],
    },
    {"external_id": "txt-2", "text": "a scratch near the camera", "metadata": {"factory": "B"}},
    {"external_id": "aud-3", "audio_url": "https://cdn.example.org/3.wav", "tags": ["car_noise"]},
]


# --- Formats ---------------------------------------------------------------------------
def test_json_list_creates_items_with_payload_metadata_tags_and_one_source_batch(
    manager_api, project
):
    response = post(manager_api, project, json.dumps(ROWS), "application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["n_rows"] == 3 and body["n_created"] == 3 and body["n_updated"] == 0
    assert body["n_errors"] == 0 and body["errors"] == []
    batch = SourceBatch.objects.get(pk=body["source_batch"])
    assert batch.status == SourceBatchStatus.SUCCEEDED and batch.n_created == 3
    assert len(batch.file_sha256) == 64
    image = Item.objects.get(project=project, external_id="img-1")
    assert image.kind == PayloadKind.IMAGE_URL
    assert image.metadata == {"factory": "A", "line": 1}
    assert [t.name for t in image.tags.all()] == ["blurry"]
    assert image.source_batch_id == batch.pk
    assert Item.objects.get(external_id="aud-3").kind == PayloadKind.AUDIO_URL
    verbs = list(Event.objects.filter(project=project).values_list("verb", flat=True))
    assert verbs.count("item.imported") == 3 and verbs.count("batch.imported") == 1


def test_jsonl_rows_are_imported(manager_api, project):
    response = post(manager_api, project, jsonl(ROWS), "application/x-ndjson")
    assert response.status_code == 201, response.json()
    assert Item.objects.filter(project=project).count() == 3


def test_csv_takes_metadata_columns_and_separated_tags(manager_api, project):
    csv_text = (
        "external_id,image_url,metadata.factory,metadata.camera,tags\n"
        "c-1,https://cdn.example.org/c1.png,A,cam-7,blurry;dark\n"
        "c-2,https://cdn.example.org/c2.png,B,,dark, glare\n"
    )
    # The second row's tags hold a comma: quote-free CSV would split it into a 6th value.
    csv_text = csv_text.replace("dark, glare", '"dark, glare"')
    response = post(manager_api, project, csv_text, "text/csv")
    assert response.status_code == 201, response.json()
    first = Item.objects.get(external_id="c-1")
    assert first.metadata == {"factory": "A", "camera": "cam-7"}
    assert sorted(t.name for t in first.tags.all()) == ["blurry", "dark"]
    second = Item.objects.get(external_id="c-2")
    assert second.metadata == {"factory": "B"}  # an empty cell is no metadata
    assert sorted(t.name for t in second.tags.all()) == ["dark", "glare"]


def test_multipart_upload_takes_its_format_from_the_file_extension(manager_api, project):
    upload = SimpleUploadedFile("rows.jsonl", jsonl(ROWS).encode(), "application/octet-stream")
    response = manager_api.post(url(project), {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert SourceBatch.objects.get().origin == "rows.jsonl"


def test_zip_of_images_with_manifest_stores_images_and_computes_stats_on_commit(
    manager_api, project, django_capture_on_commit_callbacks
):
    archive = make_zip(
        {
            "manifest.jsonl": jsonl(
                [
                    {"external_id": "z1", "file": "img/a.png", "metadata": {"line": 2}},
                    {"external_id": "z2", "file": "img/b.png"},
                ]
            ),
            "img/a.png": png_bytes(40, 30),
            "img/b.png": png_bytes(20, 10, color=(0, 0, 0)),
        }
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = post(manager_api, project, archive, "application/zip")
    assert response.status_code == 201, response.json()
    a = Item.objects.get(external_id="z1")
    assert a.kind == PayloadKind.IMAGE and a.image.name.endswith(".png")
    assert a.stats_status == ImageStatsStatus.DONE
    assert (a.width, a.height) == (40, 30) and a.thumbnail
    assert Item.objects.get(external_id="z2").mean_brightness == pytest.approx(0.0)


def test_zip_manifest_may_be_csv_inside_one_top_folder(manager_api, project):
    archive = make_zip(
        {
            "export/manifest.csv": "external_id,file,metadata.factory\nq1,pics/q1.png,A\n",
            "export/pics/q1.png": png_bytes(),
        }
    )
    response = post(manager_api, project, archive, "application/zip")
    assert response.status_code == 201, response.json()
    assert Item.objects.get(external_id="q1").metadata == {"factory": "A"}


# --- Refusals: clear 4xx naming the rows, database unchanged ----------------------------
def assert_refused(response, db_counts, before, *, status=400, rows=()):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["detail"]
    for row in rows:
        assert row in [e["row"] for e in body["errors"]], body
    assert db_counts() == before
    return body


def test_malformed_json_is_refused_with_its_line_and_column(manager_api, project, db_counts):
    before = db_counts()
    body = '[{"external_id": "a", "text": "x"},\n {"external_id": "b", "text": }]'
    response = post(manager_api, project, body, "application/json")
    result = assert_refused(response, db_counts, before)
    assert "line 2" in result["detail"] and "column" in result["detail"]


def test_malformed_jsonl_line_is_refused_naming_its_line(manager_api, project, db_counts):
    before = db_counts()
    body = '{"external_id": "a", "text": "x"}\n{"external_id": "b", "text": \n'
    response = post(manager_api, project, body, "application/x-ndjson")
    result = assert_refused(response, db_counts, before, rows=[2])
    assert "malformed JSON" in result["errors"][0]["message"]


def test_csv_header_without_the_external_id_column_is_refused_as_row_0(
    manager_api, project, db_counts
):
    before = db_counts()
    response = post(manager_api, project, "id,text\n1,hello\n", "text/csv")
    result = assert_refused(response, db_counts, before, rows=[0])
    assert "no external_id column" in result["detail"]
    assert result["errors"][0]["field"] == "external_id"


def test_csv_row_missing_a_column_is_refused_naming_the_row(manager_api, project, db_counts):
    before = db_counts()
    body = "external_id,text,metadata.factory\nr1,hello,A\nr2,world\nr3,ok,B\n"
    response = post(manager_api, project, body, "text/csv")
    result = assert_refused(response, db_counts, before, rows=[2])
    assert result["errors"][0]["field"] == "metadata.factory"
    assert "missing: metadata.factory" in result["errors"][0]["message"]


def test_duplicate_external_id_in_one_file_is_refused_naming_both_rows(
    manager_api, project, db_counts
):
    before = db_counts()
    rows = [
        {"external_id": "d1", "text": "x"},
        {"external_id": "d2", "text": "y"},
        {"external_id": "d1", "text": "z"},
    ]
    response = post(manager_api, project, json.dumps(rows), "application/json")
    result = assert_refused(response, db_counts, before, rows=[3])
    assert "repeats row 1" in result["errors"][0]["message"]


def test_invalid_rows_are_each_reported_with_field_and_reason(manager_api, project, db_counts):
    before = db_counts()
    rows = [
        {"external_id": "ok", "text": "fine"},
        {"text": "no id"},
        {"external_id": "two", "text": "x", "image_url": "https://e.org/a.png"},
        {"external_id": "js", "image_url": "javascript:alert(1)"},
        {"external_id": "meta", "text": "x", "metadata": [1, 2]},
        {"external_id": "typo", "txt": "x"},
    ]
    response = post(manager_api, project, json.dumps(rows), "application/json")
    result = assert_refused(response, db_counts, before, rows=[2, 3, 4, 5, 6])
    fields = {(e["row"], e["field"]) for e in result["errors"]}
    assert (2, "external_id") in fields and (4, "image_url") in fields
    assert (5, "metadata") in fields and (6, "txt") in fields
    assert "?partial=true" in result["detail"]


def test_non_image_file_in_zip_is_refused_naming_the_manifest_row(
    manager_api, project, db_counts, media_root
):
    before = db_counts()
    archive = make_zip(
        {
            "manifest.jsonl": jsonl(
                [{"external_id": "good", "file": "a.png"}, {"external_id": "bad", "file": "x.svg"}]
            ),
            "a.png": png_bytes(),
            "x.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        }
    )
    response = post(manager_api, project, archive, "application/zip")
    result = assert_refused(response, db_counts, before, rows=[2])
    assert "not a readable image" in result["errors"][0]["message"]
    stored = list(media_root.rglob("*.png")) if media_root.exists() else []
    assert stored == []  # nothing left on disk either


def test_oversized_image_in_zip_is_refused_with_its_pixel_count(
    manager_api, project, db_counts, settings
):
    settings.CONCORD_MAX_IMAGE_PIXELS = 1000
    before = db_counts()
    archive = make_zip(
        {"manifest.csv": "external_id,file\nbig,big.png\n", "big.png": png_bytes(64, 48)}
    )
    response = post(manager_api, project, archive, "application/zip")
    result = assert_refused(response, db_counts, before, rows=[1])
    assert "3072 pixels; the limit is 1000" in result["errors"][0]["message"]


def test_image_over_the_byte_limit_in_zip_is_refused(manager_api, project, db_counts, settings):
    settings.CONCORD_MAX_IMAGE_BYTES = 50
    before = db_counts()
    archive = make_zip({"manifest.csv": "external_id,file\nb,b.png\n", "b.png": png_bytes()})
    response = post(manager_api, project, archive, "application/zip")
    result = assert_refused(response, db_counts, before, rows=[1])
    assert "the limit is 50 bytes" in result["errors"][0]["message"]


def test_zip_member_escaping_its_folder_is_refused(manager_api, project, db_counts):
    before = db_counts()
    archive = make_zip({"manifest.csv": "external_id,file\ne,../e.png\n", "../e.png": png_bytes()})
    response = post(manager_api, project, archive, "application/zip")
    result = assert_refused(response, db_counts, before)
    assert "unsafe paths" in result["detail"]


def test_zip_that_would_decompress_past_the_limit_is_refused_413(
    manager_api, project, db_counts, settings
):
    settings.CONCORD_MAX_ZIP_UNCOMPRESSED_BYTES = 1_000_000
    before = db_counts()
    archive = make_zip({"manifest.csv": "external_id,file\nz,z.png\n", "z.png": b"\0" * 5_000_000})
    assert len(archive) < 20_000  # a small upload that inflates 250-fold
    response = post(manager_api, project, archive, "application/zip")
    result = assert_refused(response, db_counts, before, status=413)
    assert "decompress" in result["detail"]


def test_zip_without_manifest_is_refused(manager_api, project, db_counts):
    before = db_counts()
    response = post(manager_api, project, make_zip({"a.png": png_bytes()}), "application/zip")
    assert "no manifest" in assert_refused(response, db_counts, before)["detail"]


def test_file_over_the_import_limit_is_refused_413(manager_api, project, db_counts, settings):
    settings.CONCORD_MAX_IMPORT_BYTES = 100
    before = db_counts()
    response = post(manager_api, project, json.dumps(ROWS), "application/json")
    assert_refused(response, db_counts, before, status=413)


def test_unknown_content_type_is_refused_naming_the_accepted_ones(manager_api, project):
    response = post(manager_api, project, "<html></html>", "text/html")
    assert response.status_code == 400
    assert "application/x-ndjson" in response.json()["detail"]


def test_unknown_query_parameter_is_refused(manager_api, project):
    response = post(manager_api, project, json.dumps(ROWS), "application/json", "?partal=1")
    assert response.status_code == 400 and "partal" in response.json()["detail"]


def test_empty_file_is_refused(manager_api, project):
    response = post(manager_api, project, "[]", "application/json")
    assert response.status_code == 400 and "no rows" in response.json()["detail"]


# --- Re-import and partial import --------------------------------------------------------
def test_reimport_updates_payload_metadata_and_tags_instead_of_duplicating(manager_api, project):
    assert post(manager_api, project, json.dumps(ROWS), "application/json").status_code == 201
    first = Item.objects.get(external_id="img-1")
    again = [
        {
            "external_id": "img-1",
            "image_url": "https://cdn.example.org/1-v2.jpg",
            "metadata": {"factory": "C"},
            "tags": ["glare"],
        },
        {"external_id": "txt-2", "text": "edited text"},  # no metadata: keeps the old one
        {"external_id": "new-4", "text": "new"},
    ]
    response = post(manager_api, project, jsonl(again), "application/x-ndjson")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["n_created"], body["n_updated"]) == (1, 2)
    assert Item.objects.filter(project=project).count() == 4
    updated = Item.objects.get(external_id="img-1")
    assert updated.pk == first.pk
    assert updated.image_url.endswith("1-v2.jpg") and updated.metadata == {"factory": "C"}
    assert [t.name for t in updated.tags.all()] == ["glare"]
    assert updated.source_batch_id == body["source_batch"]
    text = Item.objects.get(external_id="txt-2")
    assert text.text == "edited text" and text.metadata == {"factory": "B"}
    assert Event.objects.filter(verb="item.updated").count() == 2


def test_partial_import_stores_the_good_rows_and_records_the_errors(manager_api, project):
    rows = [
        {"external_id": "p1", "text": "good"},
        {"external_id": "p2"},
        {"external_id": "p3", "text": "good too"},
        {"external_id": "p1", "text": "dupe"},
    ]
    response = post(manager_api, project, json.dumps(rows), "application/json", "?partial=true")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["n_rows"], body["n_created"], body["n_errors"]) == (4, 2, 2)
    assert [e["row"] for e in body["errors"]] == [2, 4]
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["p1", "p3"]
    assert Item.objects.get(external_id="p1").text == "good"
    batch = SourceBatch.objects.get(pk=body["source_batch"])
    assert batch.status == SourceBatchStatus.PARTIAL and batch.n_errors == 2
    assert [e["row"] for e in batch.errors] == [2, 4]


def test_partial_import_with_no_valid_row_is_refused(manager_api, project, db_counts):
    before = db_counts()
    response = post(
        manager_api, project, json.dumps([{"external_id": "x"}]), "application/json", "?partial=1"
    )
    assert_refused(response, db_counts, before, rows=[1])


def test_image_url_items_are_fetched_only_when_asked(
    manager_api, project, django_capture_on_commit_callbacks, monkeypatch
):
    fetched = []
    monkeypatch.setattr(
        "labeling.tasks.services.compute_remote_item_image_stats",
        lambda *, item_id: fetched.append(item_id) or Item.objects.get(pk=item_id),
    )
    with django_capture_on_commit_callbacks(execute=True):
        post(manager_api, project, json.dumps(ROWS[:1]), "application/json")
    assert fetched == []
    assert Item.objects.get(external_id="img-1").stats_status == ImageStatsStatus.NOT_APPLICABLE
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            manager_api, project, json.dumps(ROWS[:1]), "application/json", "?fetch_images=1"
        )
    assert response.status_code == 201
    assert fetched == [Item.objects.get(external_id="img-1").pk]


def test_a_concurrent_import_of_the_same_ids_is_a_409_and_stores_nothing(
    manager_api, project, db_counts, monkeypatch
):
    assert post(manager_api, project, json.dumps(ROWS), "application/json").status_code == 201
    before = db_counts()
    # As if another import created these items between our lookup and our insert.
    monkeypatch.setattr("labeling.imports.items._fetch_by_external_id", lambda project, ids: {})
    response = post(manager_api, project, json.dumps(ROWS), "application/json")
    assert response.status_code == 409, response.json()
    assert "send it again" in response.json()["detail"]
    assert db_counts() == before
