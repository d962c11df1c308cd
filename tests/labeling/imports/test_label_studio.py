"""labeling.imports.label_studio: a Label Studio export mapped to Concord rows."""

from __future__ import annotations

import pytest

from labeling.imports import label_studio


@pytest.mark.parametrize(
    "completed_by, labeler",
    [
        ({"id": 3, "email": "Ana@Example.org", "first_name": "Ana"}, "ana@example.org"),
        ({"id": 3, "email": ""}, "ls-user-3"),
        (17, "ls-user-17"),
        (None, None),
    ],
)
def test_label_studio_completed_by_becomes_a_labeler_id(completed_by, labeler):
    assert label_studio.label_studio_labeler(completed_by) == labeler


def test_label_studio_result_value_follows_the_task_type():
    result = [
        {"type": "textarea", "value": {"text": ["first line", "second"]}},
        {"type": "choices", "value": {"choices": ["dent", "scratch"]}},
    ]
    assert label_studio._label_studio_value(result, "classification") == "dent"
    assert label_studio._label_studio_value(result, "transcription") == "first line\nsecond"
    assert (
        label_studio._label_studio_value([{"type": "rating", "value": {"rating": 4}}], "rating")
        == 4
    )
    assert label_studio._label_studio_value([], "classification") is None


def test_label_studio_detection_needs_data_and_annotations_in_every_task():
    assert label_studio.is_label_studio_export([{"data": {}, "annotations": []}])
    assert not label_studio.is_label_studio_export([{"item": "a", "labeler": "b", "value": "c"}])
    assert not label_studio.is_label_studio_export([])
