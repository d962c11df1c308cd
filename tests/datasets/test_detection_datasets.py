"""Detection dataset versions: final boxes per row, COCO and YOLO exports that are
byte-identical on re-export and re-import to the same boxes, splits stratified by the
classes present."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter

import pyarrow.parquet as pq
import pytest

from consistency.models import Consensus
from labeling import services as labeling_services
from labeling.models import Annotation, GoldSource, Item, ItemDecision, Role, TaskType
from tests.conftest import png_bytes
from tests.datasets.conftest import build

pytestmark = pytest.mark.django_db

WIDTH, HEIGHT = 200, 100
CLASSES = [{"key": "scratch"}, {"key": "dent"}, {"key": "Big crack"}]


def export(api, version, fmt, split=None):
    url = f"/api/v1/datasets/{version.pk}/export/?format={fmt}" + (
        f"&split={split}" if split else ""
    )
    return api.get(url)


def body(response) -> bytes:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def make_project(manager, name="Screens"):
    return labeling_services.create_project(
        name=name, task_type=TaskType.DETECTION, classes=CLASSES, overlap=2, created_by=manager
    )


def make_image_items(project, n):
    items = []
    for i in range(n):
        item = labeling_services.create_image_item(
            project=project,
            external_id=f"img-{i:02d}",
            image_bytes=png_bytes(WIDTH, HEIGHT, color=(i * 10, 0, 0)),
            metadata={"line": "A" if i % 2 else "B"},
        )
        item.width, item.height = WIDTH, HEIGHT
        item.save(update_fields=["width", "height"])
        items.append(item)
    return items


def truth_boxes(i: int) -> list[dict]:
    """Items 0-9 hold one or two scratches (10.25 px offsets test the 2-decimal round
    trip), 10-15 a dent and a big crack, 16-19 nothing."""
    if i < 10:
        boxes = [{"class": "scratch", "x": 10.25 + i, "y": 20.5, "w": 30.75, "h": 12.0}]
        if i % 3 == 0:
            boxes.append({"class": "scratch", "x": 150.0, "y": 5.0, "w": 20.0, "h": 90.0})
        return boxes
    if i < 16:
        return [
            {"class": "Big crack", "x": 100.0, "y": 50.0, "w": 99.5, "h": 49.5},
            {"class": "dent", "x": 0.0, "y": 0.0, "w": 33.33, "h": 66.67},
        ]
    return []


@pytest.fixture
def detection_version(manager, make_user):
    project = make_project(manager)
    items = make_image_items(project, 20)
    for i, item in enumerate(items):
        if i != 5:
            labeling_services.set_gold_label(
                item=item, value=truth_boxes(i), source=GoldSource.IMPORT, actor=manager
            )
    # A labeler's boxes on a few items: counted on the rows, never their label.
    labeler = make_user("lena")
    labeling_services.set_membership(project=project, user=labeler, role=Role.LABELER)
    for item in items[:4]:
        labeling_services.submit_annotation(item=item, labeler=labeler, value=[])
    # Item 19's size was never computed: the build reads it from the uploaded file.
    Item.objects.filter(pk=items[19].pk).update(width=None, height=None)
    # An SME decision is the final label of item 5, which has no ground truth; on item 6
    # it contradicts the ground truth, which stays (a conflict, never an overwrite).
    for n in (5, 6):
        ItemDecision.objects.create(
            item=items[n],
            value_boxes=[{"class": "dent", "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0}],
            decided_by=manager,
        )
    version = build(project, manager, splits={"train": 0.5, "test": 0.5}, seed=3)
    assert version.status == "succeeded", version.error
    return project, items, version


def final(i: int) -> list[dict]:
    if i == 5:
        return [{"class": "dent", "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0}]
    return truth_boxes(i)


def key(boxes):
    return sorted(json.dumps(b, sort_keys=True) for b in boxes)


def test_rows_hold_the_final_boxes_and_where_they_came_from(api, manager, detection_version):
    project, items, version = detection_version
    api.force_authenticate(manager)
    rows = [json.loads(line) for line in body(export(api, version, "jsonl")).splitlines()]
    assert [r["external_id"] for r in rows] == [f"img-{i:02d}" for i in range(20)]
    for i, row in enumerate(rows):
        assert key(row["boxes"]) == key(final(i))
        classes = sorted({b["class"] for b in final(i)})
        assert row["label"] == json.dumps(classes, separators=(",", ":"))
        assert (row["image_width"], row["image_height"]) == (WIDTH, HEIGHT)
        assert row["final_label_source"] == ("sme" if i == 5 else "ground_truth")
        assert (row["n_labels"], row["labelers"]) == ((1, ["lena"]) if i < 4 else (0, []))
    # Class counts are boxes per class: 10 first scratches + 4 second ones (i = 0, 3, 6, 9)
    # less item 5's (decided to a dent); 6 dents + 1 decided; 6 big cracks.
    assert version.class_counts["all"] == {"Big crack": 6, "dent": 7, "scratch": 13}
    assert version.params["box_classes"] == ["scratch", "dent", "Big crack"]


def test_splits_are_stratified_by_the_classes_present(detection_version):
    _, _, version = detection_version
    by_split = Counter((r.split, r.label) for r in version.rows.all())
    # Strata: 9 scratch-only rows (item 5 was decided to a dent), 6 with a big crack and a
    # dent, 1 dent-only, 4 empty; each split holds half of each stratum, within one row.
    strata = Counter(r.label for r in version.rows.all())
    assert strata == {'["scratch"]': 9, '["Big crack","dent"]': 6, '["dent"]': 1, "[]": 4}
    for label, n in strata.items():
        assert abs(by_split[("train", label)] - n / 2) <= 0.5
        assert by_split[("train", label)] + by_split[("test", label)] == n
    assert version.split_counts == {"train": 10, "test": 10}


@pytest.mark.parametrize("fmt", ["coco", "yolo", "jsonl", "csv", "parquet"])
def test_every_format_re_exports_byte_identically(api, manager, detection_version, fmt):
    _, _, version = detection_version
    api.force_authenticate(manager)
    first = body(export(api, version, fmt))
    assert first == body(export(api, version, fmt))
    assert body(export(api, version, fmt, "test")) == body(export(api, version, fmt, "test"))


def test_coco_export_matches_the_rows(api, manager, detection_version):
    _, items, version = detection_version
    api.force_authenticate(manager)
    document = json.loads(body(export(api, version, "coco")))
    assert document["categories"] == [
        {"id": 1, "name": "scratch", "supercategory": ""},
        {"id": 2, "name": "dent", "supercategory": ""},
        {"id": 3, "name": "Big crack", "supercategory": ""},
    ]
    images = {image["id"]: image for image in document["images"]}
    assert len(images) == 20
    assert images[1]["external_id"] == "img-00"
    assert (images[1]["width"], images[1]["height"]) == (WIDTH, HEIGHT)
    names = {c["id"]: c["name"] for c in document["categories"]}
    per_item: dict[str, list] = {image["external_id"]: [] for image in images.values()}
    for a in document["annotations"]:
        x, y, w, h = a["bbox"]
        assert a["area"] == pytest.approx(w * h)
        per_item[images[a["image_id"]]["external_id"]].append(
            {"class": names[a["category_id"]], "x": x, "y": y, "w": w, "h": h}
        )
    for i in range(20):
        assert key(per_item[f"img-{i:02d}"]) == key(final(i))
    split_only = json.loads(body(export(api, version, "coco", "test")))
    assert {image["split"] for image in split_only["images"]} == {"test"}
    assert len(split_only["images"]) == 10


def test_yolo_export_holds_images_labels_and_names(api, manager, detection_version):
    _, _, version = detection_version
    api.force_authenticate(manager)
    archive = zipfile.ZipFile(io.BytesIO(body(export(api, version, "yolo"))))
    names = archive.namelist()
    assert archive.read("classes.txt").decode() == "scratch\ndent\nBig crack\n"
    assert (
        'names:\n  0: "scratch"\n  1: "dent"\n  2: "Big crack"\n'
        in archive.read("data.yaml").decode()
    )
    manifest = [json.loads(x) for x in archive.read("manifest.jsonl").decode().splitlines()]
    row0 = next(m for m in manifest if m["external_id"] == "img-00")
    assert row0["file"] in names and row0["label_file"] in names
    # img-00: scratch at x=10.25, w=30.75 of 200 px -> cx = 25.625 / 200 = 0.128125;
    # y=20.5, h=12 of 100 px -> cy = 0.265; w = 0.15375; h = 0.12; second box class 0 too.
    lines = archive.read(row0["label_file"]).decode().splitlines()
    assert "0 0.128125 0.265000 0.153750 0.120000" in lines
    assert "0 0.800000 0.500000 0.100000 0.900000" in lines
    empty = next(m for m in manifest if m["external_id"] == "img-19")
    assert archive.read(empty["label_file"]) == b""  # nothing there


def test_a_classification_version_offers_no_box_formats(api, manager, labeled_project):
    version = build(labeled_project["project"], manager)
    api.force_authenticate(manager)
    response = export(api, version, "coco")
    assert response.status_code == 400
    assert "coco" not in response.json()["detail"].split("got")[0]


def reimported(project) -> dict[str, list]:
    return {
        a.item.external_id: a.value_boxes
        for a in Annotation.objects.filter(project=project, is_current=True).select_related("item")
    }


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_exports_re_import_to_the_same_boxes(api, manager, detection_version, fmt):
    _, _, version = detection_version
    api.force_authenticate(manager)
    data = body(export(api, version, fmt))
    copy = make_project(manager, name=f"Copy {fmt}")
    make_image_items(copy, 20)
    response = api.post(
        f"/api/v1/projects/{copy.pk}/annotations/import/?labeler=roundtrip",
        data=data,
        content_type="application/json" if fmt == "coco" else "application/zip",
    )
    assert response.status_code == 201, response.content
    boxes = reimported(copy)
    assert len(boxes) == 20
    for i in range(20):
        assert key(boxes[f"img-{i:02d}"]) == key(final(i)), i


def test_parquet_carries_the_boxes_as_json_text(api, manager, detection_version):
    _, _, version = detection_version
    api.force_authenticate(manager)
    table = pq.read_table(io.BytesIO(body(export(api, version, "parquet"))))
    boxes = [json.loads(v) for v in table.column("boxes").to_pylist()]
    assert key(boxes[5]) == key(final(5))
    assert table.column("image_width").to_pylist()[0] == WIDTH


def test_lineage_of_a_version_without_an_agreement_run_has_no_dangling_edges(
    api, manager, detection_version
):
    _, _, version = detection_version
    assert version.request["agreement_run"] is None
    assert version.lineage["agreement_run"] is None
    api.force_authenticate(manager)
    response = api.get(f"/api/v1/datasets/{version.pk}/lineage/")
    assert response.status_code == 200, response.content
    graph = response.json()
    graph = graph.get("graph", graph)
    nodes = {n["id"] for n in graph["nodes"]}
    assert "annotation_summary:lena" in nodes and all(
        e["from"] in nodes and e["to"] in nodes for e in graph["edges"]
    )


def test_a_version_built_from_a_run_holds_its_consensus_boxes(api, manager, make_user):
    from tests.consistency.box_project import build_detection_project, run_agreement

    project, labels, _, _, items = build_detection_project(manager, make_user, n_items=12)
    run = run_agreement(project)
    consensus = {c.item_id: c for c in Consensus.objects.filter(run=run)}
    agreed = {i for i, c in consensus.items() if c.status != "disputed" and c.value_boxes}
    assert agreed, "the synthetic project should have items whose boxes agree"
    version = build(project, manager, agreement_run=run.pk, seed=1)
    assert version.status == "succeeded", version.error
    api.force_authenticate(manager)
    rows = {
        r["external_id"]: r
        for r in map(json.loads, body(export(api, version, "jsonl")).splitlines())
    }
    by_external = {item.pk: key for key, item in items.items()}
    assert set(rows) == {by_external[i] for i in agreed}  # disputed items left out
    for item_id in agreed:
        row = rows[by_external[item_id]]
        assert row["final_label_source"] == "consensus"
        expected = [
            {k: b[k] for k in ("class", "x", "y", "w", "h")} for b in consensus[item_id].value_boxes
        ]
        assert key(row["boxes"]) == key(expected)
    everything = build(project, manager, agreement_run=run.pk, seed=1, include_unresolved=True)
    assert everything.row_count == len([c for c in consensus.values() if c.value_boxes is not None])
