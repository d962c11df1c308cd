"""Box imports into a detection project: historical labels (JSON, CSV), COCO, YOLO and
Label Studio rectangles. Coordinates are checked against conversions worked by hand."""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest

from labeling import services
from labeling.models import Annotation, GoldLabel, SourceBatch, TaskType
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db

CLASSES = [{"key": "scratch"}, {"key": "dent"}, {"key": "Big crack"}]
WIDTH, HEIGHT = 200, 100


@pytest.fixture
def boxes_project(manager):
    return services.create_project(
        name="Screens",
        task_type=TaskType.DETECTION,
        classes=CLASSES,
        overlap=2,
        created_by=manager,
    )


@pytest.fixture
def box_items(boxes_project):
    # 200 x 100 pixel images; sizes set as the worker would after ingest.
    out = []
    for n in (1, 2, 3):
        item = services.create_image_item(
            project=boxes_project, external_id=f"img-{n}", image_bytes=png_bytes(200, 100)
        )
        item.width, item.height = 200, 100
        item.save(update_fields=["width", "height"])
        out.append(item)
    return out


@pytest.fixture
def client(api, manager):
    return api.as_user(manager)


def url(project, query=""):
    return f"/api/v1/projects/{project.pk}/annotations/import/{query}"


def stored(project):
    """{(item external id, labeler): boxes} of the current annotations."""
    return {
        (a.item.external_id, a.labeler.username): a.value_boxes
        for a in Annotation.objects.filter(project=project, is_current=True).select_related(
            "item", "labeler"
        )
    }


def box(cls, x, y, w, h):
    return {"class": cls, "x": float(x), "y": float(y), "w": float(w), "h": float(h)}


# --- Historical labels -------------------------------------------------------------------
def test_json_rows_carry_box_lists_and_an_empty_list_is_nothing_there(
    client, boxes_project, box_items
):
    rows = [
        {"item": "img-1", "labeler": "ana", "value": [box("dent", 10, 20, 30, 40)]},
        {"item": "img-2", "labeler": "ana", "value": []},
    ]
    response = client.post(url(boxes_project), data=rows, format="json")
    assert response.status_code == 201, response.content
    assert stored(boxes_project) == {
        ("img-1", "ana"): [box("dent", 10, 20, 30, 40)],
        ("img-2", "ana"): [],
    }


def test_csv_value_holds_boxes_as_json_text(client, boxes_project, box_items):
    value = json.dumps([{"class": "Big crack", "x": 1, "y": 2, "w": 3, "h": 4}])
    body = "item,labeler,value,gold\nimg-3,bo," + '"' + value.replace('"', '""') + '",true\n'
    response = client.post(url(boxes_project), data=body, content_type="text/csv")
    assert response.status_code == 201, response.content
    assert stored(boxes_project) == {("img-3", "bo"): [box("Big crack", 1, 2, 3, 4)]}
    assert GoldLabel.objects.get(item=box_items[2]).value_boxes == [box("Big crack", 1, 2, 3, 4)]


def test_a_box_outside_the_image_rejects_the_file_naming_row_and_field(
    client, boxes_project, box_items
):
    rows = [
        {"item": "img-1", "labeler": "ana", "value": [box("dent", 10, 20, 30, 40)]},
        {"item": "img-2", "labeler": "ana", "value": [box("dent", 190, 20, 30, 40)]},
        {"item": "img-3", "labeler": "ana", "value": [box("rust", 1, 1, 2, 2)]},
    ]
    response = client.post(url(boxes_project), data=rows, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "value"), (3, "value")]
    assert "reaches outside the 200x100 image" in errors[0]["message"]
    assert "unknown class 'rust'" in errors[1]["message"]
    assert not Annotation.objects.exists()
    assert not SourceBatch.objects.filter(kind="annotations").exists()


# --- COCO --------------------------------------------------------------------------------
def coco_document():
    return {
        "images": [
            {"id": 7, "file_name": "photos/img-1.png", "width": 200, "height": 100},
            {"id": 8, "file_name": "img-2.png", "width": 200, "height": 100},
            {"id": 9, "external_id": "img-3", "file_name": "x.png", "width": 200, "height": 100},
        ],
        "categories": [{"id": 1, "name": "scratch"}, {"id": 5, "name": "Big crack"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [10.5, 20, 30, 40]},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "labeler": "bo"},
            {"id": 3, "image_id": 9, "category_id": 1, "bbox": [100, 50, 99, 49]},
        ],
    }


def test_coco_boxes_land_per_image_and_labeler(client, boxes_project, box_items):
    response = client.post(url(boxes_project, "?labeler=ana"), data=coco_document(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["format"] == "coco"
    assert stored(boxes_project) == {
        ("img-1", "ana"): [box("Big crack", 10.5, 20, 30, 40)],
        ("img-1", "bo"): [box("scratch", 0, 0, 5, 5)],
        ("img-2", "ana"): [],  # listed without annotations: nothing there
        ("img-3", "ana"): [box("scratch", 100, 50, 99, 49)],
    }


def test_coco_without_a_labeler_names_the_image(client, boxes_project, box_items):
    document = coco_document()
    document["annotations"] = document["annotations"][:1]
    response = client.post(url(boxes_project), data=document, format="json")
    assert response.status_code == 400
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "images[0].labeler")]
    assert not Annotation.objects.exists()


def test_coco_unknown_category_and_bad_bbox_store_nothing(client, boxes_project, box_items):
    document = coco_document()
    document["annotations"][0]["category_id"] = 99
    document["annotations"][2]["bbox"] = [1, 2, 3]
    response = client.post(url(boxes_project, "?labeler=ana"), data=document, format="json")
    assert response.status_code == 400
    fields = {(e["row"], e["field"]) for e in response.json()["errors"]}
    assert fields == {(1, "annotations[0].category_id"), (3, "annotations[2].bbox")}
    assert not Annotation.objects.exists()


def test_coco_category_that_is_not_a_class_is_reported(client, boxes_project, box_items):
    document = coco_document()
    document["categories"][1]["name"] = "crack"
    response = client.post(url(boxes_project, "?labeler=ana"), data=document, format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["row"], error["field"]) == (1, "images[0].value")
    assert "unknown class 'crack'" in error["message"]


def test_coco_into_a_classification_project_is_refused(client, project):
    response = client.post(url(project, "?format=coco"), data=coco_document(), format="json")
    assert response.status_code == 400
    assert "detection project only" in response.json()["detail"]


# --- YOLO --------------------------------------------------------------------------------
def yolo_zip(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_yolo_lines_are_converted_with_the_image_size(client, boxes_project, box_items):
    data = yolo_zip(
        {
            "images/train/img-1.png": png_bytes(200, 100),
            "labels/train/img-1.txt": "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n",
            "images/val/img-2.png": png_bytes(200, 100),  # no label file: nothing there
            "classes.txt": "Big crack\nscratch\n",
        }
    )
    response = client.post(
        url(boxes_project, "?labeler=cy&gold=true"), data=data, content_type="application/zip"
    )
    assert response.status_code == 201, response.content
    # cx=0.5, w=0.2 of 200 px: x = (0.5 - 0.1) * 200 = 80, w = 40; cy=0.5, h=0.4 of 100 px:
    # y = (0.5 - 0.2) * 100 = 30, h = 40. Index 1 is "scratch" in classes.txt.
    assert stored(boxes_project) == {
        ("img-1", "cy"): [box("scratch", 80, 30, 40, 40), box("Big crack", 0, 0, 40, 20)],
        ("img-2", "cy"): [],
    }
    assert GoldLabel.objects.filter(item__project=boxes_project).count() == 2


def test_yolo_uses_the_project_class_order_and_data_yaml(client, boxes_project, box_items):
    data = yolo_zip(
        {
            "img-1.png": png_bytes(200, 100),
            "img-1.txt": "2 0.5 0.5 1 1\n",
        }
    )
    response = client.post(
        url(boxes_project, "?format=yolo&labeler=cy"), data=data, content_type="application/zip"
    )
    assert response.status_code == 201, response.content
    assert stored(boxes_project)[("img-1", "cy")] == [box("Big crack", 0, 0, 200, 100)]

    data = yolo_zip(
        {
            "data.yaml": "names:\n  0: dent\n  1: scratch\n",
            "images/img-2.png": png_bytes(200, 100),
            "labels/img-2.txt": "0 0.25 0.25 0.5 0.5\n",
        }
    )
    response = client.post(
        url(boxes_project, "?labeler=cy"), data=data, content_type="application/zip"
    )
    assert response.status_code == 201, response.content
    assert stored(boxes_project)[("img-2", "cy")] == [box("dent", 0, 0, 100, 50)]


def test_yolo_bad_line_names_the_file_and_line(client, boxes_project, box_items):
    data = yolo_zip(
        {
            "images/img-1.png": png_bytes(200, 100),
            "labels/img-1.txt": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n",
            "images/img-2.png": png_bytes(200, 100),
            "labels/img-2.txt": "0 50 50 20 20\n",
            "labels/lost.txt": "0 0.5 0.5 0.1 0.1\n",
        }
    )
    response = client.post(
        url(boxes_project, "?labeler=cy"), data=data, content_type="application/zip"
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [
        (1, "labels/img-1.txt"),
        (2, "labels/img-2.txt"),
        (None, "labels/lost.txt"),
    ]
    assert errors[0]["message"].startswith("line 2: class index 7")
    assert "normalised" in errors[1]["message"]
    assert not Annotation.objects.exists()


def test_yolo_needs_a_labeler(client, boxes_project, box_items):
    data = yolo_zip({"img-1.png": png_bytes(200, 100)})
    response = client.post(url(boxes_project), data=data, content_type="application/zip")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "labeler"


# --- Label Studio ------------------------------------------------------------------------
def label_studio_task(result, external_id="img-1"):
    return [
        {
            "id": 1,
            "data": {"image": "https://img.example.org/1.png", "external_id": external_id},
            "annotations": [
                {"completed_by": {"id": 3, "email": "Dee@Example.org"}, "result": result}
            ],
        }
    ]


def rectangle(x, y, w, h, label="dent", rotation=0):
    return {
        "id": "r1",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": rotation,
            "rectanglelabels": [label],
        },
    }


def test_label_studio_rectangles_are_converted_from_percent(client, boxes_project, box_items):
    tasks = label_studio_task([rectangle(10, 20, 30, 40), rectangle(0, 0, 50, 100, "scratch")])
    response = client.post(url(boxes_project), data=tasks, format="json")
    assert response.status_code == 201, response.content
    # 10 % of 200 px = 20, 20 % of 100 px = 20, 30 % of 200 = 60, 40 % of 100 = 40.
    assert stored(boxes_project) == {
        ("img-1", "dee@example.org"): [box("dent", 20, 20, 60, 40), box("scratch", 0, 0, 100, 100)]
    }


def test_label_studio_empty_result_is_nothing_there(client, boxes_project, box_items):
    response = client.post(url(boxes_project), data=label_studio_task([]), format="json")
    assert response.status_code == 201, response.content
    assert stored(boxes_project) == {("img-1", "dee@example.org"): []}


def test_label_studio_rotated_rectangle_is_refused(client, boxes_project, box_items):
    tasks = label_studio_task([rectangle(10, 20, 30, 40, rotation=15)])
    response = client.post(url(boxes_project), data=tasks, format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["row"], error["field"]) == (1, "annotations[0].result[0]")
    assert "rotated" in error["message"]
    assert not Annotation.objects.exists()


def test_label_studio_choices_in_a_detection_project_are_not_nothing_there(
    client, boxes_project, box_items
):
    choice = {"type": "choices", "value": {"choices": ["dent"]}}
    response = client.post(url(boxes_project), data=label_studio_task([choice]), format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["row"], error["field"]) == (1, "annotations[0].result")
    assert "no rectanglelabels" in error["message"]


def test_coco_with_a_byte_order_mark_is_recognised(client, boxes_project, box_items):
    data = b"\xef\xbb\xbf" + json.dumps(coco_document()).encode()
    response = client.post(
        url(boxes_project, "?labeler=ana"), data=data, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["format"] == "coco"


def test_label_studio_rectangles_round_trip_to_the_same_pixels(client, boxes_project, box_items):
    """Boxes written as Label Studio percentages (as its exporter writes them, full
    floats) come back as the same 2-decimal pixel boxes."""
    rng = random.Random(4)
    boxes = []
    for _ in range(25):
        w, h = round(rng.uniform(1, 100), 2), round(rng.uniform(1, 50), 2)
        x, y = round(rng.uniform(0, WIDTH - w), 2), round(rng.uniform(0, HEIGHT - h), 2)
        boxes.append(box(rng.choice(["scratch", "dent", "Big crack"]), x, y, w, h))
    results = [
        {
            **rectangle(
                b["x"] / WIDTH * 100,
                b["y"] / HEIGHT * 100,
                b["w"] / WIDTH * 100,
                b["h"] / HEIGHT * 100,
                b["class"],
            ),
            "id": f"r{n}",
        }
        for n, b in enumerate(boxes)
    ]
    response = client.post(url(boxes_project), data=label_studio_task(results), format="json")
    assert response.status_code == 201, response.content
    assert stored(boxes_project) == {("img-1", "dee@example.org"): boxes}
