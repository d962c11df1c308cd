"""An item's history and a version's lineage."""

import pytest

from labeling import services as labeling_services
from labeling.models import LabelClass, SourceBatch
from provenance import events
from review.models import Resolution, ResolutionAction
from tests.datasets.conftest import build, label_items, make_items, run_majority, sme_decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def storied_item(project, labelers, batch, manager):
    """An item imported in a batch, labeled, revised, merged, gold-set and resolved."""
    item = make_items(project, 1, batch=batch, metadata=lambda i: {"factory": "A"})[0]
    events.item_imported(
        project_id=project.pk,
        actor_id=manager.pk,
        item_id=item.pk,
        batch_id=batch.pk,
        after={"external_id": item.external_id},
    )
    label_items([item], labelers, lambda i, j: ["scratch", "dent", "scratch"][j])
    labeling_services.publish_guideline(
        project=project,
        text="Dents are deformations.",
        published_by=manager,
        change_note="dent vs scratch clarified",
    )
    labeling_services.submit_annotation(
        item=item,
        labeler=labelers[1],
        value="scratch",
        comment="on second look",
        reason="guideline v2",
    )
    scratch = LabelClass.objects.get(project=project, key="scratch")
    dent = LabelClass.objects.get(project=project, key="dent")
    events.class_merged(
        project_id=project.pk,
        actor_id=manager.pk,
        class_id=scratch.pk,
        before={"class": "scratch", "merged_into": None},
        after={"class": "scratch", "merged_into": "dent", "flag": None},
        reason="labelers cannot tell them apart",
    )
    labeling_services.set_gold_label(item=item, value="scratch", actor=manager, reason="expert")
    resolution = Resolution.objects.create(
        project=project,
        action=ResolutionAction.SET_LABEL,
        rationale="clear scratch",
        label_class=scratch,
        decided_by=manager,
    )
    resolution.items.set([item])
    return {"item": item, "resolution": resolution, "dent": dent}


def test_history_tells_the_whole_story_in_order(storied_item, api, manager, batch):
    item = storied_item["item"]
    api.force_authenticate(manager)
    response = api.get(f"/api/v1/items/{item.pk}/history/")
    assert response.status_code == 200
    story = response.json()
    assert story["source_batch"]["origin"] == "phones-2026-11.jsonl"
    assert story["source_batch"]["created_by"] == "manager"
    assert story["item"]["metadata"] == {"factory": "A"}
    verbs = [entry["verb"] for entry in story["timeline"]]
    assert verbs.index("item.imported") < verbs.index("annotation.created")
    annotations = [e for e in story["timeline"] if e["type"] == "annotation"]
    assert len(annotations) == 4
    revision = next(e for e in annotations if e["verb"] == "annotation.revised")
    assert (revision["actor"], revision["value"], revision["guideline_version"]) == (
        "labeler2",
        "scratch",
        2,
    )
    assert revision["reason"] == "guideline v2" and revision["comment"] == "on second look"
    superseded = next(e for e in annotations if e["annotation"] == revision["supersedes"])
    assert superseded["is_current"] is False and superseded["value"] == "dent"
    guideline = [e for e in story["timeline"] if e["type"] == "guideline"]
    assert [e["after"]["version"] for e in guideline] == [1, 2]
    assert guideline[1]["reason"] == "dent vs scratch clarified"
    merge = next(e for e in story["timeline"] if e["type"] == "merge")
    assert merge["reason"] == "labelers cannot tell them apart" and merge["actor"] == "manager"
    gold = next(e for e in story["timeline"] if e["type"] == "gold")
    assert gold["after"]["value"] == "scratch" and gold["reason"] == "expert"
    resolution = next(e for e in story["timeline"] if e["type"] == "resolution")
    assert resolution["reason"] == "clear scratch" and resolution["label"] == "scratch"
    times = [entry["at"] for entry in story["timeline"]]
    assert times == sorted(times)


def test_history_makes_a_fixed_number_of_queries(
    storied_item, api, manager, django_assert_max_num_queries, labelers
):
    api.force_authenticate(manager)
    with django_assert_max_num_queries(12) as small:
        api.get(f"/api/v1/items/{storied_item['item'].pk}/history/")
    item = storied_item["item"]
    for _ in range(3):  # more revisions: the query count does not grow
        labeling_services.submit_annotation(item=item, labeler=labelers[0], value="dent")
    with django_assert_max_num_queries(len(small.captured_queries)):
        api.get(f"/api/v1/items/{item.pk}/history/")


def test_labelers_may_not_read_history_and_strangers_get_404(
    storied_item, api, labelers, make_user
):
    api.force_authenticate(labelers[0])
    assert api.get(f"/api/v1/items/{storied_item['item'].pk}/history/").status_code == 403
    api.force_authenticate(make_user("stranger"))
    assert api.get(f"/api/v1/items/{storied_item['item'].pk}/history/").status_code == 404


def test_lineage_names_every_source_batch_and_resolution_that_contributed(
    project, labelers, manager, api
):
    batches = [
        SourceBatch.objects.create(project=project, kind="items", origin=f"b{i}.csv")
        for i in range(2)
    ]
    items = make_items(project, 6, batch=batches[0]) + make_items(
        project, 4, batch=batches[1], prefix="late"
    )
    label_items(items, labelers, lambda i, j: "scratch" if i % 2 else "dent")
    run = run_majority(project)
    decided = sme_decision(
        project, [items[1], items[7]], "dent", by=manager, rationale="SME says dent"
    )
    merge = Resolution.objects.create(
        project=project,
        action=ResolutionAction.MERGE_CLASSES,
        rationale="same thing",
        label_class=LabelClass.objects.get(project=project, key="scratch"),
        into_class=LabelClass.objects.get(project=project, key="dent"),
        decided_by=manager,
    )
    LabelClass.objects.filter(project=project, key="scratch").update(
        merged_into=LabelClass.objects.get(project=project, key="dent")
    )
    unrelated = Resolution.objects.create(
        project=project, action=ResolutionAction.DISMISS, rationale="noise", decided_by=manager
    )
    version = build(project)
    api.force_authenticate(manager)
    graph = api.get(f"/api/v1/datasets/{version.pk}/lineage/").json()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert {f"source_batch:{b.pk}" for b in batches} <= set(nodes)
    assert {f"resolution:{decided.pk}", f"resolution:{merge.pk}"} <= set(nodes)
    assert f"resolution:{unrelated.pk}" not in nodes
    assert nodes[f"item_summary:{batches[1].pk}"]["n_items"] == 4
    assert nodes["annotation_summary:labeler1"]["n_items"] == 10
    assert nodes[f"agreement_run:{run.pk}"]["type"] == "agreement_run"
    edges = {(e["from"], e["to"], e["relation"]) for e in graph["edges"]}
    target = f"dataset_version:{version.pk}"
    assert (f"resolution:{decided.pk}", target, "decided") in edges
    assert (f"agreement_run:{run.pk}", target, "consensus_for") in edges
    assert (f"source_batch:{batches[0].pk}", f"item_summary:{batches[0].pk}", "imported") in edges
    for edge in graph["edges"]:
        assert edge["from"] in nodes and edge["to"] in nodes
