"""The dataset REST endpoints: request (202) → worker build → read, list, diff, roles."""

import pytest
from django.urls import reverse

from datasets.models import DatasetStatus, DatasetVersion
from labeling import services as labeling_services
from labeling.models import LabelClass
from tests.datasets.conftest import build, run_majority, sme_decision

pytestmark = pytest.mark.django_db


def test_post_returns_202_and_the_worker_publishes_the_version(
    labeled_project, api, manager, django_capture_on_commit_callbacks
):
    project = labeled_project["project"]
    api.force_authenticate(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/projects/{project.pk}/datasets/",
            {"splits": {"train": 0.6, "dev": 0.2, "test": 0.2}, "seed": 1},
            format="json",
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["url"].endswith(f"/api/v1/datasets/{body['id']}/")
    detail = api.get(f"/api/v1/datasets/{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["row_count"] == 100
    assert detail["split_counts"] == {"train": 60, "dev": 20, "test": 20}
    assert detail["params"]["agreement_run"] == labeled_project["run"].pk
    assert detail["params"]["seed"] == 1
    assert len(detail["content_hash"]) == 64
    listing = api.get(f"/api/v1/projects/{project.pk}/datasets/").json()
    assert [v["id"] for v in listing["results"]] == [body["id"]]


def test_bad_request_is_a_400_naming_the_field(labeled_project, api, manager):
    api.force_authenticate(manager)
    response = api.post(
        f"/api/v1/projects/{labeled_project['project'].pk}/datasets/",
        {"splits": {"train": 0.7, "test": 0.2}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("splits: split ratios must sum to 1")


def test_no_succeeded_run_is_a_clear_400(project, api, manager):
    api.force_authenticate(manager)
    response = api.post(f"/api/v1/projects/{project.pk}/datasets/", {}, format="json")
    assert response.status_code == 400
    assert "no succeeded agreement run" in response.json()["detail"]


def test_labelers_may_not_read_datasets_and_strangers_do_not_see_them(
    labeled_project, api, make_user
):
    version = build(labeled_project["project"])
    api.force_authenticate(labeled_project["labelers"][0])
    assert api.get(f"/api/v1/datasets/{version.pk}/").status_code == 403
    api.force_authenticate(make_user("stranger"))
    assert api.get(f"/api/v1/datasets/{version.pk}/").status_code == 404
    assert api.get(f"/api/v1/projects/{version.project_id}/datasets/").status_code == 404


def test_viewers_read_but_may_not_build(labeled_project, api, viewer):
    version = build(labeled_project["project"])
    api.force_authenticate(viewer)
    assert api.get(f"/api/v1/datasets/{version.pk}/").status_code == 200
    response = api.post(f"/api/v1/projects/{version.project_id}/datasets/", {}, format="json")
    assert response.status_code == 403


def test_diff_lists_added_removed_and_relabeled_items_with_reasons(
    labeled_project, api, manager, make_user
):
    project = labeled_project["project"]
    items = labeled_project["items"]
    first = build(project, filters={"metadata.factory": "A"})
    # An SME decides item-001, "scratch" is merged into "dent", item-000 gets a new labeler.
    sme_decision(
        project, [items[1]], "no_defect", by=manager, rationale="reflection, not a scratch"
    )
    LabelClass.objects.filter(project=project, key="scratch").update(
        merged_into=LabelClass.objects.get(project=project, key="dent")
    )
    late = make_user("late")
    labeling_services.set_membership(project=project, user=late, role="labeler")
    labeling_services.submit_annotation(item=items[2], labeler=late, value="dent")
    run_majority(project)
    second = build(project)

    api.force_authenticate(manager)
    diff = api.get(f"/api/v1/datasets/{first.pk}/diff/{second.pk}/").json()
    assert diff["counts"]["added"] == 34  # factory B, left out of the first version
    assert diff["counts"]["removed"] == 0
    relabeled = {r["external_id"]: r for r in diff["relabeled"]}
    kinds = {eid: [reason["kind"] for reason in r["reasons"]] for eid, r in relabeled.items()}
    assert kinds["item-001"][0] == "resolution"
    assert relabeled["item-001"]["reasons"][0]["rationale"] == "reflection, not a scratch"
    assert relabeled["item-002"]["from"] == "scratch" and relabeled["item-002"]["to"] == "dent"
    assert "class_merge" in kinds["item-002"] and "new_labels" in kinds["item-002"]
    assert kinds["item-004"][0] == "class_merge"
    assert diff["params_changed"]["class_merges"] == [{}, {"scratch": "dent"}]
    assert diff["params_changed"]["filters"] == [{"metadata.factory": ["A"]}, {}]


def test_diff_of_versions_from_different_projects_is_refused(labeled_project, api, make_user):
    other = labeling_services.create_project(name="Other", classes=[{"key": "a"}])
    elsewhere = DatasetVersion.objects.create(project=other, status=DatasetStatus.SUCCEEDED)
    a = build(labeled_project["project"])
    api.force_authenticate(make_user("root", is_superuser=True))
    assert api.get(reverse("api-dataset-diff", args=[a.pk, a.pk])).status_code == 200
    response = api.get(reverse("api-dataset-diff", args=[a.pk, elsewhere.pk]))
    assert response.status_code == 400
    assert "same project" in response.json()["detail"]
