"""A dataset version requested over REST is built by a separate Celery worker process."""

import pytest

from datasets.models import DatasetVersion
from tests.conftest import wait_for
from tests.datasets.conftest import bulk_label_items, make_items, run_majority


@pytest.mark.integration
def test_the_worker_builds_a_requested_version(
    project, labelers, manager, api, celery_worker_process
):
    items = make_items(project, 30, metadata=lambda i: {"factory": "AB"[i % 2]})
    bulk_label_items(items, labelers, lambda i, j: "dent" if i % 3 == 0 else "no_defect")
    run_majority(project)
    api.force_authenticate(manager)
    response = api.post(f"/api/v1/projects/{project.pk}/datasets/", {"seed": 9}, format="json")
    assert response.status_code == 202
    version_id = response.json()["id"]

    def published():
        return DatasetVersion.objects.get(pk=version_id).status in ("succeeded", "failed")

    wait_for(published, timeout=90, proc=celery_worker_process, what="the worker to build")
    version = DatasetVersion.objects.get(pk=version_id)
    assert version.status == "succeeded", version.error
    assert version.row_count == 30
