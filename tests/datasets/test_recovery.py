"""The dataset-build lease and reaper, in-process (tasks eager): a build whose worker died
is built again once, or failed with the reason once out of attempts; an execution that
lost its build publishes nothing. With real killed workers: tests/test_job_recovery.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from datasets import recovery, services
from datasets.models import DatasetRow, DatasetStatus, DatasetVersion
from provenance.models import Event, Verb

pytestmark = pytest.mark.django_db


def stalled_build(project, *, attempts=1) -> DatasetVersion:
    """A version a worker claimed and died building (its heartbeat stopped long ago)."""
    version = services.request_dataset_version(project=project, requested_by=None, data={})
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=DatasetStatus.BUILDING,
        attempts=attempts,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    return version


def test_a_build_whose_worker_died_is_built_again_once(
    labeled_project, django_capture_on_commit_callbacks
):
    project = labeled_project["project"]
    version = stalled_build(project)
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.reap_stalled_dataset_builds()["requeued"] == 1
    version.refresh_from_db()
    assert version.status == DatasetStatus.SUCCEEDED, version.error
    assert version.attempts == 2
    assert DatasetRow.objects.filter(version=version).count() == version.row_count == 100
    published = Event.objects.filter(verb=Verb.DATASET_PUBLISHED, subject_id=str(version.pk))
    assert published.count() == 1


def test_a_build_out_of_attempts_fails_with_the_reason(labeled_project, settings):
    settings.CONCORD_JOB_MAX_ATTEMPTS = 3
    version = stalled_build(labeled_project["project"], attempts=3)
    assert recovery.reap_stalled_dataset_builds()["failed"] == 1
    version.refresh_from_db()
    assert version.status == DatasetStatus.FAILED
    assert "stopped responding" in version.error and "gave up after 3 attempts" in version.error
    assert Event.objects.filter(verb=Verb.DATASET_FAILED, subject_id=str(version.pk)).exists()


def test_a_live_or_finished_build_is_left_alone(labeled_project):
    project = labeled_project["project"]
    live = services.request_dataset_version(project=project, requested_by=None, data={})
    DatasetVersion.objects.filter(pk=live.pk).update(
        status=DatasetStatus.BUILDING, attempts=1, heartbeat_at=timezone.now()
    )
    done = services.request_dataset_version(project=project, requested_by=None, data={"seed": 3})
    services.build_dataset_version(dataset_version_id=done.pk)
    assert not any(recovery.reap_stalled_dataset_builds().values())
    assert DatasetVersion.objects.get(pk=live.pk).status == DatasetStatus.BUILDING


def test_a_redelivered_build_message_is_a_no_op(labeled_project):
    version = services.request_dataset_version(
        project=labeled_project["project"], requested_by=None, data={}
    )
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=DatasetStatus.BUILDING, attempts=1, heartbeat_at=timezone.now()
    )
    again = services.build_dataset_version(dataset_version_id=version.pk)
    assert (again.status, again.attempts) == (DatasetStatus.BUILDING, 1)
    assert not DatasetRow.objects.filter(version=version).exists()


def test_an_execution_that_lost_its_build_publishes_nothing(labeled_project, monkeypatch):
    version = services.request_dataset_version(
        project=labeled_project["project"], requested_by=None, data={}
    )
    real = services._hold_build

    def reaped_meanwhile(v):
        # The reaper re-queued the build while this execution was computing its rows.
        DatasetVersion.objects.filter(pk=v.pk).update(status=DatasetStatus.QUEUED)
        real(v)

    monkeypatch.setattr(services, "_hold_build", reaped_meanwhile)
    result = services.build_dataset_version(dataset_version_id=version.pk)
    # (In one test transaction the reaper's write is rolled back with the build's.)
    assert result.status != DatasetStatus.SUCCEEDED and result.error == ""
    assert not DatasetRow.objects.filter(version=version).exists()
    assert not Event.objects.filter(verb=Verb.DATASET_PUBLISHED, subject_id=str(version.pk))
