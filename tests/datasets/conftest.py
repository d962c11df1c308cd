"""Fixtures for datasets tests: a labeled project with a succeeded agreement run.

The consensus rows are computed here by plain majority vote (an independent, hand-checkable
stand-in for the consistency engine), so dataset building can be tested on its own.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from consistency.models import AgreementRun, Consensus, ConsensusStatus, RunStatus
from datasets import services
from labeling import services as labeling_services
from labeling.models import Annotation, Item, PayloadKind, Role, SourceBatch


def make_items(project, n, *, batch=None, metadata=None, prefix="item", **fields):
    """``n`` URL items; ``metadata(i)`` gives each item's metadata."""
    items = [
        Item(
            project=project,
            external_id=f"{prefix}-{i:03d}",
            kind=PayloadKind.IMAGE_URL,
            image_url=f"https://img.example.com/{prefix}-{i:03d}.jpg",
            metadata=metadata(i) if metadata else {},
            source_batch=batch,
            **fields,
        )
        for i in range(n)
    ]
    return Item.objects.bulk_create(items)


def label_items(items, labelers, value_for):
    """Each labeler labels each item with ``value_for(item_index, labeler_index)``."""
    for i, item in enumerate(items):
        for j, labeler in enumerate(labelers):
            value = value_for(i, j)
            if value is not None:
                labeling_services.submit_annotation(item=item, labeler=labeler, value=value)


def bulk_label_items(items, labelers, value_for):
    """Like ``label_items`` but written in one INSERT (no events): for large fixtures."""
    project = items[0].project
    classes = {c.key: c for c in project.classes.all()}
    guideline = project.guidelines.order_by("-version").first()
    now = timezone.now()
    Annotation.objects.bulk_create(
        Annotation(
            project=project,
            item=item,
            labeler=labeler,
            label_class=classes[value_for(i, j)],
            guideline=guideline,
            created_at=now,
        )
        for i, item in enumerate(items)
        for j, labeler in enumerate(labelers)
        if value_for(i, j) is not None
    )


def run_majority(project, *, method="majority"):
    """A succeeded agreement run whose consensus is the majority of current labels."""
    run = AgreementRun.objects.create(project=project, status=RunStatus.SUCCEEDED, progress=1.0)
    by_item: dict[int, list[int]] = {}
    for item_id, class_id in Annotation.objects.filter(
        project=project, is_current=True
    ).values_list("item_id", "label_class_id"):
        by_item.setdefault(item_id, []).append(class_id)
    rows = []
    for item_id, class_ids in by_item.items():
        counts = Counter(class_ids).most_common()
        top, n_top = counts[0]
        tie = len(counts) > 1 and counts[1][1] == n_top
        support = n_top / len(class_ids)
        rows.append(
            Consensus(
                run=run,
                item_id=item_id,
                method=method,
                label_class_id=top,
                support=support,
                confidence=support,
                n_labels=len(class_ids),
                status=ConsensusStatus.DISPUTED if tie else ConsensusStatus.AGREED,
            )
        )
    Consensus.objects.bulk_create(rows)
    return run


def build(project, user=None, **params):
    """Request and build a dataset version synchronously; returns it, reloaded."""
    version = services.request_dataset_version(project=project, requested_by=user, data=params)
    services.build_dataset_version(dataset_version_id=version.pk)
    version.refresh_from_db()
    return version


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def batch(project, manager):
    return SourceBatch.objects.create(
        project=project,
        kind="items",
        origin="phones-2026-11.jsonl",
        created_by=manager,
        status="succeeded",
        file_sha256="ab" * 32,
    )


@pytest.fixture
def labeled_project(project, labelers, batch):
    """100 items (30 scratch, 70 no_defect; factories A and B), 3 labels each, one run."""
    items = make_items(
        project,
        100,
        batch=batch,
        metadata=lambda i: {"factory": "A" if i % 3 else "B", "serial": f"S{i // 4:02d}"},
    )
    bulk_label_items(items, labelers, lambda i, j: "scratch" if i < 30 else "no_defect")
    run = run_majority(project)
    return {"project": project, "items": items, "run": run, "labelers": labelers}


class SecureAPIClient(APIClient):
    """Requests over https, as production serves them (SECURE_SSL_REDIRECT is on)."""

    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        extra["secure"] = True
        return super().generic(method, path, data, content_type, **extra)


@pytest.fixture
def api():
    return SecureAPIClient()


@pytest.fixture
def viewer(project, make_user):
    user = make_user("viewer")
    labeling_services.set_membership(project=project, user=user, role=Role.VIEWER)
    return user


def sme_decision(project, items, key, *, by, rationale="decided"):
    """An SME's set-label decision on ``items`` as ``review.services`` records it: a
    Resolution naming the items and an SME gold label on each."""
    from labeling.models import LabelClass
    from review.models import Resolution, ResolutionAction

    resolution = Resolution.objects.create(
        project=project,
        action=ResolutionAction.SET_LABEL,
        rationale=rationale,
        label_class=LabelClass.objects.get(project=project, key=key),
        decided_by=by,
    )
    resolution.items.set(items)
    for item in items:
        labeling_services.set_item_decision(
            item=item,
            label_class=LabelClass.objects.get(project=project, key=key),
            actor=by,
            rationale=rationale,
        )
    return resolution
