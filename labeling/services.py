"""Every write to labeling data goes through these functions.

Keyword-only, typed, atomic; they validate first and raise Django ``ValidationError``
(turned into a 400 by the API) and record provenance events in the same transaction.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.text import slugify

from labeling import handout, images, selectors
from labeling.boxes import BoxError, normalize_boxes
from labeling.models import (
    MAX_COMMENT_CHARS,
    MAX_TIME_SPENT_MS,
    Annotation,
    AnnotationSource,
    CheckSettings,
    GoldLabel,
    GoldSource,
    Guideline,
    ImageStatsStatus,
    Item,
    ItemDecision,
    LabelClass,
    MeasurementLevel,
    MonitoringSchedule,
    PayloadKind,
    Project,
    ProjectMembership,
    Role,
    Tag,
    TaskType,
    default_flag_thresholds,
)
from provenance import bulk, events

User = get_user_model()
# A class key is any text a person would write as a label ("Not Humor", "Défaut léger"),
# up to 80 characters; only control characters and surrounding spaces are refused (they
# would not survive a CSV or an HTML form). A URL- or file-safe form, where one is
# needed, is derived (``labeling.models.LabelClass.safe_key``), never asked of the user.
CLASS_KEY_MAX_LENGTH = 80
_CLASS_KEY_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def class_key_error(key: object) -> str | None:
    """Why ``key`` cannot be a class key, or ``None`` when it can."""
    if not isinstance(key, str) or not key.strip():
        return "a class key must be non-empty text"
    if len(key) > CLASS_KEY_MAX_LENGTH:
        return f"class key {key[:40]!r}... is longer than {CLASS_KEY_MAX_LENGTH} characters"
    if key != key.strip():
        return f"class key {key!r} must not start or end with spaces"
    if _CLASS_KEY_FORBIDDEN.search(key):
        return f"class key {key!r} must not contain control characters"
    return None


# --- Projects -------------------------------------------------------------------------
@transaction.atomic
def create_project(
    *,
    name: str,
    task_type: str = TaskType.CLASSIFICATION,
    level: str = MeasurementLevel.NOMINAL,
    overlap: int = 3,
    classes: Sequence[dict] = (),
    created_by: AbstractBaseUser | None = None,
    slug: str | None = None,
    description: str = "",
    guideline_text: str = "",
    **settings_fields: Any,
) -> Project:
    """Create a project with its classes (``[{key, name, rank?, value?, is_borderline?}]``);
    the creator becomes its manager. Raises ValidationError naming the bad field."""
    if task_type not in TaskType.values:
        raise ValidationError({"task_type": f"must be one of {', '.join(TaskType.values)}"})
    if level not in MeasurementLevel.values:
        raise ValidationError({"level": f"must be one of {', '.join(MeasurementLevel.values)}"})
    if int(overlap) < 1:
        raise ValidationError({"overlap": "must be at least 1"})
    if task_type in (TaskType.CLASSIFICATION, TaskType.DETECTION) and not classes:
        raise ValidationError({"classes": f"a {task_type} project needs at least one class"})
    if task_type == TaskType.DETECTION and level != MeasurementLevel.NOMINAL:
        raise ValidationError({"level": "a detection project's box classes are nominal"})
    keys = [c.get("key") for c in classes]
    for n, key in enumerate(keys, start=1):
        problem = class_key_error(key)
        if problem:
            raise ValidationError({"classes": f"class {n}: {problem}"})
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValidationError({"classes": f"duplicate class keys: {', '.join(duplicates)}"})
    check_monitoring_settings(settings_fields)
    # max_overlap bounds overlap; when not given it follows a large overlap.
    if "max_overlap" not in settings_fields:
        default_max = Project._meta.get_field("max_overlap").default
        settings_fields["max_overlap"] = max(int(overlap), default_max)
    slug = slug or _unique_slug(name)
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"a project with slug {slug!r} exists already"})
    project = Project(
        name=name,
        slug=slug,
        description=description,
        task_type=task_type,
        level=level,
        overlap=int(overlap),
        created_by=created_by,
        **settings_fields,
    )
    project.full_clean()
    project.save()
    for order, spec in enumerate(classes):
        add_label_class(project=project, order=order, **spec)
    if created_by is not None and not created_by.is_superuser:
        ProjectMembership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    if guideline_text:
        publish_guideline(project=project, text=guideline_text, published_by=created_by)
    events.project_created(
        project_id=project.pk,
        actor_id=getattr(created_by, "pk", None),
        after={
            "name": name,
            "task_type": task_type,
            "level": level,
            "overlap": project.overlap,
            "classes": [c["key"] for c in classes],
        },
    )
    return project


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "project"
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def add_label_class(
    *,
    project: Project,
    key: str,
    name: str | None = None,
    rank: int | None = None,
    value: float | None = None,
    is_borderline: bool = False,
    description: str = "",
    order: int | None = None,
    shortcut: str = "",
) -> LabelClass:
    problem = class_key_error(key)
    if problem:
        raise ValidationError({"key": problem})
    if project.classes.filter(key=key).exists():
        raise ValidationError({"key": f"class key {key!r} is already used in this project"})
    # a slug-like key ("no_defect") reads better as "No defect"; free text is its own name
    slug_like = key == key.lower() and " " not in key
    label_class = LabelClass(
        project=project,
        key=key,
        name=name or (key.replace("_", " ").capitalize() if slug_like else key),
        rank=rank,
        value=value,
        is_borderline=bool(is_borderline),
        description=description,
        order=project.classes.count() if order is None else order,
        shortcut=shortcut,
    )
    label_class.full_clean(exclude=["project", "merged_into"])
    label_class.save()
    return label_class


@transaction.atomic
def set_membership(
    *, project: Project, user: AbstractBaseUser, role: str, actor: AbstractBaseUser | None = None
) -> ProjectMembership:
    """Add ``user`` to ``project`` with ``role``, or change their role."""
    if role not in Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Role.values)}"})
    membership = ProjectMembership.objects.filter(project=project, user=user).first()
    before = {"role": membership.role} if membership else None
    if membership is None:
        membership = ProjectMembership.objects.create(project=project, user=user, role=role)
    elif membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    after = {"role": role, "username": user.get_username()}
    if before is None:
        events.member_added(
            project_id=project.pk, actor_id=getattr(actor, "pk", None), user_id=user.pk, after=after
        )
    else:
        events.member_changed(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            user_id=user.pk,
            before=before,
            after=after,
        )
    return membership


@transaction.atomic
def publish_guideline(
    *,
    project: Project,
    text: str,
    published_by: AbstractBaseUser | None = None,
    change_note: str = "",
    example_item_ids: Iterable[int] = (),
) -> Guideline:
    """Publish the next guideline version; labelers see it from their next item on."""
    if not text.strip():
        raise ValidationError({"text": "a guideline needs text"})
    # Lock the project row so two publishers cannot take the same version number.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    latest = project.guidelines.order_by("-version").values_list("version", flat=True).first()
    guideline = Guideline.objects.create(
        project=project,
        version=(latest or 0) + 1,
        text=text,
        change_note=change_note,
        published_by=published_by,
    )
    example_ids = list(example_item_ids)
    if example_ids:
        found = set(
            Item.objects.filter(project=project, pk__in=example_ids).values_list("pk", flat=True)
        )
        missing = sorted(set(example_ids) - found)
        if missing:
            raise ValidationError({"example_items": f"items not in this project: {missing}"})
        guideline.example_items.set(example_ids)
    events.guideline_published(
        project_id=project.pk,
        actor_id=getattr(published_by, "pk", None),
        guideline_id=guideline.pk,
        version=guideline.version,
        reason=change_note,
    )
    return guideline


# --- Items ----------------------------------------------------------------------------
def get_or_create_tags(*, project: Project, names: Iterable[str]) -> dict[str, Tag]:
    wanted = {slugify(n) for n in names if n and slugify(n)}
    existing = {t.name: t for t in Tag.objects.filter(project=project, name__in=wanted)}
    missing = [Tag(project=project, name=n) for n in sorted(wanted - set(existing))]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {t.name: t for t in Tag.objects.filter(project=project, name__in=wanted)}
    return existing


@transaction.atomic
def create_image_item(
    *,
    project: Project,
    external_id: str,
    image_bytes: bytes,
    metadata: dict | None = None,
    tags: Sequence[str] = (),
    source_batch_id: int | None = None,
    actor: AbstractBaseUser | None = None,
) -> Item:
    """Store an uploaded image item and queue its statistics for the worker.

    The image is checked (bytes, pixels, format) before anything is written.
    """
    try:
        images.open_checked(
            image_bytes,
            max_bytes=settings.CONCORD_MAX_IMAGE_BYTES,
            max_pixels=settings.CONCORD_MAX_IMAGE_PIXELS,
        )
    except images.ImageRejected as exc:
        raise ValidationError({"image": str(exc)}) from exc
    item = Item(
        project=project,
        external_id=external_id,
        kind=PayloadKind.IMAGE,
        metadata=metadata or {},
        content_hash=hashlib.sha256(image_bytes).hexdigest(),
        stats_status=ImageStatsStatus.PENDING,
        source_batch_id=source_batch_id,
    )
    item.image.save(f"{external_id}.png", ContentFile(image_bytes), save=False)
    try:
        with transaction.atomic():
            item.save()
    except IntegrityError as exc:
        raise ValidationError(
            {"external_id": f"item {external_id!r} exists already in this project"}
        ) from exc
    if tags:
        item.tags.set(get_or_create_tags(project=project, names=tags).values())
    events.item_imported(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        item_id=item.pk,
        batch_id=source_batch_id,
        after={"external_id": external_id, "kind": item.kind, "metadata": item.metadata},
    )
    enqueue_image_stats(item_ids=[item.pk])
    return item


IMAGE_STATS_BATCH = 50


def enqueue_image_stats(*, item_ids: Sequence[int]) -> None:
    """Queue statistics for these items once the current transaction commits, in batches
    of ``IMAGE_STATS_BATCH`` items per task (a 100,000-image import is 2,000 messages)."""
    from labeling.tasks import compute_image_stats

    ids = list(item_ids)
    batches = [ids[i : i + IMAGE_STATS_BATCH] for i in range(0, len(ids), IMAGE_STATS_BATCH)]
    transaction.on_commit(lambda: [compute_image_stats.delay(batch) for batch in batches])


def compute_item_image_stats(*, item_id: int) -> Item:
    """Fill in an image item's width, height, brightness, hashes and thumbnail.

    Reads the stored file, never a path taken from item data. A broken image marks the
    item ``failed`` with the reason rather than raising, so one bad file does not stop a batch.
    """
    item = Item.objects.select_related("project").get(pk=item_id)
    if item.kind != PayloadKind.IMAGE or not item.image:
        item.stats_status = ImageStatsStatus.NOT_APPLICABLE
        item.save(update_fields=["stats_status", "updated_at"])
        return item
    try:
        with item.image.open("rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return _mark_image_stats_failed(item, "the stored image file is missing")
    limits = {
        "max_bytes": settings.CONCORD_MAX_IMAGE_BYTES,
        "max_pixels": settings.CONCORD_MAX_IMAGE_PIXELS,
    }
    try:
        stats = images.compute_stats(data, **limits)
        thumb = images.make_thumbnail(data, size=settings.CONCORD_THUMBNAIL_SIZE, **limits)
    except images.ImageRejected as exc:
        return _mark_image_stats_failed(item, str(exc))
    _store_image_stats(item, stats, thumb)
    return item


def _mark_image_stats_failed(item: Item, message: str) -> Item:
    """Record why an item's statistics could not be computed (shown in the admin)."""
    item.stats_status = ImageStatsStatus.FAILED
    item.stats_error = message[:500]
    item.save(update_fields=["stats_status", "stats_error", "updated_at"])
    return item


@transaction.atomic
def _store_image_stats(
    item: Item, stats: images.ImageStats, thumbnail: bytes, *, source_url: str = ""
) -> None:
    """Save an item's statistics and thumbnail and record the event, together."""
    if item.thumbnail:
        item.thumbnail.delete(save=False)
    item.thumbnail.save(f"{item.pk}.jpg", ContentFile(thumbnail), save=False)
    item.width, item.height = stats.width, stats.height
    item.mean_brightness = stats.mean_brightness
    item.perceptual_hash = stats.perceptual_hash
    item.content_hash = stats.content_hash
    item.stats_status = ImageStatsStatus.DONE
    item.stats_error = ""
    item.save(
        update_fields=[
            "thumbnail",
            "width",
            "height",
            "mean_brightness",
            "perceptual_hash",
            "content_hash",
            "stats_status",
            "stats_error",
            "updated_at",
        ]
    )
    after = {
        "width": stats.width,
        "height": stats.height,
        "mean_brightness": stats.mean_brightness,
        "perceptual_hash": stats.perceptual_hash,
    }
    if source_url:
        after["url"] = source_url
    events.image_stats_computed(project_id=item.project_id, item_id=item.pk, after=after)


# --- Annotations ----------------------------------------------------------------------
def item_image_size(item: Item) -> tuple[int, int] | None:
    """(width, height) in pixels of the item's image when computed on ingest, else None."""
    if item.width and item.height:
        return (item.width, item.height)
    return None


def resolve_value(
    *, project: Project, value: Any, image_size: tuple[int, int] | None = None
) -> dict:
    """Turn a submitted value into annotation fields, or raise ValidationError.

    Classification: a class key (a merged class is accepted and stored as given, the merge
    maps it later). Rating: a class key or a number. Transcription: non-empty text.
    Detection: a list of boxes (see :mod:`labeling.boxes`), checked against
    ``image_size`` (width, height in pixels) when given.
    """
    if project.task_type == TaskType.TRANSCRIPTION:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError({"value": "a transcription needs non-empty text"})
        return {"value_text": value}
    if project.task_type == TaskType.DETECTION:
        try:
            boxes = normalize_boxes(
                value,
                class_keys=set(project.classes.values_list("key", flat=True)),
                image_size=image_size,
            )
        except BoxError as exc:
            raise ValidationError({"value": str(exc)}) from exc
        return {"value_boxes": boxes}
    if isinstance(value, str):
        label_class = project.classes.filter(key=value).first()
        if label_class is None:
            known = ", ".join(project.classes.values_list("key", flat=True))
            raise ValidationError({"value": f"unknown class {value!r}; known classes: {known}"})
        return {"label_class": label_class, "value_number": label_class.value}
    if project.task_type == TaskType.RATING and isinstance(value, int | float):
        return {"value_number": float(value)}
    raise ValidationError({"value": f"expected a class key, got {value!r}"})


def record_annotation(
    *,
    item: Item,
    labeler: AbstractBaseUser,
    value: Any,
    time_spent_ms: int | None = None,
    comment: str = "",
    guideline: Guideline | None = None,
    source: str = AnnotationSource.UI,
    created_at=None,
    reason: str = "",
    refresh: bool = True,
) -> Annotation:
    """Record ``labeler``'s label for ``item``; a second call is a revision. Runs in the
    caller's transaction (``labeling.assignment.submit_label``, which rolls back as a
    whole on any error: no savepoint round trips on the labeling path).

    A revision is a new current row; the previous one stays, marked not current. The row
    of the current annotation is locked so two submissions cannot both become current.
    The labeler's ``n_done`` counter moves with a first label, and (unless ``refresh`` is
    False: the caller refreshes it itself, ``labeling.assignment.submit_label``) the
    item's hand-out state is recounted under the item's row lock.
    """
    project = item.project
    if refresh:
        handout.lock_items([item.pk])
    if time_spent_ms is not None and not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS:
        raise ValidationError(
            {"time_spent_ms": f"must be between 0 and {MAX_TIME_SPENT_MS} (one day)"}
        )
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValidationError(
            {"comment": f"at most {MAX_COMMENT_CHARS} characters, got {len(comment)}"}
        )
    fields = resolve_value(project=project, value=value, image_size=item_image_size(item))
    if guideline is None:
        guideline = project.guidelines.order_by("-version").first()
    previous = (
        Annotation.objects.select_for_update()
        .filter(item=item, labeler=labeler, is_current=True)
        .first()
    )
    if previous is not None:
        previous.is_current = False
        previous.save(update_fields=["is_current"])
    annotation = Annotation.objects.create(
        project=project,
        item=item,
        labeler=labeler,
        guideline=guideline,
        time_spent_ms=time_spent_ms,
        comment=comment,
        source=source,
        supersedes=previous,
        created_at=created_at or timezone.now(),
        **fields,
    )
    after = {
        "value": selectors.annotation_value(annotation),
        "guideline_version": guideline.version if guideline else None,
        "comment": comment,
    }
    if previous is None:
        handout.add_done(project, labeler.pk, 1)
    if refresh:
        handout.refresh_items(project, [item.pk])
    if previous is None:
        events.annotation_created(
            project_id=project.pk,
            actor_id=labeler.pk,
            annotation_id=annotation.pk,
            item_id=item.pk,
            after=after,
        )
    else:
        events.annotation_revised(
            project_id=project.pk,
            actor_id=labeler.pk,
            annotation_id=annotation.pk,
            item_id=item.pk,
            before={"annotation": previous.pk, "value": selectors.annotation_value(previous)},
            after=after,
            reason=reason,
        )
    return annotation


# The same in a transaction of its own (a savepoint inside the caller's): imports, the
# demo, SMEs' tools and tests call this; the labeling path calls record_annotation.
submit_annotation = transaction.atomic(record_annotation)


@transaction.atomic
def set_item_decision(
    *,
    item: Item,
    label_class: LabelClass | None,
    actor: AbstractBaseUser,
    rationale: str,
    resolution_id: int | None = None,
    value_boxes: list | None = None,
) -> tuple[ItemDecision, bool]:
    """Record an SME's decision on ``item`` (its final label), replacing an earlier one:
    a class, or for detection projects ``value_boxes`` (already normalised boxes).

    Ground truth (``GoldLabel``) is never touched. Returns ``(decision,
    conflicts_with_ground_truth)``: True when the item has ground truth of another class
    (other boxes)."""
    ItemDecision.objects.filter(item=item).delete()
    decision = ItemDecision.objects.create(
        item=item,
        label_class=label_class,
        value_boxes=value_boxes,
        decided_by=actor,
        rationale=rationale,
        resolution_id=resolution_id,
    )
    if value_boxes is not None:
        gold_boxes = GoldLabel.objects.filter(item=item).values_list("value_boxes", flat=True)
        gold_boxes = gold_boxes.first()
        return decision, gold_boxes is not None and gold_boxes != value_boxes
    gold = GoldLabel.objects.filter(item=item).values_list("label_class_id", flat=True).first()
    return decision, gold is not None and gold != label_class.pk


@transaction.atomic
def set_gold_label(
    *,
    item: Item,
    value: Any,
    source: str = GoldSource.IMPORT,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    labeler: AbstractBaseUser | None = None,
) -> GoldLabel:
    """Set (or replace) the item's reference label, recording before and after.

    ``labeler``: the labeler whose annotation carries this ground truth, if any (its label
    on the item is then not measured against the gold)."""
    fields = resolve_value(project=item.project, value=value, image_size=item_image_size(item))
    existing = GoldLabel.objects.select_for_update().filter(item=item).first()
    before = None
    if existing is not None:
        before = {
            "value": selectors.annotation_value(existing),
            "source": existing.source,
        }
        existing.delete()
    gold = GoldLabel.objects.create(
        item=item, source=source, created_by=actor, labeler=labeler, **fields
    )
    events.gold_set(
        project_id=item.project_id,
        actor_id=getattr(actor, "pk", None),
        item_id=item.pk,
        before=before,
        after={"value": value, "source": source},
        reason=reason,
    )
    return gold


# --- Accounts -------------------------------------------------------------------------
def create_user(
    *, username: str, password: str | None = None, email: str = "", is_active: bool = True
) -> AbstractBaseUser:
    """Create an account; without a password it cannot log in until one is set."""
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"user {username!r} exists already"})
    user = User(username=username, email=email, is_active=is_active)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


# --- Managers' REST operations (issue 4) ----------------------------------------------
PROJECT_EDITABLE_FIELDS = (
    "name",
    "description",
    "level",
    "overlap",
    "dynamic_overlap",
    "min_overlap",
    "max_overlap",
    "assignment_ttl_minutes",
    "box_iou_threshold",
    "is_archived",
    # Monitoring (consistency.monitoring), bounded by MONITORING_BOUNDS.
    "monitoring_min_window",
    "monitoring_q_threshold",
    "monitoring_min_effect",
    "monitoring_schedule",
    # Ground-truth checks: stored on CheckSettings (CHECK_FIELDS), not on the project.
    "check_rate",
    "check_min_accuracy",
    "check_min_checks",
)

# Monitoring settings: (smallest, largest, whole number?, smallest excluded?).
MONITORING_BOUNDS = {
    # A window below two items cannot give any test statistic.
    "monitoring_min_window": (2, 1_000_000, True, False),
    # A q-value threshold of 0 would never flag; above 0.5 most noise would.
    "monitoring_q_threshold": (0.0, 0.5, False, True),
    # Effect sizes (shift in SD units, distances, shares) of more than 10 mean nothing.
    "monitoring_min_effect": (0.0, 10.0, False, False),
}
# Project-settings name -> CheckSettings field.
CHECK_FIELDS = {
    "check_rate": "rate",
    "check_min_accuracy": "min_accuracy",
    "check_min_checks": "min_checks",
}


def check_monitoring_settings(values: dict) -> None:
    """Raise ValidationError naming the first monitoring setting in ``values`` that is
    not a finite number within :data:`MONITORING_BOUNDS` (or an unknown schedule)."""
    for name, (low, high, whole, open_low) in MONITORING_BOUNDS.items():
        if name not in values:
            continue
        value = values[name]
        kind = "a whole number" if whole else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (whole and not float(value).is_integer())
            or not math.isfinite(value)
            or not (low < value if open_low else low <= value)
            or value > high
        ):
            lower = f"above {low:g}" if open_low else f"at least {low:g}"
            raise ValidationError({name: f"must be {kind} {lower} and at most {high:g}"})
    if "monitoring_schedule" in values and values["monitoring_schedule"] not in (
        MonitoringSchedule.values
    ):
        raise ValidationError(
            {"monitoring_schedule": f"must be one of {', '.join(MonitoringSchedule.values)}"}
        )


@transaction.atomic
def update_check_settings(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    rate: float | None = None,
    min_accuracy: float | None = None,
    min_checks: int | None = None,
) -> CheckSettings:
    """Change how ground-truth checks are mixed in: ``rate`` and ``min_accuracy`` in 0–1,
    ``min_checks`` 1–10,000 (None: unchanged). Raises ValidationError naming the field;
    records ``checks.changed`` with before and after."""
    errors = {}
    for name, value in (("rate", rate), ("min_accuracy", min_accuracy)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            errors[name] = "must be a number between 0 and 1"
    if min_checks is not None and (
        isinstance(min_checks, bool)
        or not isinstance(min_checks, int)
        or not 1 <= min_checks <= 10_000
    ):
        errors["min_checks"] = "must be a whole number between 1 and 10000"
    if errors:
        raise ValidationError(errors)
    policy, _ = CheckSettings.objects.select_for_update().get_or_create(project=project)
    before = {
        "rate": policy.rate,
        "min_accuracy": policy.min_accuracy,
        "min_checks": policy.min_checks,
    }
    for name, value in (("rate", rate), ("min_accuracy", min_accuracy), ("min_checks", min_checks)):
        if value is not None:
            setattr(policy, name, float(value) if name != "min_checks" else value)
    policy.save()
    events.checks_changed(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        before=before,
        after={
            "rate": policy.rate,
            "min_accuracy": policy.min_accuracy,
            "min_checks": policy.min_checks,
        },
    )
    return policy


OVERLAP_FIELDS = ("overlap", "dynamic_overlap", "min_overlap", "max_overlap")


def _check_flag_thresholds(value: Any) -> None:
    """The thresholds are the known keys (``default_flag_thresholds``) with numbers."""
    known = default_flag_thresholds()
    if not isinstance(value, dict):
        raise ValidationError({"flag_thresholds": "expected an object of numbers"})
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValidationError({"flag_thresholds": f"unknown threshold(s): {', '.join(unknown)}"})
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValidationError({f"threshold_{key}": "must be a number"})
        if not math.isfinite(number):
            raise ValidationError({f"threshold_{key}": "must be a finite number"})


@transaction.atomic
def update_project(
    *, project: Project, actor: AbstractBaseUser | None = None, **changes: Any
) -> Project:
    """Change a project's settings (``PROJECT_EDITABLE_FIELDS``; the task type is fixed once
    created, since stored labels depend on it). Records before and after. The
    ``check_*`` settings go to :func:`update_check_settings` (errors keep their
    ``check_*`` names). Raises ValidationError naming the field."""
    unknown = sorted(set(changes) - set(PROJECT_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({unknown[0]: "this field cannot be changed"})
    check_monitoring_settings(changes)
    checks = {CHECK_FIELDS[k]: changes.pop(k) for k in list(changes) if k in CHECK_FIELDS}
    stored = selectors.check_settings(project)
    # The settings page posts every field: an unchanged policy records no event.
    if any(stored[k] != v for k, v in checks.items()):
        try:
            update_check_settings(project=project, actor=actor, **checks)
        except ValidationError as exc:
            names = {v: k for k, v in CHECK_FIELDS.items()}
            raise ValidationError(
                {names.get(k, k): v for k, v in exc.message_dict.items()}
            ) from exc
    if not changes:
        return Project.objects.get(pk=project.pk)
    if "level" in changes and changes["level"] not in MeasurementLevel.values:
        raise ValidationError({"level": f"must be one of {', '.join(MeasurementLevel.values)}"})
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = {f: getattr(project, f) for f in changes}
    for name, value in changes.items():
        setattr(project, name, value)
    project.full_clean()
    if project.min_overlap > project.max_overlap:
        raise ValidationError({"max_overlap": "must be at least min_overlap"})
    project.save(update_fields=list(changes))
    if any(before[f] != getattr(project, f) for f in changes if f in OVERLAP_FIELDS):
        # Every item's target moves with these: recount the hand-out state (linear in the
        # project, once per settings change).
        handout.rebuild_project(project)
    events.project_updated(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        before=before,
        after={f: getattr(project, f) for f in changes},
    )
    return project


@transaction.atomic
def remove_membership(
    *, project: Project, user: AbstractBaseUser, actor: AbstractBaseUser | None = None
) -> None:
    """Take ``user`` out of ``project``; their labels stay. The last manager cannot leave."""
    membership = (
        ProjectMembership.objects.select_for_update().filter(project=project, user=user).first()
    )
    if membership is None:
        raise ValidationError({"user": f"{user.get_username()!r} is not a member"})
    if (
        membership.role == Role.MANAGER
        and not ProjectMembership.objects.filter(project=project, role=Role.MANAGER)
        .exclude(pk=membership.pk)
        .exists()
    ):
        raise ValidationError({"user": "the last manager of a project cannot be removed"})
    membership.delete()
    events.member_removed(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        user_id=user.pk,
        before={"role": membership.role, "username": user.get_username()},
    )


def create_account(
    *,
    username: str,
    password: str | None = None,
    email: str = "",
    actor: AbstractBaseUser | None = None,
) -> AbstractBaseUser:
    """An account created by a manager: the password (when given) must pass the password
    validators; without one the account cannot log in until a password is set."""
    from django.contrib.auth import password_validation

    if password:
        try:
            password_validation.validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from exc
    with transaction.atomic():
        user = create_user(username=username, password=password, email=email)
        events.user_created(
            actor_id=getattr(actor, "pk", None),
            user_id=user.pk,
            after={"username": username, "email": email, "has_password": bool(password)},
        )
    return user


@transaction.atomic
def set_user_active(
    *, user: AbstractBaseUser, is_active: bool, actor: AbstractBaseUser | None = None
) -> AbstractBaseUser:
    """Activate (or deactivate) an account, e.g. a labeler created by a label import."""
    before = user.is_active
    user.is_active = bool(is_active)
    user.save(update_fields=["is_active"])
    record = events.user_activated if user.is_active else events.user_deactivated
    record(
        actor_id=getattr(actor, "pk", None),
        user_id=user.pk,
        before={"is_active": before},
        after={"is_active": user.is_active},
    )
    return user


def enqueue_remote_image_stats(*, item_ids: Sequence[int]) -> None:
    """Queue fetching and statistics of image-URL items once the transaction commits."""
    from labeling.tasks import compute_remote_image_stats

    ids = list(item_ids)
    transaction.on_commit(lambda: [compute_remote_image_stats.delay(item_id) for item_id in ids])


def compute_remote_item_image_stats(*, item_id: int) -> Item:
    """Fetch an image-URL item's image (labeling.fetch: public addresses only, at every
    redirect; bytes and time limited) and store its statistics and thumbnail.

    A refused or broken fetch marks the item ``failed`` with the reason; it does not raise.
    """
    from labeling import fetch

    item = Item.objects.get(pk=item_id)
    if item.kind != PayloadKind.IMAGE_URL or not item.image_url:
        return item
    limits = {
        "max_bytes": settings.CONCORD_MAX_IMAGE_BYTES,
        "max_pixels": settings.CONCORD_MAX_IMAGE_PIXELS,
    }
    try:
        fetched = fetch.fetch_url(
            item.image_url,
            max_bytes=settings.CONCORD_MAX_IMAGE_BYTES,
            timeout=settings.CONCORD_FETCH_TIMEOUT_SECONDS,
        )
        stats = images.compute_stats(fetched.data, **limits)
        thumb = images.make_thumbnail(fetched.data, size=settings.CONCORD_THUMBNAIL_SIZE, **limits)
    except (fetch.FetchRefused, images.ImageRejected) as exc:
        return _mark_image_stats_failed(item, str(exc))
    _store_image_stats(item, stats, thumb, source_url=fetched.url)
    return item


@transaction.atomic
def create_project_class(
    *, project: Project, actor: AbstractBaseUser | None = None, **spec: Any
) -> LabelClass:
    """Add a class to an existing project (``{key, name?, rank?, value?, is_borderline?,
    description?, shortcut?}``); a key the project already has is refused."""
    key = spec.get("key")
    if LabelClass.objects.filter(project=project, key=key).exists():
        raise ValidationError({"key": f"the project already has a class {key!r}"})
    label_class = add_label_class(project=project, **spec)
    events.class_created(
        project_id=project.pk,
        class_id=label_class.pk,
        actor_id=getattr(actor, "pk", None),
        after={"key": label_class.key, "name": label_class.name},
    )
    return label_class


# --- Tags in bulk ---------------------------------------------------------------------
MAX_TAGGED_ITEMS = 100_000


@transaction.atomic
def change_item_tags(
    *,
    project: Project,
    external_ids: Sequence[str] | None = None,
    item_ids: Sequence[int] | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    actor: AbstractBaseUser | None = None,
) -> dict:
    """Add and remove tags on many items of ``project`` at once.

    The items are named by ``external_ids`` (an unknown one is an error naming its
    position, ``items[i]``) or by ``item_ids`` (primary keys of the project's items, e.g.
    from :func:`labeling.selectors.filter_items`), not both. Tag names are normalised as
    on import (slugified); a tag to add is created when the project lacks it. Adding a
    tag an item has, or removing one it lacks, changes nothing. One
    ``items.tags_changed`` event records the call.

    Returns ``{n_items, added: {tag: links created}, removed: {tag: links deleted},
    tag_counts: {tag: items carrying it}}`` (counts over the whole project, every tag).
    Raises ``ValidationError`` naming the field at fault; nothing is written then.
    """
    add_names = [slugify(str(n)) for n in add]
    remove_names = [slugify(str(n)) for n in remove]
    for field, raw, names in (("add", add, add_names), ("remove", remove, remove_names)):
        bad = [str(r) for r, n in zip(raw, names, strict=True) if not n]
        if bad:
            raise ValidationError({field: [f"not a usable tag name: {b!r}" for b in bad]})
    if not add_names and not remove_names:
        raise ValidationError({"add": ["name tags to add or to remove"]})
    both = sorted(set(add_names) & set(remove_names))
    if both:
        raise ValidationError({"remove": [f"tag {t!r} is both added and removed" for t in both]})
    if (external_ids is None) == (item_ids is None):
        raise ValidationError({"items": ["name the items by external ids or by filters"]})
    if external_ids is not None:
        ids = _item_ids_by_external_id(project, external_ids)
    else:
        # Kept to the project's own items, whatever the caller passed.
        ids = []
        for chunk in bulk.chunks(sorted(set(item_ids))):
            ids += Item.objects.filter(project=project, pk__in=chunk).values_list("pk", flat=True)
        ids.sort()
    if not ids:
        raise ValidationError({"items": ["no item selected"]})
    if len(ids) > MAX_TAGGED_ITEMS:
        raise ValidationError({"items": [f"at most {MAX_TAGGED_ITEMS} items per call"]})

    through = Item.tags.through
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    if add_names:
        tags = get_or_create_tags(project=project, names=add_names)
        for name in sorted(set(add_names)):
            tag = tags[name]
            have: set[int] = set()
            for chunk in bulk.chunks(ids):
                have.update(
                    through.objects.filter(tag=tag, item_id__in=chunk).values_list(
                        "item_id", flat=True
                    )
                )
            new = [{"item_id": i, "tag_id": tag.pk} for i in ids if i not in have]
            bulk.insert_rows(through, new)
            added[name] = len(new)
    for name in sorted(set(remove_names)):
        n = 0
        for chunk in bulk.chunks(ids):
            n += through.objects.filter(
                tag__project=project, tag__name=name, item_id__in=chunk
            ).delete()[0]
        removed[name] = n
    events.items_tags_changed(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        after={"add": added, "remove": removed, "n_items": len(ids), "item_ids": ids},
    )
    counts = dict(
        Tag.objects.filter(project=project).annotate(n=Count("items")).values_list("name", "n")
    )
    return {"n_items": len(ids), "added": added, "removed": removed, "tag_counts": counts}


def _item_ids_by_external_id(project: Project, external_ids: Sequence[str]) -> list[int]:
    """Primary keys of the items named, sorted; ``ValidationError`` naming the positions
    (``items[i]``, 0-based) of ids that are not text or not items of the project."""
    wanted = [e if isinstance(e, str) else None for e in external_ids]
    found: dict[str, int] = {}
    for chunk in bulk.chunks(sorted({e for e in wanted if e})):
        found.update(
            Item.objects.filter(project=project, external_id__in=chunk).values_list(
                "external_id", "pk"
            )
        )
    errors = [
        f"items[{i}]: unknown item {e!r}" if e is not None else f"items[{i}]: not a text"
        for i, e in enumerate(wanted)
        if e is None or e not in found
    ]
    if errors:
        shown = errors[:100]
        if len(errors) > 100:
            shown.append(f"... and {len(errors) - 100} more")
        raise ValidationError({"items": shown})
    return sorted({found[e] for e in wanted})


@transaction.atomic
def update_flag_thresholds(
    *, project: Project, thresholds: dict, actor: AbstractBaseUser | None = None
) -> Project:
    """Set the project's flag thresholds (the keys of ``default_flag_thresholds``, numbers);
    the next agreement run's flags use them. Records before and after when they change."""
    _check_flag_thresholds(thresholds)
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = dict(project.flag_thresholds or {})
    after = {**before, **thresholds}
    if after != before:
        project.flag_thresholds = after
        project.save(update_fields=["flag_thresholds"])
        events.project_updated(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            before={"flag_thresholds": before},
            after={"flag_thresholds": after},
        )
    return project


CLASS_EDITABLE_FIELDS = ("name", "shortcut", "value", "is_borderline", "order")


@transaction.atomic
def update_label_classes(
    *, project: Project, classes: Sequence[dict], actor: AbstractBaseUser | None = None
) -> list[LabelClass]:
    """Rename, reorder and re-key (shortcut) the project's classes and add new ones, from
    rows ``{id?, key, name?, shortcut?, value?, is_borderline?}`` in the wanted order.

    A row with ``id`` changes that class (its key stays: stored labels and exports name
    it); a row without adds a class. Classes not listed are left as they are (a merge
    never deletes). Shortcuts are single keys, unique in the project. Raises
    ``ValidationError`` naming ``class_<position>`` on a bad row; nothing is written then.
    Returns the classes in their new order. One ``project.updated`` event records the
    before and after of the changed classes.
    """
    existing = {c.pk: c for c in LabelClass.objects.select_for_update().filter(project=project)}
    shortcuts = [str(r.get("shortcut") or "").lower() for r in classes if r.get("shortcut")]
    for position, row in enumerate(classes):
        shortcut = str(row.get("shortcut") or "")
        if len(shortcut) > 1:
            raise ValidationError({f"class_{position}": "a shortcut is one key"})
        if shortcut and shortcuts.count(shortcut.lower()) > 1:
            raise ValidationError({f"class_{position}": f"shortcut {shortcut!r} is used twice"})
        if row.get("id") is not None and row["id"] not in existing:
            raise ValidationError({f"class_{position}": "not a class of this project"})
    before, after, result = {}, {}, []
    for order, row in enumerate(classes):
        if row.get("id") is None:
            label_class = add_label_class(
                project=project,
                key=row.get("key") or "",
                name=row.get("name") or None,
                value=row.get("value"),
                is_borderline=bool(row.get("is_borderline")),
                shortcut=str(row.get("shortcut") or ""),
                order=order,
            )
            after[label_class.key] = {"added": True, "order": order}
            result.append(label_class)
            continue
        label_class = existing[row["id"]]
        wanted = {
            "name": (row.get("name") or "").strip() or label_class.name,
            "shortcut": str(row.get("shortcut") or ""),
            "value": row.get("value"),
            "is_borderline": bool(row.get("is_borderline")),
            "order": order,
        }
        changed = [f for f in CLASS_EDITABLE_FIELDS if getattr(label_class, f) != wanted[f]]
        if changed:
            before[label_class.key] = {f: getattr(label_class, f) for f in changed}
            for f in changed:
                setattr(label_class, f, wanted[f])
            label_class.full_clean(exclude=["project", "merged_into"])
            label_class.save(update_fields=changed)
            after[label_class.key] = {f: wanted[f] for f in changed}
        result.append(label_class)
    if after:
        events.project_updated(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            before={"classes": before},
            after={"classes": after},
        )
    return result
