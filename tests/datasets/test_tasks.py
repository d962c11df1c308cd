"""The dataset build task retries on a transient database error and publishes once."""

import pytest
from django.db import OperationalError

from config.celery import app as celery_app
from datasets import services, tasks
from datasets.models import DatasetStatus
from provenance.models import Event, Verb


@pytest.fixture(autouse=True)
def retries_run_eagerly():
    """Eager mode runs a retry at once, unless errors propagate (then Retry is raised)."""
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


@pytest.mark.django_db
def test_a_build_interrupted_by_a_database_error_is_retried_and_published_once(
    labeled_project, manager, monkeypatch
):
    project = labeled_project["project"]
    version = services.request_dataset_version(project=project, requested_by=manager, data={})
    real = services.build_dataset_version
    attempts = []

    def once_failing(*, dataset_version_id):
        attempts.append(dataset_version_id)
        if len(attempts) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(dataset_version_id=dataset_version_id)

    monkeypatch.setattr(services, "build_dataset_version", once_failing)
    result = tasks.build_dataset_version.delay(version.pk).get()

    assert attempts == [version.pk, version.pk]
    assert result == {"dataset_version": version.pk, "status": DatasetStatus.SUCCEEDED}
    version.refresh_from_db()
    assert version.status == DatasetStatus.SUCCEEDED
    assert (
        Event.objects.filter(verb=Verb.DATASET_PUBLISHED, subject_id=str(version.pk)).count() == 1
    )
