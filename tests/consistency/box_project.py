"""A small detection project holding the synthetic labels of :mod:`box_synth`."""

from __future__ import annotations

from django.utils import timezone

from consistency import runs
from labeling import services
from labeling.models import Annotation, AnnotationSource, Item, PayloadKind, Role
from tests.consistency.box_synth import LABELERS, synthetic_labels

N_ITEMS = 45


def build_detection_project(manager, make_user, *, n_items=N_ITEMS, labelers=LABELERS):
    """A detection project holding the synthetic labels (planted conventions)."""
    project = services.create_project(
        name="Scratches",
        task_type="detection",
        classes=[{"key": "scratch"}, {"key": "dent"}],
        created_by=manager,
        guideline_text="Box every defect.",
    )
    labels, truth = synthetic_labels(n_items=n_items, seed=1, labelers=labelers)
    users = {name: make_user(name) for name in labelers}
    for user in users.values():
        services.set_membership(project=project, user=user, role=Role.LABELER)
    items = {}
    rows = []
    now = timezone.now()
    guideline = project.guidelines.order_by("-version").first()
    for n, (key, per) in enumerate(sorted(labels.items())):
        items[key] = Item.objects.create(
            project=project,
            external_id=key,
            kind=PayloadKind.IMAGE,
            width=1000,
            height=1000,
            metadata={"line": "A" if n % 2 else "B"},
        )
        rows += [
            Annotation(
                project=project,
                item=items[key],
                labeler=users[name],
                value_boxes=value,
                guideline=guideline,
                source=AnnotationSource.IMPORT,
                created_at=now,
            )
            for name, value in per.items()
        ]
    # Rows straight into the table: the labels are the test's input, not what it tests.
    Annotation.objects.bulk_create(rows)
    return project, labels, truth, users, items


def run_agreement(project, **params):
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 200, **params})
    return runs.execute_agreement_run(run.pk)
