"""REST for detection agreement runs: GET of a run carries the box figures; convention
flags are listed with the kind filter."""

from __future__ import annotations

import pytest

from tests.consistency.box_project import build_detection_project, run_agreement

pytestmark = pytest.mark.django_db


@pytest.fixture
def detection(manager, make_user):
    return build_detection_project(manager, make_user)


def test_rest_returns_the_detection_run_and_filters_convention_flags(detection, api, manager):
    project, *_ = detection
    run = run_agreement(project)
    client = api.as_user(manager)
    body = client.get(f"/api/v1/agreement-runs/{run.pk}/").json()
    assert body["status"] == "succeeded"
    overall = body["results"]["overall"]
    for key in ("box_f1", "box_mean_iou", "count_alpha"):
        assert isinstance(overall[key], float) and len(overall[f"{key}_ci"]) == 2
    assert all("box_f1" in e for e in body["results"]["per_labeler"])
    listed = client.get(f"/api/v1/projects/{project.pk}/flags/?kind=box_convention").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows and all(f["kind"] == "box_convention" for f in rows)
