import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeling import services
from labeling.models import Annotation, Item, PayloadKind


@pytest.mark.django_db
def test_duplicate_external_id_in_a_project_is_rejected_by_the_database(project):
    Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="y")


@pytest.mark.django_db
def test_same_external_id_is_allowed_in_another_project(project, manager):
    other = services.create_project(
        name="Other", classes=[{"key": "a"}, {"key": "b"}], created_by=manager
    )
    Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    Item.objects.create(project=other, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    assert Item.objects.filter(external_id="a-1").count() == 2


@pytest.mark.django_db
def test_second_current_annotation_for_item_and_labeler_is_impossible(project, labelers):
    item = Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    scratch = project.classes.get(key="scratch")
    Annotation.objects.create(
        project=project,
        item=item,
        labeler=labelers[0],
        label_class=scratch,
        created_at="2026-01-01T00:00:00Z",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(
            project=project,
            item=item,
            labeler=labelers[0],
            label_class=scratch,
            created_at="2026-01-02T00:00:00Z",
        )


@pytest.mark.django_db
def test_annotation_without_any_value_is_rejected_by_the_database(project, labelers):
    item = Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(
            project=project, item=item, labeler=labelers[0], created_at="2026-01-01T00:00:00Z"
        )


@pytest.mark.django_db
def test_revision_keeps_the_old_row_and_links_to_it(project, labelers):
    item = Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    first = services.submit_annotation(item=item, labeler=labelers[0], value="scratch")
    second = services.submit_annotation(item=item, labeler=labelers[0], value="dent")

    rows = Annotation.objects.filter(item=item, labeler=labelers[0]).order_by("id")
    assert [(a.label_class.key, a.is_current) for a in rows] == [
        ("scratch", False),
        ("dent", True),
    ]
    assert second.supersedes_id == first.pk
    assert second.guideline.version == 1


@pytest.mark.django_db
def test_unknown_class_is_a_validation_error_naming_the_known_classes(project, labelers):
    item = Item.objects.create(project=project, external_id="a-1", kind=PayloadKind.TEXT, text="x")
    with pytest.raises(ValidationError, match="unknown class 'crack'.*no_defect"):
        services.submit_annotation(item=item, labeler=labelers[0], value="crack")
    assert not Annotation.objects.exists()


@pytest.mark.django_db
def test_project_with_duplicate_class_keys_is_rejected(manager):
    with pytest.raises(ValidationError, match="duplicate class keys: a"):
        services.create_project(name="Dup", classes=[{"key": "a"}, {"key": "a"}])


@pytest.mark.django_db
def test_guideline_versions_increase(project, manager):
    v2 = services.publish_guideline(project=project, text="Clearer.", published_by=manager)
    assert v2.version == 2
    assert list(project.guidelines.values_list("version", flat=True)) == [2, 1]
