"""REST for detection agreement runs: GET of a run carries the box figures; convention
flags are listed with the kind filter."""

from __future__ import annotations

import pytest

from consistency.box_runs import final_boxes
from consistency.models import Consensus, Flag, FlagKind
from labeling.models import ItemDecision
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


def test_an_sme_decides_an_items_boxes(detection, api, manager):
    project, _, _, _, items = detection
    run = run_agreement(project)
    flag = Flag.objects.filter(run=run, kind=FlagKind.ITEM_DISAGREEMENT).first()
    item = flag.items.get()
    url = f"/api/v1/flags/{flag.pk}/resolve/"
    client = api.as_user(manager)
    bad = client.post(
        url,
        data={"action": "set_label", "rationale": "r", "boxes": [{"class": "crack", "x": 1}]},
        format="json",
    )
    assert bad.status_code == 400 and "unknown class" in bad.json()["errors"]["boxes"][0]
    boxes = [{"class": "scratch", "x": 10, "y": 20, "w": 30, "h": 40}]
    done = client.post(
        url,
        data={"action": "set_label", "rationale": "three objects", "boxes": boxes},
        format="json",
    )
    assert done.status_code == 200, done.content
    decision = ItemDecision.objects.get(item=item)
    assert decision.value_boxes == [
        {"class": "scratch", "x": 10.0, "y": 20.0, "w": 30.0, "h": 40.0}
    ]
    assert decision.label_class_id is None
    assert final_boxes(project, run)[item.pk]["source"] == "sme"
    # the next run keeps the decision as the item's consensus
    second = run_agreement(project)
    row = Consensus.objects.get(run=second, item=item)
    assert row.status == "resolved" and row.value_boxes == decision.value_boxes
