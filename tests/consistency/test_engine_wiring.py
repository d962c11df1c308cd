"""The agreement engine calls the review hooks: flags after every run, SME decisions as
consensus, the project's transcript rules before agreement, and lineage events."""

from __future__ import annotations

import json

import pytest

from consistency import runs
from consistency.models import Consensus, ConsensusMethod, Flag, FlagKind, RunStatus
from labeling.demo import IMAGE_PROJECT_SLUG, SPEECH_PROJECT_SLUG
from labeling.demo.loader import seed_demo
from labeling.models import Project
from review.services import publish_normalization, resolve_flag

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    seed_demo(seed=11, n_images=60)
    return Project.objects.get(slug=IMAGE_PROJECT_SLUG)


@pytest.fixture
def full_demo(settings):
    """The whole demo (320 images): the planted class confusion needs that many items."""
    settings.DEBUG = True
    seed_demo(seed=7, n_images=320)
    return Project.objects.get(slug=IMAGE_PROJECT_SLUG)


def run_agreement(project, **params):
    run = runs.start_agreement_run(project=project, params=params)
    return runs.execute_agreement_run(run.pk)


def test_every_succeeded_run_raises_its_flags(full_demo):
    run = run_agreement(full_demo, n_bootstrap=50)
    assert run.status == RunStatus.SUCCEEDED, run.error
    flags = Flag.objects.filter(run=run)
    assert flags.exists()
    merge = flags.filter(kind=FlagKind.MERGE_CLASSES).order_by("-impact").first()
    assert merge is not None
    assert set(merge.classes.values_list("key", flat=True)) == {"deep_scratch", "shallow_scratch"}


def test_an_sme_decision_becomes_the_consensus_of_the_next_run(demo, django_user_model):
    run = run_agreement(demo, n_bootstrap=0)
    flag = Flag.objects.filter(run=run, kind=FlagKind.ITEM_DISAGREEMENT).first()
    assert flag is not None, "the demo has disputed items"
    item = flag.items.first()
    sme = django_user_model.objects.get(username="sme")
    resolve_flag(
        flag=flag,
        actor=sme,
        action="set_label",
        label="crack",
        rationale="clear crack",
        items=[item.pk],
    )

    next_run = run_agreement(demo, n_bootstrap=0)

    rows = Consensus.objects.filter(run=next_run, item=item)
    assert rows.count() >= 2
    assert {r.label_class.key for r in rows} == {"crack"}
    assert rows.filter(method=ConsensusMethod.MAJORITY).get().status == "resolved"


def test_published_transcript_rules_are_applied_before_agreement(demo, django_user_model):
    speech = Project.objects.get(slug=SPEECH_PROJECT_SLUG)
    before = run_agreement(speech, n_bootstrap=0).results
    manager = django_user_model.objects.get(username="admin")
    # Remove the filler everyone disagrees about: transcripts then agree more often.
    publish_normalization(
        project=speech,
        rules=[
            {"find": r"\b(um+|uh+)\b[.,]*", "replace": "", "regex": True, "case_sensitive": False}
        ],
        actor=manager,
        rationale="house style: fillers are not transcribed",
    )
    after = run_agreement(speech, n_bootstrap=0).results

    assert after["transcription"]["project_rules_version"] == 1
    assert any(rule.startswith("project rule v1") for rule in after["transcription"]["rules"])
    assert after["overall"]["percent_agreement"] > before["overall"]["percent_agreement"]


def test_runs_emit_openlineage_start_and_complete(demo, monkeypatch, tmp_path):
    target = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE_FILE", str(target))
    run = run_agreement(demo, n_bootstrap=0)
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[1]["outputs"][0]["name"] == f"agreement_run/{run.pk}"
