"""Every REST list pages the same way: 50 rows a page, ``?page_size`` up to 500 (one
``api.pagination.Pagination``; the flag queue and the dataset versions used to ignore
``page_size``)."""

from __future__ import annotations

import pytest

from consistency.models import Flag, FlagKind
from labeling import services
from labeling.models import Role

pytestmark = pytest.mark.django_db


def test_the_flag_queue_honours_page_size(manager_api, project, manager):
    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    for n in range(7):
        Flag.objects.create(project=project, kind=FlagKind.LABELER, impact=float(n), summary="f")
    url = f"/api/v1/projects/{project.pk}/flags/"
    body = manager_api.get(url, {"page_size": 3}).json()
    assert body["count"] == 7
    assert len(body["results"]) == 3
    assert [f["impact"] for f in body["results"]] == [6.0, 5.0, 4.0]  # ranked by impact
    last = manager_api.get(url, {"page_size": 3, "page": 3}).json()
    assert len(last["results"]) == 1 and last["next"] is None
    # Over the cap: 500 at most, never an error.
    assert len(manager_api.get(url, {"page_size": 10_000}).json()["results"]) == 7


def test_dataset_versions_honour_page_size(manager_api, project, manager):
    from datasets.models import DatasetStatus, DatasetVersion

    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    for _ in range(5):
        DatasetVersion.objects.create(project=project, status=DatasetStatus.QUEUED)
    url = f"/api/v1/projects/{project.pk}/datasets/"
    body = manager_api.get(url, {"page_size": 2}).json()
    assert body["count"] == 5 and len(body["results"]) == 2
    assert len(manager_api.get(url, {"page_size": 2, "page": 3}).json()["results"]) == 1
