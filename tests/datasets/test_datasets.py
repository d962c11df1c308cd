"""Dataset versions: building, balanced splits, reproducibility and immutability."""

import json
from collections import Counter, defaultdict

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import DatasetRow, DatasetStatus, ImmutableError
from labeling import services as labeling_services
from labeling.models import LabelClass
from provenance.models import Event
from tests.datasets.conftest import build, label_items, make_items, run_majority, sme_decision

pytestmark = pytest.mark.django_db


def rows_of(version):
    return [
        json.loads(line)
        for line in version.rows.order_by("position").values_list("line", flat=True)
    ]


def test_a_version_holds_every_agreed_item_with_its_provenance(labeled_project, batch):
    version = build(labeled_project["project"], splits={"train": 0.6, "dev": 0.2, "test": 0.2})
    assert version.status == DatasetStatus.SUCCEEDED
    assert version.row_count == 100
    assert version.split_counts == {"train": 60, "dev": 20, "test": 20}
    assert version.class_counts["all"] == {"no_defect": 70, "scratch": 30}
    row = rows_of(version)[0]
    assert row["external_id"] == "item-000"
    assert row["label"] == "scratch"
    assert row["n_labels"] == 3 and row["agreement"] == 1.0 and row["confidence"] == 1.0
    assert row["labelers"] == ["labeler1", "labeler2", "labeler3"]
    assert row["guideline_versions"] == [1]
    assert row["source_batch"] == batch.pk
    assert row["metadata"] == {"factory": "B", "serial": "S00"}
    assert row["image_url"] == "https://img.example.com/item-000.jpg"
    assert Event.objects.filter(verb="dataset.published", subject_id=str(version.pk)).exists()


def test_each_split_holds_defective_items_in_proportion(labeled_project):
    version = build(labeled_project["project"], splits={"train": 0.6, "dev": 0.2, "test": 0.2})
    per_split = Counter((r["split"], r["label"]) for r in rows_of(version))
    # 30 defective at 60/20/20 -> 18/6/6 exactly (each within one item of the share)
    assert per_split[("train", "scratch")] == 18
    assert per_split[("dev", "scratch")] == 6
    assert per_split[("test", "scratch")] == 6
    assert per_split[("train", "no_defect")] == 42


def test_stratifying_by_class_and_factory_balances_every_cell(labeled_project):
    version = build(
        labeled_project["project"],
        splits={"train": 0.6, "dev": 0.2, "test": 0.2},
        stratify_by=["label", "metadata.factory"],
        seed=11,
    )
    cells = defaultdict(Counter)
    for row in rows_of(version):
        cells[(row["label"], row["metadata"]["factory"])][row["split"]] += 1
    assert len(cells) == 4
    for cell, counts in cells.items():
        n = sum(counts.values())
        for split, share in {"train": 0.6, "dev": 0.2, "test": 0.2}.items():
            assert abs(counts[split] - n * share) < 1, (cell, counts)


def test_items_sharing_a_group_key_never_straddle_splits(labeled_project):
    version = build(labeled_project["project"], group_by="serial", seed=5)
    splits_of_serial = defaultdict(set)
    for row in rows_of(version):
        splits_of_serial[row["metadata"]["serial"]].add(row["split"])
    assert len(splits_of_serial) == 25
    assert all(len(s) == 1 for s in splits_of_serial.values())
    assert version.params["group_by"] == "serial"


def test_same_parameters_on_the_same_data_give_the_same_hash(labeled_project):
    project = labeled_project["project"]
    first = build(project, seed=3, stratify_by=["label", "metadata.factory"])
    second = build(project, seed=3, stratify_by=["label", "metadata.factory"])
    assert first.pk != second.pk
    assert first.content_hash == second.content_hash
    assert len(first.content_hash) == 64
    assert build(project, seed=4).content_hash != first.content_hash


def test_a_published_version_refuses_changes_through_the_orm(labeled_project):
    version = build(labeled_project["project"])
    version.row_count = 1
    with pytest.raises(ImmutableError):
        version.save()
    with pytest.raises(ImmutableError):
        version.delete()
    with pytest.raises(ImmutableError):
        type(version).objects.filter(pk=version.pk).update(row_count=1)
    row = version.rows.first()
    row.label = "dent"
    with pytest.raises(ImmutableError):
        row.save()
    with pytest.raises(ImmutableError):
        DatasetRow.objects.filter(version=version).update(label="dent")
    with pytest.raises(ImmutableError):
        DatasetRow.objects.filter(version=version).delete()


def test_later_labels_merges_and_resolutions_do_not_change_a_published_version(
    labeled_project, manager, make_user
):
    project = labeled_project["project"]
    version = build(project)
    before = (version.content_hash, list(version.rows.values_list("line", flat=True)))
    # New labels, a class merge and an SME resolution, then a second run.
    late = make_user("late-labeler")
    labeling_services.set_membership(project=project, user=late, role="labeler")
    label_items(labeled_project["items"][:10], [late], lambda i, j: "dent")
    LabelClass.objects.filter(project=project, key="scratch").update(
        merged_into=LabelClass.objects.get(project=project, key="dent")
    )
    sme_decision(project, labeled_project["items"][:2], "no_defect", by=manager)
    run_majority(project)

    version.refresh_from_db()
    assert (version.content_hash, list(version.rows.values_list("line", flat=True))) == before
    newer = build(project)
    assert newer.content_hash != version.content_hash
    assert newer.params["class_merges"] == {"scratch": "dent"}


def test_merged_classes_map_to_their_root_and_the_mapping_is_recorded(labeled_project):
    project = labeled_project["project"]
    damage = labeling_services.add_label_class(project=project, key="damage")
    LabelClass.objects.filter(project=project, key="dent").update(merged_into=damage)
    LabelClass.objects.filter(project=project, key="scratch").update(
        merged_into=LabelClass.objects.get(project=project, key="dent")
    )
    version = build(project)
    assert version.params["class_merges"] == {"dent": "damage", "scratch": "damage"}
    assert version.class_counts["all"] == {"damage": 30, "no_defect": 70}


def test_resolutions_override_consensus_and_are_named_on_the_row(labeled_project, manager):
    project = labeled_project["project"]
    resolution = sme_decision(
        project,
        [labeled_project["items"][0]],
        "no_defect",
        by=manager,
        rationale="the mark is dust",
    )
    version = build(project)
    row = rows_of(version)[0]
    assert (row["label"], row["status"], row["resolution"]) == (
        "no_defect",
        "resolved",
        resolution.pk,
    )
    assert row["agreement"] == 0.0  # all three labelers said scratch


def test_disputed_and_borderline_items_are_left_out_unless_asked_for(project, labelers, batch):
    items = make_items(project, 3, batch=batch)
    votes = [["scratch", "dent", None], ["borderline", "borderline", "scratch"], ["dent"] * 3]
    label_items(items, labelers, lambda i, j: votes[i][j])
    run_majority(project)
    assert build(project).row_count == 1
    assert build(project, include_unresolved=True).row_count == 2
    assert build(project, include_unresolved=True, include_borderline=True).row_count == 3
    assert build(project, min_confidence=0.9, include_unresolved=True).row_count == 1


def test_filters_on_metadata_and_tags(labeled_project):
    project = labeled_project["project"]
    items = labeled_project["items"]
    tag = labeling_services.get_or_create_tags(project=project, names=["blurry"])["blurry"]
    for item in items[:5]:
        item.tags.add(tag)
    assert build(project, filters={"metadata.factory": "B"}).row_count == 34
    assert build(project, filters={"metadata.factory": ["A", "B"]}).row_count == 100
    assert build(project, filters={"tag": "blurry"}).row_count == 5


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"consensus": "vote"}, "consensus", "must be one of"),
        ({"min_confidence": 2}, "min_confidence", "between 0 and 1"),
        ({"include_borderline": "yes"}, "include_borderline", "true or false"),
        ({"splits": {"train": 0.5}}, "splits", "sum to 1"),
        ({"seed": -1}, "seed", "non-negative"),
        ({"stratify_by": ["factory"]}, "stratify_by", "metadata.<key>"),
        ({"filters": {"factory": "A"}}, "filters", "metadata.<key>"),
        ({"filters": {"metadata.factory": []}}, "filters", "empty list"),
        ({"agreement_run": 999999}, "agreement_run", "no agreement run"),
        ({"colour": "red"}, "request", "unknown field"),
    ],
)
def test_bad_requests_name_the_field(labeled_project, data, field, message):
    with pytest.raises(ValidationError) as info:
        services.validate_dataset_request(project=labeled_project["project"], data=data)
    assert message in " ".join(info.value.message_dict[field])


def test_without_a_succeeded_run_the_request_says_what_to_do(project):
    with pytest.raises(ValidationError, match="no succeeded agreement run"):
        services.validate_dataset_request(project=project, data={})


def test_postgres_triggers_refuse_raw_updates_of_a_published_version(labeled_project):
    from django.db import DatabaseError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the triggers exist on PostgreSQL only; SQLite relies on the ORM guards")
    version = build(labeled_project["project"])
    for sql in (
        "UPDATE provenance_datasetrow SET label='x' WHERE version_id=%s",
        "UPDATE provenance_datasetversion SET row_count=1 WHERE id=%s",
    ):
        with (
            pytest.raises(DatabaseError, match="immutable"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [version.pk])
