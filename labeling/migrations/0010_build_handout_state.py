"""Build the hand-out state (issue 14) of existing projects: every item's labels, top,
holds, load and openness, and every labeler's ``n_done``, recounted from the rows.

Written against the historical models (this migration must keep working when the
services change). The rule is the one of ``labeling.handout.item_state`` as of this
migration; ``manage.py verify_handout_state --repair`` fixes any later drift.
Reverse: nothing to undo (the columns go with 0009).
"""

from collections import Counter, defaultdict

from django.db import migrations
from django.db.models import Count
from django.utils import timezone

CHUNK = 2000


def _identity(class_id, number, text):
    if class_id is not None:
        return ("c", class_id)
    if number is not None:
        return ("n", number)
    return ("t", (text or "").strip(" ").lower())


def _target(project, n, top):
    if not project.dynamic_overlap:
        return project.overlap
    if n >= project.max_overlap:
        return n
    if n < project.min_overlap:
        return project.min_overlap
    return n if top * 2 > n else n + 1


def forward(apps, schema_editor):
    Project = apps.get_model("labeling", "Project")
    Item = apps.get_model("labeling", "Item")
    Annotation = apps.get_model("labeling", "Annotation")
    Assignment = apps.get_model("labeling", "Assignment")
    LabelerState = apps.get_model("labeling", "LabelerState")
    now = timezone.now()
    for project in Project.objects.all():
        ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            labels = defaultdict(list)
            for item_id, labeler_id, c, n, t in Annotation.objects.filter(
                item_id__in=chunk, is_current=True
            ).values_list("item_id", "labeler_id", "label_class_id", "value_number", "value_text"):
                labels[item_id].append((labeler_id, _identity(c, n, t)))
            holds = defaultdict(list)
            for item_id, labeler_id, expires_at in Assignment.objects.filter(
                item_id__in=chunk, status="active", expires_at__gt=now
            ).values_list("item_id", "labeler_id", "expires_at"):
                holds[item_id].append((labeler_id, expires_at))
            rows = []
            for item_id in chunk:
                with_label = {lab for lab, _ in labels[item_id]}
                counted = [ident for _, ident in labels[item_id]]
                top = Counter(counted).most_common(1)[0][1] if counted else 0
                live = [e for lab, e in holds[item_id] if lab not in with_label]
                load = len(counted) + len(live)
                item = Item(pk=item_id)
                item.handout_labels, item.handout_top = len(counted), top
                item.handout_holds, item.handout_load = len(live), load
                item.handout_open = load < _target(project, len(counted), top)
                item.handout_hold_expires_at = min(live) if live else None
                rows.append(item)
            Item.objects.bulk_update(
                rows,
                [
                    "handout_labels",
                    "handout_top",
                    "handout_holds",
                    "handout_load",
                    "handout_open",
                    "handout_hold_expires_at",
                ],
                batch_size=500,
            )
        counts = (
            Annotation.objects.filter(project=project, is_current=True)
            .values("labeler_id")
            .annotate(n=Count("pk"))
            .order_by()
        )
        LabelerState.objects.bulk_create(
            [
                LabelerState(project=project, labeler_id=r["labeler_id"], n_done=r["n"])
                for r in counts
            ],
            batch_size=1000,
        )


class Migration(migrations.Migration):
    dependencies = [("labeling", "0009_handout_state")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
