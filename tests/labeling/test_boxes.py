"""Detection labels: the box validator and a labeler's submit through the service and REST."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from labeling import selectors, services
from labeling.boxes import BoxError, normalize_boxes
from labeling.models import Annotation, Item, TaskType

KEYS = {"scratch", "dent"}


def test_boxes_are_canonicalised_in_the_order_given():
    boxes = normalize_boxes(
        [
            {"class": "dent", "x": 1, "y": 2.004, "w": 3, "h": 4},
            {"label": "scratch", "x": 0, "y": 0, "w": 0.5, "h": 9},
        ],
        class_keys=KEYS,
    )
    assert boxes == [
        {"class": "dent", "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0},
        {"class": "scratch", "x": 0.0, "y": 0.0, "w": 0.5, "h": 9.0},
    ]


def test_nothing_there_is_an_empty_list_not_an_error():
    assert normalize_boxes([], class_keys=KEYS) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("dent", "list of boxes"),
        ([{"class": "crack", "x": 0, "y": 0, "w": 1, "h": 1}], "box 1: unknown class 'crack'"),
        ([{"class": "dent", "x": 0, "y": 0, "w": 0, "h": 1}], "box 1: w and h must be positive"),
        ([{"class": "dent", "x": -1, "y": 0, "w": 1, "h": 1}], "must not be negative"),
        ([{"class": "dent", "x": "1", "y": 0, "w": 1, "h": 1}], "box 1: x must be a number"),
        ([{"class": "dent", "x": True, "y": 0, "w": 1, "h": 1}], "box 1: x must be a number"),
        ([{"class": "dent", "x": float("nan"), "y": 0, "w": 1, "h": 1}], "finite"),
        ([{"class": "dent", "x": 0, "y": 0, "w": 1, "h": 1}, 3], "box 2: expected an object"),
    ],
)
def test_bad_boxes_are_refused_with_the_box_and_field_named(value, message):
    with pytest.raises(BoxError, match=message):
        normalize_boxes(value, class_keys=KEYS)


def test_a_box_outside_the_image_is_refused_when_the_size_is_known():
    box = {"class": "dent", "x": 90, "y": 0, "w": 20, "h": 10}
    assert normalize_boxes([box], class_keys=KEYS)  # size unknown: accepted
    with pytest.raises(BoxError, match="outside the 100x50 image"):
        normalize_boxes([box], class_keys=KEYS, image_size=(100, 50))
    edge = {"class": "dent", "x": 90, "y": 0, "w": 10.5, "h": 50.5}
    assert normalize_boxes([edge], class_keys=KEYS, image_size=(100, 50))  # rounding slack


@pytest.fixture
def detection_project(db):
    manager = get_user_model().objects.create_user("boss", is_staff=True)
    project = services.create_project(
        name="Boxes",
        task_type=TaskType.DETECTION,
        classes=[{"key": "scratch"}, {"key": "dent"}],
        created_by=manager,
    )
    return project


def test_a_detection_project_needs_classes_and_nominal_level(db):
    with pytest.raises(ValidationError, match="detection project needs at least one class"):
        services.create_project(name="x", task_type=TaskType.DETECTION, classes=[])
    with pytest.raises(ValidationError, match="nominal"):
        services.create_project(
            name="y", task_type=TaskType.DETECTION, level="interval", classes=[{"key": "a"}]
        )


def test_submit_stores_boxes_and_the_value_reads_them_back(detection_project):
    item = Item.objects.create(
        project=detection_project,
        external_id="img-1",
        image_url="https://x/1.png",
        width=640,
        height=480,
    )
    labeler = get_user_model().objects.create_user("ann")
    boxes = [{"class": "scratch", "x": 10, "y": 20, "w": 30, "h": 40}]
    annotation = services.submit_annotation(item=item, labeler=labeler, value=boxes)
    stored = Annotation.objects.get(pk=annotation.pk)
    assert stored.label_class_id is None
    assert selectors.annotation_value(stored) == [
        {"class": "scratch", "x": 10.0, "y": 20.0, "w": 30.0, "h": 40.0}
    ]
    empty = services.submit_annotation(item=item, labeler=labeler, value=[])
    assert selectors.annotation_value(Annotation.objects.get(pk=empty.pk)) == []
    with pytest.raises(ValidationError, match="outside the 640x480 image"):
        services.submit_annotation(
            item=item, labeler=labeler, value=[{"class": "dent", "x": 600, "y": 0, "w": 80, "h": 9}]
        )
