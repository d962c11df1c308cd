"""Load the demo data (:func:`labeling.demo.build_demo`) into the database, idempotently.

Running it twice changes nothing the second time: projects are found by slug, items by
external id, annotations by (item, labeler), gold labels by item. Image statistics and
thumbnails are left to the worker, like any other import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import transaction

from labeling import handout, services
from labeling.demo import build_demo
from labeling.demo.types import DemoData, DemoProject
from labeling.models import (
    Annotation,
    AnnotationSource,
    GoldLabel,
    GoldSource,
    Guideline,
    ImageStatsStatus,
    Item,
    LabelClass,
    PayloadKind,
    Project,
    ProjectMembership,
    SourceBatch,
    SourceBatchKind,
    SourceBatchStatus,
)
from provenance import bulk, events

User = get_user_model()

# Known passwords, printed by `make run`: demo accounts exist only with DEBUG on.
DEMO_PASSWORDS = {"admin": "concord-admin", "sme": "concord-sme"}
LABELER_PASSWORD = "concord-labeler"


@dataclass
class SeedReport:
    created: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        self.created[what] = self.created.get(what, 0) + n


def demo_password(username: str) -> str:
    return DEMO_PASSWORDS.get(username, LABELER_PASSWORD)


def seed_demo(*, seed: int = 7, n_images: int = 320) -> SeedReport:
    """Create (or complete) the demo projects, users and labels for ``seed``.

    Raises ImproperlyConfigured with DEBUG off: demo accounts have known passwords.
    """
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "seed_demo creates accounts with known passwords, so it runs only with DEBUG=1."
        )
    data = build_demo(seed=seed, n_images=n_images)
    report = SeedReport()
    with transaction.atomic():
        users = _ensure_users(data, report)
        for demo_project in data.projects:
            _ensure_project(demo_project, data, users, report)
    _schedule_monitoring()
    return report


def _schedule_monitoring() -> None:
    """Ask the worker for the daily monitoring runs now rather than at the next hourly
    tick of the schedule, so the manager finds the planted drift on the first visit.

    By task name: labeling may not import consistency (the layout points one way). The
    schedule itself decides which projects are due, so seeding twice starts nothing new;
    the run waits for the images' statistics, which the worker computes first."""
    current_app.loader.import_default_modules()  # every app's tasks.py, as a worker does
    current_app.tasks["consistency.tasks.run_due_monitoring"].delay()


def _ensure_users(data: DemoData, report: SeedReport) -> dict:
    users = {}
    for demo_user in data.users:
        user = User.objects.filter(username=demo_user.username).first()
        if user is None:
            first, _, last = demo_user.full_name.partition(" ")
            user = User(
                username=demo_user.username,
                email=demo_user.email,
                first_name=first,
                last_name=last,
                is_superuser=demo_user.is_superuser,
                is_staff=demo_user.is_superuser,
            )
            user.set_password(demo_password(demo_user.username))
            user.save()
            report.add("users")
        users[demo_user.username] = user
    return users


def _ensure_project(demo: DemoProject, data: DemoData, users: dict, report: SeedReport):
    project = Project.objects.filter(slug=demo.slug).first()
    if project is None:
        project = services.create_project(
            name=demo.name,
            slug=demo.slug,
            description=demo.description,
            task_type=demo.task_type,
            level=demo.level,
            overlap=demo.overlap,
            classes=[
                {
                    "key": c.key,
                    "name": c.name,
                    "rank": c.rank,
                    "is_borderline": c.is_borderline,
                    "description": c.description,
                }
                for c in demo.classes
            ],
            created_by=users["admin"],
            monitoring_min_window=demo.monitoring_min_window,
        )
        report.add("projects")
    existing_members = set(
        ProjectMembership.objects.filter(project=project).values_list("user_id", flat=True)
    )
    for demo_user in data.users:
        role = demo_user.roles.get(demo.slug)
        user = users[demo_user.username]
        if role and user.pk not in existing_members:
            ProjectMembership.objects.create(project=project, user=user, role=role)
            report.add("memberships")

    batch = SourceBatch.objects.filter(project=project, kind=SourceBatchKind.DEMO).first()
    if batch is None:
        batch = SourceBatch.objects.create(
            project=project,
            kind=SourceBatchKind.DEMO,
            origin=f"manage.py seed_demo --seed {data.seed}",
            created_by=users["admin"],
            status=SourceBatchStatus.SUCCEEDED,
            n_rows=len(demo.items),
            n_created=len(demo.items),
        )
    items = _ensure_items(project, demo, batch, users["admin"], report)
    guidelines = _ensure_guidelines(project, demo, users["admin"], items, report)
    _ensure_annotations(project, demo, users, items, guidelines, report)
    handout.rebuild_project(project)  # the labels were written in bulk (issue 14)
    _ensure_gold(project, demo, users, items, report)
    return project


def _ensure_items(project, demo: DemoProject, batch, admin, report: SeedReport) -> dict:
    existing = {i.external_id: i for i in Item.objects.filter(project=project)}
    new_ids, new_image_ids = [], []
    for demo_item in demo.items:
        if demo_item.external_id in existing:
            continue
        if demo_item.image_png is not None:
            item = Item(
                project=project,
                external_id=demo_item.external_id,
                kind=PayloadKind.IMAGE,
                metadata=demo_item.metadata,
                stats_status=ImageStatsStatus.PENDING,
                source_batch=batch,
            )
            item.content_hash = _sha256(demo_item.image_png)
            item.image.save(demo_item.filename, ContentFile(demo_item.image_png), save=False)
            item.save()
            new_image_ids.append(item.pk)
        else:
            item = Item.objects.create(
                project=project,
                external_id=demo_item.external_id,
                kind=PayloadKind.TEXT,
                text=demo_item.text or "",
                metadata=demo_item.metadata,
                content_hash=_sha256((demo_item.text or "").encode()),
                source_batch=batch,
            )
        if demo_item.tags:
            tags = services.get_or_create_tags(project=project, names=demo_item.tags)
            item.tags.set(tags.values())
        existing[demo_item.external_id] = item
        new_ids.append(item.pk)
        report.add("items")
    if new_ids:
        events.items_imported_bulk(
            project_id=project.pk,
            actor_id=admin.pk,
            batch_id=batch.pk,
            item_ids=new_ids,
        )
    if new_image_ids:
        services.enqueue_image_stats(item_ids=new_image_ids)
    return existing


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ensure_guidelines(project, demo: DemoProject, admin, items: dict, report) -> dict:
    guidelines = {g.version: g for g in Guideline.objects.filter(project=project)}
    for demo_guideline in sorted(demo.guidelines, key=lambda g: g.version):
        if demo_guideline.version in guidelines:
            continue
        guideline = services.publish_guideline(
            project=project,
            text=demo_guideline.text,
            published_by=admin,
            change_note=demo_guideline.title,
            example_item_ids=[items[e].pk for e in demo_guideline.examples if e in items],
        )
        # Keep the demo's timeline: each label was made under the version it records.
        Guideline.objects.filter(pk=guideline.pk).update(published_at=demo_guideline.published_at)
        guidelines[guideline.version] = guideline
        report.add("guidelines")
    return guidelines


# Share of the image project's items loaded without labels, so that a labeler who logs
# in to the demo has work waiting ("fresh from the line") instead of a finished project.
AWAITING_LABELS_SHARE = 0.1


def awaiting_labels(demo: DemoProject) -> set[str]:
    """External ids of the demo items loaded without labels: the last 10 % of a
    classification or detection project's items (none of a transcription project's)."""
    if demo.task_type not in ("classification", "detection"):
        return set()
    n = max(1, round(len(demo.items) * AWAITING_LABELS_SHARE))
    return {item.external_id for item in demo.items[-n:]}


def _ensure_annotations(
    project, demo: DemoProject, users, items, guidelines, report: SeedReport
) -> None:
    classes = {c.key: c for c in LabelClass.objects.filter(project=project)}
    done = set(
        Annotation.objects.filter(project=project, is_current=True).values_list(
            "item__external_id", "labeler__username"
        )
    )
    held_back = awaiting_labels(demo)
    is_text = project.task_type == "transcription"
    is_boxes = project.task_type == "detection"
    rows, values = [], []
    for a in demo.annotations:
        if (a.item, a.labeler) in done or a.item in held_back:
            continue
        rows.append(
            {
                "project_id": project.pk,
                "item_id": items[a.item].pk,
                "labeler_id": users[a.labeler].pk,
                "label_class_id": None if is_text or is_boxes else classes[a.value].pk,
                "value_text": a.value if is_text else "",
                "value_boxes": a.value if is_boxes else None,
                "guideline_id": getattr(guidelines.get(a.guideline_version), "pk", None),
                "time_spent_ms": round(a.time_spent_s * 1000),
                "comment": a.comment,
                "source": AnnotationSource.DEMO,
                "created_at": a.created_at,
            }
        )
        values.append({"labeler": a.labeler, "value": a.value})
    if not rows:
        return
    bulk.insert_rows(Annotation, rows)
    # The bulk writer reads no pks back: each (item, labeler) has one current annotation,
    # so one query finds the rows just written.
    new_pairs = {(r["item_id"], r["labeler_id"]) for r in rows}
    pks = {
        (item_id, labeler_id): pk
        for pk, item_id, labeler_id in Annotation.objects.filter(
            project=project, is_current=True, source=AnnotationSource.DEMO
        ).values_list("pk", "item_id", "labeler_id")
        if (item_id, labeler_id) in new_pairs
    }
    report.add("annotations", len(rows))
    events.annotations_imported_bulk(
        project_id=project.pk,
        actor_id=None,
        batch_id=project.source_batches.filter(kind=SourceBatchKind.DEMO).first().pk,
        rows=[
            (pks[(r["item_id"], r["labeler_id"])], r["item_id"], after)
            for r, after in zip(rows, values, strict=True)
        ],
    )


def _ensure_gold(project, demo: DemoProject, users, items, report) -> None:
    have = set(GoldLabel.objects.filter(item__project=project).values_list("item_id", flat=True))
    # The gold annotator's own annotation on an item (if it labelled it) carries the gold.
    labelled = set(
        Annotation.objects.filter(item__project=project, is_current=True).values_list(
            "item_id", "labeler_id"
        )
    )
    for gold in demo.gold:
        item = items[gold.item]
        if item.pk in have:
            continue
        annotator = users.get(gold.annotator)
        carrier = annotator if annotator and (item.pk, annotator.pk) in labelled else None
        services.set_gold_label(
            item=item,
            value=gold.value,
            source=GoldSource.IMPORT,
            actor=annotator,
            reason="demo expert reference",
            labeler=carrier,
        )
        report.add("gold")
