"""Issue 15, "Done when": on the seeded demo, resolving every flag the first run raises
leaves HLP's basis unchanged, overwrites no ground truth, keeps every flag readable, and
the dashboard shows AC1 beside alpha with the paradox warning where it applies.

The whole loop (label -> measure -> flag -> SME decides -> measure again -> publish) is
driven through the same services and endpoints a person uses."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from consistency import runs
from consistency.models import Flag, FlagKind, FlagStatus, RunStatus
from datasets import services as dataset_services
from labeling.demo import IMAGE_PROJECT_SLUG
from labeling.demo.loader import seed_demo
from labeling.demo.synth import SME
from labeling.models import Annotation, GoldLabel, GoldSource, Project
from review.models import Resolution
from review.services import resolve_flag

pytestmark = pytest.mark.django_db

# How the SME resolves each kind of flag: every decision that can touch an item's label.
ACTIONS = {
    FlagKind.BORDERLINE: {"action": "mark_borderline"},
    FlagKind.MERGE_CLASSES: {"action": "merge_classes"},
    FlagKind.UNCLEAR_SLICE: {
        "action": "publish_guideline",
        "guideline_text": "Faint marks under 1 mm count as no defect.",
    },
    FlagKind.LABELER: {"action": "relabel"},
}


def run_agreement(project):
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 50})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def ground_truth(project) -> list[tuple]:
    return sorted(
        GoldLabel.objects.filter(item__project=project).values_list(
            "item_id", "label_class_id", "value_number", "value_text", "source", "labeler_id"
        )
    )


def minority_label(flag) -> str:
    """The least used (non-borderline) class among the labels of the flag's first item:
    a decision an SME could make, and often one against the ground truth."""
    keys = Counter(
        merged or key  # a class merged since (one level in the demo) counts as its root
        for key, merged in Annotation.objects.filter(
            item=flag.items.order_by("id").first(), is_current=True
        )
        .exclude(label_class__is_borderline=True)
        .values_list("label_class__key", "label_class__merged_into__key")
    )
    return min(keys, key=lambda k: (keys[k], k)) if keys else "no_defect"


def resolve_everything(flags, sme) -> dict[str, int]:
    """Resolve each flag; item disagreements alternate set-label (a class the labels
    used, which may contradict ground truth) and mark-borderline (the bulk action that
    used to overwrite ground truth). Returns the number of resolutions per action."""
    done: dict[str, int] = {}
    for n, flag in enumerate(flags):
        flag.refresh_from_db()
        if flag.status != FlagStatus.OPEN:
            continue  # a merge can close a sibling flag
        if flag.kind == FlagKind.ITEM_DISAGREEMENT:
            if n % 2:
                params = {"action": "mark_borderline"}
            else:
                params = {"action": "set_label", "label": minority_label(flag)}
        else:
            params = ACTIONS[flag.kind]
        resolve_flag(flag=flag, actor=sme, rationale="demo loop: decided on review", **params)
        done[params["action"]] = done.get(params["action"], 0) + 1
    return done


def test_resolving_every_flag_of_the_first_run_keeps_the_numbers_true(settings):
    settings.DEBUG = True
    seed_demo()
    project = Project.objects.get(slug=IMAGE_PROJECT_SLUG)
    sme = get_user_model().objects.get(username=SME)
    truth_before = ground_truth(project)
    assert truth_before and {row[4] for row in truth_before} == {GoldSource.IMPORT}

    first = run_agreement(project)
    hlp = first.results["hlp"]
    assert hlp["method"] == "gold"
    basis = (hlp["method"], hlp["gold"]["n_items"], hlp["n_items"])
    flags = list(Flag.objects.filter(run=first).order_by("id"))
    assert {f.kind for f in flags} >= {FlagKind.ITEM_DISAGREEMENT, FlagKind.BORDERLINE}

    done = resolve_everything(flags, sme)
    assert done.get("set_label") and done.get("mark_borderline")
    assert not Flag.objects.filter(run=first, status=FlagStatus.OPEN).exists()

    # No ground truth is overwritten, whatever the decisions said -- some contradicted it.
    assert ground_truth(project) == truth_before
    assert any(
        r.details.get("conflicts_with_ground_truth")
        for r in Resolution.objects.filter(project=project)
    )

    second = run_agreement(project)
    hlp2 = second.results["hlp"]
    # HLP's basis is unchanged: the same ground-truth items, never the SME decisions.
    assert (hlp2["method"], hlp2["gold"]["n_items"], hlp2["n_items"]) == basis

    # Every flag ever raised is still readable, with its status.
    web = Client()
    web.force_login(sme)
    every = Flag.objects.filter(project=project)
    assert every.count() >= len(flags)
    for flag in every:
        api = web.get(f"/api/v1/flags/{flag.pk}/", secure=True)
        assert api.status_code == 200, (flag.pk, api.status_code)
        assert api.json()["status"] == flag.status
        page = web.get(reverse("review-flag", args=[flag.pk]), secure=True)
        assert page.status_code == 200
    first_statuses = set(Flag.objects.filter(run=first).values_list("status", flat=True))
    assert first_statuses <= {FlagStatus.RESOLVED, FlagStatus.DISMISSED}

    # The dataset built from the second run keeps ground truth as the final label.
    version = dataset_services.request_dataset_version(
        project=project, requested_by=sme, data={"agreement_run": second.pk}
    )
    dataset_services.build_dataset_version(dataset_version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "succeeded", version.error
    rows = [json.loads(line) for line in version.rows.values_list("line", flat=True)]
    sources = {r["final_label_source"] for r in rows}
    assert sources <= {"ground_truth", "sme", "consensus"} and "ground_truth" in sources

    # The dashboard shows AC1 beside alpha, and the paradox warning where it applies.
    html = web.get(reverse("consistency-dashboard", args=[project.pk]), secure=True).content
    html = html.decode()
    kpis = html[
        html.index('data-testid="overall"') : html.index(
            "</section>", html.index('data-testid="overall"')
        )
    ]
    alpha_at = kpis.index('data-metric="krippendorff_alpha"')
    ac1_at = kpis.index('data-metric="gwet_ac1"')
    assert alpha_at < ac1_at  # the AC1 card follows the alpha card
    overall = second.results["overall"]
    shown = re.search(r'data-metric="gwet_ac1">([^<]*)<', kpis).group(1)
    assert shown == f"{overall['gwet_ac1']:.3f}"
    paradox_classes = [c["class"] for c in second.results["per_class"] if "paradox" in c["reasons"]]
    assert paradox_classes  # the demo's rare borderline class: alpha low, AC1 high
    applies = bool(second.results["reasons"].get("paradox") or paradox_classes)
    assert ('data-testid="paradox"' in html) == applies
    for key in paradox_classes:
        assert f"<strong>{key}</strong>" in html
