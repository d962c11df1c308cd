"""Issue 17, "Done when": on the demo, a manager runs agreement on the box project, sees
box F1 and mean IoU with CIs, finds the flag that names the labeler who boxes clusters as
one, resolves it with a clarified guideline, and publishes a COCO dataset version.

Driven through the services and endpoints a person uses, on the seeded demo."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from consistency import runs
from consistency.models import Flag, FlagKind, FlagStatus, RunStatus
from datasets import services as dataset_services
from labeling.demo.boxes import BOX_PROJECT_SLUG, GROUP_LABELER, LOOSE_LABELER
from labeling.demo.loader import seed_demo
from labeling.demo.synth import MANAGER, SME
from labeling.models import Project
from review.services import resolve_flag

pytestmark = pytest.mark.django_db


def test_the_box_project_loop_on_the_demo(settings):
    settings.DEBUG = True
    seed_demo(n_images=96)
    project = Project.objects.get(slug=BOX_PROJECT_SLUG)
    manager = get_user_model().objects.get(username=MANAGER)
    sme = get_user_model().objects.get(username=SME)

    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 200})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    overall = run.results["overall"]
    for metric in ("box_f1", "box_mean_iou", "count_alpha"):
        low, high = overall[f"{metric}_ci"]
        assert low <= overall[metric] <= high, metric
    assert 0 < overall["box_f1"] < 1 and 0.5 <= overall["box_mean_iou"] <= 1
    json.dumps(run.results, allow_nan=False)

    web = Client()
    web.force_login(manager)
    page = web.get(reverse("consistency-dashboard", args=[project.pk]), secure=True)
    assert page.status_code == 200
    assert b'data-metric="box_f1"' in page.content and b"95% CI" in page.content

    conventions = Flag.objects.filter(run=run, kind=FlagKind.BOX_CONVENTION)
    named = {(f.labeler.username, f.evidence["convention"]) for f in conventions}
    assert (GROUP_LABELER, "group") in named
    assert (LOOSE_LABELER, "loose") in named
    group = next(f for f in conventions if f.labeler.username == GROUP_LABELER)
    versions_before = project.guidelines.count()
    resolve_flag(
        flag=group,
        actor=sme,
        action="publish_guideline",
        rationale="one box per object",
        guideline_text=group.evidence["suggested_guideline"],
    )
    group.refresh_from_db()
    assert group.status == FlagStatus.RESOLVED
    assert project.guidelines.count() == versions_before + 1

    created = web.post(
        f"/api/v1/projects/{project.pk}/datasets/",
        data=json.dumps({"agreement_run": run.pk, "seed": 3}),
        content_type="application/json",
        secure=True,
    )
    assert created.status_code == 202, created.content
    version_id = created.json()["id"]
    # The build is the worker's job; run it here as the worker would.
    dataset_services.build_dataset_version(dataset_version_id=version_id)
    detail = web.get(f"/api/v1/datasets/{version_id}/", secure=True).json()
    assert detail["status"] == "succeeded", detail
    assert detail["row_count"] > 0
    export = web.get(f"/api/v1/datasets/{version_id}/export/?format=coco", secure=True)
    assert export.status_code == 200
    coco = json.loads(b"".join(export.streaming_content))
    assert len(coco["images"]) == detail["row_count"]
    assert coco["annotations"] and {c["name"] for c in coco["categories"]}
