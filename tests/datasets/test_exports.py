"""Exports: streamed, byte-identical, ETag'd, safe (formula injection, path traversal)."""

import csv
import io
import json
import tracemalloc
import zipfile

import pyarrow.parquet as pq
import pytest

from datasets import exporters
from datasets.models import DatasetRow, DatasetStatus, DatasetVersion
from datasets.services import BASE_COLUMNS, canonical_json
from labeling import services as labeling_services
from labeling.models import Item
from tests.conftest import png_bytes
from tests.datasets.conftest import build, label_items, run_majority

pytestmark = pytest.mark.django_db


def export(api, version, fmt="jsonl", split=None, **headers):
    url = f"/api/v1/datasets/{version.pk}/export/?format={fmt}" + (
        f"&split={split}" if split else ""
    )
    return api.get(url, **headers)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def version(labeled_project):
    return build(labeled_project["project"], splits={"train": 0.6, "dev": 0.2, "test": 0.2})


def test_jsonl_export_is_the_hashed_rows_and_byte_identical_every_time(api, manager, version):
    api.force_authenticate(manager)
    first, second = export(api, version), export(api, version)
    assert first.status_code == 200
    assert first["Content-Type"] == "application/x-ndjson"
    assert first["Content-Disposition"] == (
        f'attachment; filename="{version.project.slug}-v{version.pk}-all.jsonl"'
    )
    data = body(first)
    assert data == body(second)
    lines = data.decode().splitlines()
    assert len(lines) == 100
    assert [json.loads(x)["external_id"] for x in lines] == sorted(
        json.loads(x)["external_id"] for x in lines
    )
    # The content hash is over canonical params + exactly these bytes.
    import hashlib

    digest = hashlib.sha256(canonical_json(version.params).encode() + b"\n" + data).hexdigest()
    assert digest == version.content_hash


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_re_exports_byte_identically_with_a_strong_etag(api, manager, version, fmt):
    api.force_authenticate(manager)
    first, second = export(api, version, fmt, "train"), export(api, version, fmt, "train")
    assert body(first) == body(second)
    assert first["ETag"] == f'"{version.content_hash}-{fmt}-train"'
    not_modified = export(api, version, fmt, "train", HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304
    assert export(api, version, fmt, "dev", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_split_filter_and_formats_agree(api, manager, version):
    api.force_authenticate(manager)
    jsonl = [json.loads(x) for x in body(export(api, version, "jsonl", "dev")).splitlines()]
    assert len(jsonl) == 20 and {r["split"] for r in jsonl} == {"dev"}
    rows = list(csv.DictReader(io.StringIO(body(export(api, version, "csv", "dev")).decode())))
    assert [r["external_id"] for r in rows] == [r["external_id"] for r in jsonl]
    assert rows[0]["metadata.factory"] == jsonl[0]["metadata"]["factory"]
    assert rows[0]["labelers"] == "labeler1;labeler2;labeler3"
    table = pq.read_table(io.BytesIO(body(export(api, version, "parquet", "dev"))))
    assert table.num_rows == 20
    assert table.column("external_id").to_pylist() == [r["external_id"] for r in jsonl]
    assert table.column("labelers").to_pylist()[0] == ["labeler1", "labeler2", "labeler3"]
    assert table.column("confidence").to_pylist() == [r["confidence"] for r in jsonl]
    assert table.column_names[: len(BASE_COLUMNS)] == [name for name, _ in BASE_COLUMNS]


def test_unknown_format_or_split_is_a_clear_400(api, manager, version):
    api.force_authenticate(manager)
    response = export(api, version, "xlsx")
    assert response.status_code == 400 and "format" in response.json()["detail"]
    response = export(api, version, "jsonl", "validation")
    assert response.status_code == 400 and "no split 'validation'" in response.json()["detail"]


def test_an_unpublished_version_cannot_be_exported(api, manager, project):
    queued = DatasetVersion.objects.create(project=project, status=DatasetStatus.QUEUED)
    api.force_authenticate(manager)
    assert export(api, queued).status_code == 409


def test_csv_cells_that_spreadsheets_would_run_are_neutralised(api, manager, project, labelers):
    nasty = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    items = [
        Item.objects.create(
            project=project,
            external_id=value if i else "=cmd|' /C calc'!A0",
            kind="text",
            text="t",
            metadata={"note": value, "count": -3},
        )
        for i, value in enumerate(nasty)
    ]
    label_items(items, labelers, lambda i, j: "dent")
    run_majority(project)
    version = build(project, splits={"train": 1.0})
    api.force_authenticate(manager)
    text = body(export(api, version, "csv")).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for row in rows:
        for column, cell in row.items():
            if column == "metadata.count":
                assert cell == "-3"  # a number stays a number
            else:
                assert not cell.startswith(exporters.FORMULA_PREFIXES), (column, cell)
    notes = sorted(r["metadata.note"] for r in rows)
    assert '\'=HYPERLINK("http://evil")' in notes and "'@SUM(A1)" in notes
    assert "'=cmd|' /C calc'!A0" in [r["external_id"] for r in rows]


def test_image_zip_never_follows_paths_from_item_data(api, manager, project, labelers, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    ok = labeling_services.create_image_item(
        project=project, external_id="phone-1", image_bytes=png_bytes(8, 8)
    )
    evil = labeling_services.create_image_item(
        project=project,
        external_id="../../etc/passwd",
        image_bytes=png_bytes(9, 9),
        metadata={"path": str(secret), "file": "../../etc/passwd"},
    )
    url_item = Item.objects.create(
        project=project, external_id="url-1", kind="image_url", image_url="https://x.test/a.jpg"
    )
    label_items([ok, evil, url_item], labelers, lambda i, j: "scratch")
    run_majority(project)
    version = build(project, splits={"train": 1.0})
    # Even a row whose stored image name was tampered with is not followed.
    DatasetRow.objects.bulk_create(
        [
            DatasetRow(
                version=DatasetVersion.objects.create(project=project),
                position=0,
                external_id="x",
                split="train",
                image_name="../../../../etc/passwd",
                line="{}",
            )
        ]
    )
    assert not exporters.concord_image_name(project.pk, "../../../../etc/passwd")
    assert not exporters.concord_image_name(project.pk, f"projects/{project.pk}/images/../x.png")

    api.force_authenticate(manager)
    response = export(api, version, "imagefolder", "train")
    assert response["Content-Type"] == "application/zip"
    data = body(response)
    assert data == body(export(api, version, "imagefolder", "train"))
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert "train/scratch/phone-1.png" in names
    assert f"train/scratch/_.._etc_passwd-{evil.pk}.png" in names
    assert all(".." not in n.split("/") and not n.startswith("/") for n in names)
    assert not any(b"TOP SECRET" in archive.read(n) or b"root:" in archive.read(n) for n in names)
    manifest = [json.loads(x) for x in archive.read("manifest.jsonl").splitlines()]
    by_id = {m["external_id"]: m for m in manifest}
    assert by_id["url-1"] == {
        "external_id": "url-1",
        "file": None,
        "image_url": "https://x.test/a.jpg",
        "label": "scratch",
        "split": "train",
        "final_label_source": "consensus",
    }
    assert archive.read("train/scratch/phone-1.png") == ok.image.open("rb").read()


def test_exporting_a_large_version_keeps_memory_bounded(project, monkeypatch):
    """Peak Python memory while streaming 20,000 rows stays a small fraction of the
    export's size: the rows are never all in memory, only one chunk / row group."""
    monkeypatch.setattr(exporters, "CHUNK_ROWS", 500)
    monkeypatch.setattr(exporters, "PARQUET_ROW_GROUP", 1000)
    version = DatasetVersion.objects.create(
        project=project,
        status=DatasetStatus.BUILDING,
        columns=[{"name": n, "type": t} for n, t in BASE_COLUMNS]
        + [{"name": "metadata.note", "type": "string", "key": "note"}],
        split_counts={"train": 20000},
    )
    DatasetRow.objects.bulk_create(
        (
            DatasetRow(
                version=version,
                position=i,
                external_id=f"item-{i:06d}",
                split="train",
                label="scratch",
                line=canonical_json(
                    {
                        "external_id": f"item-{i:06d}",
                        "label": "scratch",
                        "split": "train",
                        "labelers": ["a", "b"],
                        "guideline_versions": [1],
                        "metadata": {"note": f"{i:06d}" * 40},
                    }
                ),
            )
            for i in range(20000)
        ),
        batch_size=5000,
    )
    payload = None
    for fmt in ("jsonl", "csv", "parquet"):
        b"".join(exporters.EXPORTERS[fmt](version, "none"))  # warm up: lazy imports
        tracemalloc.start()
        total = sum(len(chunk) for chunk in exporters.EXPORTERS[fmt](version, None))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        payload = payload or total  # the JSONL size: the data itself
        assert payload > 5_000_000
        assert peak < payload / 4, (fmt, peak, total)
