"""A dataset version is never published empty: filters that match no item are refused
when requested, and a build that leaves zero rows fails with a message saying why."""

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from tests.datasets.conftest import build

pytestmark = pytest.mark.django_db


def test_filters_matching_no_item_are_refused_naming_the_values_present(labeled_project):
    project = labeled_project["project"]
    with pytest.raises(ValidationError) as caught:
        services.request_dataset_version(
            project=project, requested_by=None, data={"filters": {"metadata.factory": "C"}}
        )
    message = caught.value.message_dict["filters"][0]
    assert "0 rows" in message and "metadata.factory has A, B" in message
    assert not project.dataset_versions.exists()


def test_a_tag_no_item_has_is_refused(labeled_project):
    with pytest.raises(ValidationError) as caught:
        services.request_dataset_version(
            project=labeled_project["project"],
            requested_by=None,
            data={"filters": {"tag": "blurry"}},
        )
    assert "blurry" in caught.value.message_dict["filters"][0]


def test_a_build_below_every_confidence_fails_and_is_not_published(labeled_project, labelers):
    project = labeled_project["project"]
    # One labeler disagrees on every item: support 2/3 everywhere.
    from labeling.models import Annotation, LabelClass

    other = LabelClass.objects.get(project=project, key="no_defect")
    Annotation.objects.filter(
        project=project, labeler=labelers[0], item__external_id__lt="item-030"
    ).update(label_class=other)
    scratch = LabelClass.objects.get(project=project, key="scratch")
    Annotation.objects.filter(
        project=project, labeler=labelers[0], item__external_id__gte="item-030"
    ).update(label_class=scratch)
    from tests.datasets.conftest import run_majority

    run_majority(project)
    version = build(project, min_confidence=0.9)
    assert version.status == "failed"
    assert version.row_count == 0
    assert "0 rows" in version.error and "100 items have a final label" in version.error
    assert "min_confidence=0.9" in version.error
