"""Agreement runs on a detection project, end to end: the service, the stored consensus
boxes, the convention flags and the REST payload."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from consistency import box_runs
from consistency.metrics import boxes as bx
from consistency.models import Consensus, Flag, FlagKind, RunStatus
from labeling import services
from labeling.models import Project
from review import services as review_services
from tests.consistency.box_project import N_ITEMS, build_detection_project, run_agreement
from tests.consistency.box_synth import JITTER_ONLY, LABELERS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def detection(manager, make_user):
    return build_detection_project(manager, make_user)


def test_a_detection_run_reports_box_agreement_with_intervals(detection):
    project, labels, *_ = detection
    run = run_agreement(project, slices=["line"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    overall = run.results["overall"]
    expected = bx.BoxAgreement(labels, classes=["scratch", "dent"]).summary(n_bootstrap=0)
    assert overall["box_f1"] == pytest.approx(expected["box_f1"])
    assert overall["box_mean_iou"] == pytest.approx(expected["box_mean_iou"])
    assert overall["count_alpha"] == pytest.approx(expected["count_alpha"])
    for key in ("box_f1", "box_mean_iou", "count_alpha"):
        low, high = overall[f"{key}_ci"]
        assert low <= overall[key] <= high
    assert overall["n_items"] == N_ITEMS and overall["n_labelers"] == len(LABELERS)
    assert overall["krippendorff_alpha"] is None and overall["reasons"]["krippendorff_alpha"]
    per_labeler = {e["labeler"]: e for e in run.results["per_labeler"]}
    assert set(per_labeler) == set(LABELERS)
    assert per_labeler["dan"]["box_f1"] < min(per_labeler[x]["box_f1"] for x in JITTER_ONLY)
    assert all(e["box_f1_ci"] and e["labeler_id"] for e in per_labeler.values())
    assert {c["class"] for c in run.results["per_class"]} == {"scratch", "dent"}
    assert all(
        c["box_f1_ci"][0] <= c["box_f1"] <= c["box_f1_ci"][1] for c in run.results["per_class"]
    )
    lines = {s["value"]: s for s in run.results["slices"] if s["key"] == "line"}
    assert set(lines) == {"A", "B"} and lines["A"]["n_items"] + lines["B"]["n_items"] == N_ITEMS
    assert all(s["box_f1_ci"] and s["hlp"] is not None for s in lines.values())
    hlp = run.results["hlp"]
    assert hlp["method"] == "pairwise" and 0 < hlp["value"] <= 1 and hlp["per_slice"]
    json.dumps(run.results, allow_nan=False)  # no NaN or Infinity anywhere


def test_consensus_boxes_are_stored_per_item(detection):
    project, labels, _, _, items = detection
    run = run_agreement(project)
    rows = {c.item.external_id: c for c in Consensus.objects.filter(run=run)}
    assert len(rows) == N_ITEMS
    # a planted cluster: dan boxed the three objects as one; five of six labelers boxed
    # each object, so the consensus holds the three objects, not the group box
    row = rows["i003"]
    expected = bx.consensus_boxes(labels["i003"], weights=None)
    assert len(row.value_boxes) == len(expected["boxes"]) == len(labels["i003"]["ann"])
    assert all(b["support"] >= 4 for b in row.value_boxes)
    assert row.status == "disputed"  # dan's group box fell below the quorum
    assert run.results["consensus"]["methods"]["majority"]["n_items"] == N_ITEMS
    final = box_runs.final_boxes(project, run)
    assert final[items["i003"].pk]["boxes"] == row.value_boxes


def test_planted_conventions_raise_flags_for_the_right_labelers(detection):
    project, *_ = detection
    run = run_agreement(project)
    flags = Flag.objects.filter(run=run, kind=FlagKind.BOX_CONVENTION).select_related("labeler")
    found = {(f.labeler.username, f.evidence["convention"]) for f in flags}
    assert ("dan", "group") in found
    assert ("cat", "loose") in found
    assert ("fay", "tight") in found
    assert not {name for name, _ in found} & set(JITTER_ONLY)
    group = next(f for f in flags if f.evidence["convention"] == "group")
    assert "one box per object" in group.evidence["suggested_guideline"].lower()
    example = group.evidence["examples"][0]
    assert set(example["boxes"]) == set(LABELERS)  # all boxes, to overlay
    assert group.items.count() == len(group.evidence["examples"]) > 0
    disagreement = Flag.objects.filter(run=run, kind=FlagKind.ITEM_DISAGREEMENT)
    assert disagreement.exists()
    assert all(int(f.items.get().external_id[1:]) % 3 == 0 for f in disagreement)


def test_a_second_run_supersedes_convention_flags_by_signature(detection):
    project, *_ = detection
    first = run_agreement(project)
    second = run_agreement(project)
    old = Flag.objects.get(run=first, kind=FlagKind.BOX_CONVENTION, labeler__username="dan")
    new = Flag.objects.get(run=second, kind=FlagKind.BOX_CONVENTION, labeler__username="dan")
    assert old.status == "superseded" and old.superseded_by_id == new.pk


def test_an_empty_detection_project_runs_with_null_figures(manager):
    project = services.create_project(
        name="Empty", task_type="detection", classes=[{"key": "x"}], created_by=manager
    )
    run = run_agreement(Project.objects.get(pk=project.pk))
    assert run.status == RunStatus.SUCCEEDED, run.error
    overall = run.results["overall"]
    assert overall["box_f1"] is None and overall["reasons"]["box_f1"]
    assert overall["count_alpha"] is None and overall["reasons"]["count_alpha"]


def test_the_dashboard_shows_box_figures_with_intervals(detection, manager):
    project, *_ = detection
    run = run_agreement(project)
    client = Client()
    client.force_login(manager)
    html = client.get(reverse("consistency-dashboard", args=[project.pk]), secure=True)
    assert html.status_code == 200
    html = html.content.decode()
    shown = dict(re.findall(r'data-metric="(\w+)">([^<]+)<', html))
    overall = run.results["overall"]
    for key in ("box_f1", "box_mean_iou", "count_alpha"):
        assert shown[key] == f"{overall[key]:.3f}"
        low, high = overall[f"{key}_ci"]
        assert f"95% CI {low:.3f} – {high:.3f}" in html
    table = html.split('data-testid="box-labelers"')[1].split("</table>")[0]
    assert all(name in table for name in ("ann", "dan", "cat"))
    assert "dan (group)" in html


def test_the_flag_page_overlays_every_labelers_boxes_and_proposes_the_clarification(
    detection, manager
):
    project, *_ = detection
    run = run_agreement(project)
    flag = Flag.objects.get(run=run, kind=FlagKind.BOX_CONVENTION, labeler__username="dan")
    client = Client()
    client.force_login(manager)
    page = client.get(reverse("review-flag", args=[flag.pk]), secure=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-testid="box-overlay"') == flag.items.count()
    assert 'data-labeler="dan"' in html and 'data-labeler="consensus"' in html
    assert flag.evidence["suggested_guideline"] in html  # evidence and the textarea
    # the SME publishes the clarified guideline from the flag: the flag is resolved and
    # its example items become the new version's examples
    review_services.resolve_flag(
        flag=flag,
        actor=manager,
        action="publish_guideline",
        rationale="clusters were boxed as one",
        guideline_text="Box every defect.\n\n" + flag.evidence["suggested_guideline"],
    )
    flag.refresh_from_db()
    assert flag.status == "resolved"
    assert project.guidelines.order_by("-version").first().version == 2
