"""On the demo, a monitoring run with the default windows finds what was planted: the
camera whose images darken from week 5, the labeler who drifts after guideline v2, and
nothing on the other cameras."""

from __future__ import annotations

import pytest

from consistency import monitoring
from consistency.models import Flag, FlagKind
from labeling import services
from labeling.demo import DIMMING_CAMERA, IMAGE_PROJECT_SLUG
from labeling.demo.loader import seed_demo
from labeling.models import Project

pytestmark = pytest.mark.django_db

DRIFTER = "labeler7"


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    seed_demo(seed=7, n_images=320)
    project = Project.objects.get(slug=IMAGE_PROJECT_SLUG)
    # the worker computes image statistics after commit; here, in the test's transaction
    for item_id in project.items.values_list("id", flat=True):
        services.compute_item_image_stats(item_id=item_id)
    return project


def test_monitoring_the_demo_finds_the_dimming_camera_and_the_drifting_labeler(demo):
    run = monitoring.start_monitoring_run(project=demo)
    run = monitoring.execute_monitoring_run(run.pk)
    checks = run.results["checks"]
    brightness = {
        c["slice"]["value"]: c
        for c in checks
        if c["metric"] == "mean_brightness" and (c["slice"] or {}).get("key") == "camera"
    }
    assert brightness[DIMMING_CAMERA]["drifted"] is True
    assert brightness[DIMMING_CAMERA]["series"]["since"]
    assert [cam for cam, c in brightness.items() if c["drifted"]] == [DIMMING_CAMERA]
    labelers = {
        c["labeler"]
        for c in checks
        if c["metric"] in ("labeler_agreement", "labeler_label_distribution") and c["drifted"]
    }
    assert labelers == {DRIFTER}
    flags = Flag.objects.filter(project=demo, kind=FlagKind.DRIFT)
    assert flags.filter(slice_key="camera", slice_value=DIMMING_CAMERA).exists()
    assert flags.filter(labeler__username=DRIFTER).exists()
    # ground-truth accuracy per labeler and week is there for the page
    assert any(w["n_gold"] for e in run.results["labelers"] for w in e["weeks"])
