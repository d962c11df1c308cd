"""OpenLineage run events for dataset builds (openlineage-python is a dev dependency)."""

import json

import pytest

from datasets.models import DatasetVersion
from provenance import lineage
from tests.datasets.conftest import build

pytestmark = pytest.mark.django_db


def test_nothing_is_emitted_when_unconfigured(labeled_project, monkeypatch):
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_FILE", raising=False)
    assert lineage.emit_run_event(event_type="START", job_name="x", run_key="x:1") is False


def test_a_build_emits_start_and_complete_to_the_configured_file(
    labeled_project, monkeypatch, tmp_path
):
    target = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE_FILE", str(target))
    version = build(labeled_project["project"])
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    assert events[1]["job"]["name"] == "dataset_build"
    assert events[1]["outputs"][0]["name"] == f"dataset_version/{version.pk}"
    run_id = labeled_project["run"].pk
    assert f"agreement_run/{run_id}/consensus" in [i["name"] for i in events[1]["inputs"]]


def test_a_failed_build_emits_fail_with_the_error(labeled_project, monkeypatch, tmp_path):
    from datasets import services

    target = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE_FILE", str(target))
    version = services.request_dataset_version(
        project=labeled_project["project"], requested_by=None, data={}
    )
    labeled_project["run"].delete()  # the run vanishes before the worker gets to it
    services.build_dataset_version(dataset_version_id=version.pk)
    assert DatasetVersion.objects.get(pk=version.pk).status == "failed"
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert "errorMessage" in events[1]["run"]["facets"]
