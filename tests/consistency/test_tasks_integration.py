"""An agreement run POSTed through the API is executed by a separate Celery worker."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from consistency.models import AgreementRun, Consensus
from labeling import services as labeling_services
from labeling.models import Item, PayloadKind
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

LABELS = {
    "a": ("scratch", "scratch", "scratch"),
    "b": ("scratch", "dent", "scratch"),
    "c": ("dent", "dent", "no_defect"),
    "d": ("no_defect", "no_defect", "no_defect"),
    "e": ("dent", "scratch", "no_defect"),
}


class SecureAPIClient(APIClient):
    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        extra["secure"] = True
        return super().generic(method, path, data, content_type, **extra)


def _label(project, labelers):
    for external_id, values in LABELS.items():
        item = Item.objects.create(
            project=project, external_id=external_id, kind=PayloadKind.TEXT, text=external_id
        )
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=value)


@pytest.mark.parametrize("chunk_items", [None, 2])
def test_run_posted_to_the_api_is_executed_by_the_worker_process(
    project, labelers, manager, celery_worker_process, chunk_items
):
    _label(project, labelers)
    client = SecureAPIClient()
    client.force_authenticate(manager)
    body = {"n_bootstrap": 100, "slices": []}
    if chunk_items:
        body["chunk_items"] = chunk_items  # 5 items in 3 chunks: a chord across tasks
    response = client.post(f"/api/v1/projects/{project.pk}/agreement-runs/", body, format="json")
    assert response.status_code == 202, response.json()
    url = response.json()["url"]

    def finished():
        return client.get(url).json()["status"] in ("succeeded", "failed")

    wait_for(finished, timeout=120, proc=celery_worker_process, what="the agreement run")
    run = client.get(url).json()
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == 1.0
    assert run["results"]["overall"]["n_items"] == len(LABELS)
    assert run["results"]["overall"]["krippendorff_alpha"] is not None
    assert run["n_chunks"] == (3 if chunk_items else 1)
    stored = AgreementRun.objects.get(pk=run["id"])
    assert stored.celery_task_id
    assert Consensus.objects.filter(run=stored).count() == 2 * len(LABELS)
