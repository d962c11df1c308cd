"""The rules of labeling.selectors: doctests, and the hand-worked cases of each rule."""

from __future__ import annotations

import doctest

import pytest

from labeling import selectors, services
from labeling.models import Item, MeasurementLevel, PayloadKind, Role, TaskType
from review import selectors as review_selectors


def test_selectors_doctests():
    assert doctest.testmod(selectors).failed == 0


def test_class_roots_follow_chains_and_stop_at_a_cycle_or_the_edge():
    # 3 -> 2 -> 1; 5 -> 6 -> 5 is a cycle (a data error); 7 points outside the project.
    parent = {1: None, 2: 1, 3: 2, 4: None, 5: 6, 6: 5, 7: 99}
    assert selectors.class_roots(parent) == {1: 1, 2: 1, 3: 1, 4: 4, 5: 6, 6: 5, 7: 7}


def test_label_value_is_the_class_key_else_the_number_else_the_text():
    assert selectors.label_value(class_key="dent", value_number=2.0, value_text="") == "dent"
    assert selectors.label_value(class_key=None, value_number=0.0, value_text="") == 0.0
    assert selectors.label_value(class_key=None, value_number=None, value_text="hi") == "hi"


@pytest.mark.django_db
def test_a_numeric_rating_reads_the_same_on_the_review_page_as_in_the_api(manager, make_user):
    """The review page once showed the text ("") of a numeric rating; every reader now
    gives its number."""
    project = services.create_project(
        name="Ratings",
        task_type=TaskType.RATING,
        level=MeasurementLevel.INTERVAL,
        created_by=manager,
    )
    rater = make_user("rater")
    services.set_membership(project=project, user=rater, role=Role.LABELER)
    item = Item.objects.create(project=project, external_id="r1", kind=PayloadKind.TEXT, text="x")
    annotation = services.submit_annotation(item=item, labeler=rater, value=4.5)
    assert selectors.annotation_value(annotation) == 4.5
    assert [row["value"] for row in review_selectors.item_labels([item])[item.pk]] == [4.5]
