"""Where each final label came from (``final_label_source``), decisions against ground
truth as conflicts, and reproducible builds: a version built from a run reads that run's
snapshot of the labels (issue 15, items 1 and 6)."""

from __future__ import annotations

import json

import pytest

from consistency import runs
from consistency.models import RunStatus
from datasets import exporters
from datasets.models import DatasetRow, DatasetVersion
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Annotation, GoldSource, LabelClass
from tests.datasets.conftest import build, label_items, make_items, sme_decision

pytestmark = pytest.mark.django_db


def real_run(project):
    """A run of the real engine (it records the label snapshot it read)."""
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 0, "slices": []})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def rows_of(version) -> dict[str, dict]:
    return {
        r["external_id"]: r for r in map(json.loads, version.rows.values_list("line", flat=True))
    }


@pytest.fixture
def world(project, labelers, manager):
    """i0: labels dent x3, ground truth scratch, an SME decided no_defect (a conflict);
    i1: scratch x3, SME decided dent; i2: no_defect x3 (consensus only)."""
    items = make_items(project, 3)
    votes = [["dent"] * 3, ["scratch"] * 3, ["no_defect"] * 3]
    label_items(items, labelers, lambda i, j: votes[i][j])
    labeling_services.set_gold_label(item=items[0], value="scratch", actor=manager)
    run = real_run(project)
    sme_decision(project, [items[0]], "no_defect", by=manager, rationale="looks clean")
    sme_decision(project, [items[1]], "dent", by=manager)
    return {"items": items, "run": run}


def test_rows_name_the_source_of_their_final_label_ground_truth_first(project, world):
    rows = rows_of(build(project, agreement_run=world["run"].pk))
    got = {ext: (r["label"], r["final_label_source"]) for ext, r in rows.items()}
    assert got == {
        # ground truth wins over the SME decision that contradicts it
        "item-000": ("scratch", "ground_truth"),
        "item-001": ("dent", "sme"),
        "item-002": ("no_defect", "consensus"),
    }


def test_new_versions_list_the_column_and_csv_carries_it(project, world, api, manager):
    version = build(project, agreement_run=world["run"].pk)
    assert [c["name"] for c in version.columns][:4] == [
        "external_id",
        "item_id",
        "label",
        "final_label_source",
    ]
    assert version.params["format_version"] == 2
    csv = b"".join(exporters.stream_csv(version)).decode()
    header = csv.splitlines()[0].split(",")
    assert header[3] == '"final_label_source"'
    assert "ground_truth" in csv.splitlines()[1]


def test_a_version_built_before_the_column_re_exports_byte_identically(project, world):
    """A version whose stored columns and rows predate final_label_source (format 1) is
    exported exactly from what it stored: no new column appears."""
    new = build(project, agreement_run=world["run"].pk)
    old_columns = [c for c in new.columns if c["name"] != "final_label_source"]
    old = DatasetVersion.objects.create(
        project=project, request=new.request, params={**new.params, "format_version": 1}
    )
    for row in new.rows.all():
        record = json.loads(row.line)
        record.pop("final_label_source")
        DatasetRow.objects.create(
            version=old,
            position=row.position,
            external_id=row.external_id,
            split=row.split,
            label=row.label,
            item_id_ref=row.item_id_ref,
            line=json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        )
    old.columns = old_columns
    old.status = "succeeded"
    old.save()
    csv = b"".join(exporters.stream_csv(old))
    assert b"final_label_source" not in csv
    assert csv == b"".join(exporters.stream_csv(old))
    assert b"final_label_source" not in b"".join(exporters.stream_jsonl(old))
    assert b"final_label_source" not in b"".join(exporters.stream_imagefolder(old))


def test_error_analysis_counts_references_by_source(project, world, manager):
    from consistency import model_runs

    i0, i1, i2 = world["items"]
    run = model_runs.upload_model_run(
        project=project,
        created_by=manager,
        name="m",
        predictions=[
            {"item": i0.external_id, "value": "scratch"},  # right against ground truth
            {"item": i1.external_id, "value": "scratch"},  # wrong against the SME's dent
            {"item": i2.external_id, "value": "no_defect"},  # right against consensus
        ],
    )
    reference = model_runs.error_analysis(run)["reference"]
    assert reference["final_label_source"] == {"ground_truth": 1, "sme": 1, "consensus": 1}
    assert (reference["n_gold"], reference["n_consensus"]) == (2, 1)


def test_a_decision_against_ground_truth_is_a_conflict_in_the_history(project, world, api, manager):
    i0, i1, _ = world["items"]
    api.force_authenticate(manager)
    body = api.get(f"/api/v1/items/{i0.pk}/history/").json()
    assert body["gold"]["value"] == "scratch"  # never overwritten
    assert body["decision"]["label"] == "no_defect"
    assert body["decision"]["conflicts_with_ground_truth"] is True
    assert [(c["label"], c["ground_truth"]) for c in body["conflicts"]] == [
        ("no_defect", "scratch")
    ]
    resolutions = [e for e in body["timeline"] if e["type"] == "resolution"]
    assert [e["conflicts_with_ground_truth"] for e in resolutions] == [True]
    # an item without ground truth has a decision and no conflict
    other = api.get(f"/api/v1/items/{i1.pk}/history/").json()
    assert other["decision"]["conflicts_with_ground_truth"] is False
    assert other["conflicts"] == []


def test_a_decision_agreeing_with_ground_truth_after_a_merge_is_no_conflict(
    project, world, manager
):
    from datasets.selectors import item_history
    from labeling.models import Item

    i0 = world["items"][0]
    # ground truth scratch; a decision for dent, then dent merged into scratch
    sme_decision(project, [i0], "dent", by=manager)
    LabelClass.objects.filter(project=project, key="dent").update(
        merged_into=LabelClass.objects.get(project=project, key="scratch")
    )
    history = item_history(Item.objects.select_related("source_batch__created_by").get(pk=i0.pk))
    assert history["decision"]["conflicts_with_ground_truth"] is False
    assert history["gold"]["source"] == GoldSource.IMPORT


# --- reproducible builds ------------------------------------------------------------------


def test_a_label_revised_after_the_run_does_not_change_a_version_built_from_it(
    project, labelers, manager
):
    items = make_items(project, 4)
    votes = [
        ["dent", "dent", "scratch"],
        ["scratch", "scratch", "scratch"],
        ["no_defect", "no_defect", "dent"],
        ["dent", "dent", "dent"],
    ]
    label_items(items, labelers, lambda i, j: votes[i][j])
    run = real_run(project)
    before = build(project, agreement_run=run.pk)
    # After the run: labeler 3 revises item-000 to dent, labeler 1 revises item-001 twice
    # (a chain).
    labeling_services.submit_annotation(item=items[0], labeler=labelers[2], value="dent")
    labeling_services.submit_annotation(item=items[1], labeler=labelers[0], value="dent")
    labeling_services.submit_annotation(item=items[1], labeler=labelers[0], value="no_defect")
    after = build(project, agreement_run=run.pk)
    assert after.content_hash == before.content_hash
    assert b"".join(exporters.stream_jsonl(after)) == b"".join(exporters.stream_jsonl(before))
    row = rows_of(after)["item-000"]
    assert (row["agreement"], row["n_labels"]) == (pytest.approx(2 / 3), 3)
    assert after.params["labels_as_of"] == {
        "agreement_run": run.pk,
        "max_annotation_id": run.data_version["max_annotation_id"],
    }
    # the labels current now differ (the build did not simply miss the revisions)
    now = Annotation.objects.filter(item=items[0], is_current=True)
    assert sorted(now.values_list("label_class__key", flat=True)) == ["dent"] * 3


def test_the_snapshot_holds_exactly_the_labels_current_when_the_run_started(
    project, labelers, manager
):
    items = make_items(project, 3)
    label_items(items, labelers, lambda i, j: "scratch")
    labeling_services.submit_annotation(item=items[0], labeler=labelers[0], value="dent")
    run = real_run(project)
    current_then = set(
        Annotation.objects.filter(project=project, is_current=True).values_list("pk", flat=True)
    )
    labeling_services.submit_annotation(item=items[0], labeler=labelers[0], value="no_defect")
    labeling_services.submit_annotation(item=items[2], labeler=labelers[1], value="dent")
    snapshot = labeling_selectors.annotations_as_of(project, run.data_version["max_annotation_id"])
    assert set(snapshot.values_list("pk", flat=True)) == current_then
    assert snapshot.count() == run.data_version["n_annotations"] == 9
