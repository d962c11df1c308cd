"""Labeling nouns: projects, classes, guidelines, source batches (imports), items,
assignments, annotations.

Models hold data and constraints only; every write goes through ``labeling.services``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


def default_flag_thresholds() -> dict:
    """Per-project thresholds for ambiguity flags (see consistency flags)."""
    return {
        "item_majority_share_below": 0.67,
        "merge_min_confusion_share": 0.15,
        "merge_min_symmetry": 0.5,
        "borderline_min_split": 0.3,
        "slice_alpha_gap": 0.15,
        "slice_min_items": 10,
        "labeler_agreement_z": -2.0,
    }


class TaskType(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    TRANSCRIPTION = "transcription", "Transcription"
    RATING = "rating", "Rating"
    DETECTION = "detection", "Detection (bounding boxes)"


class MeasurementLevel(models.TextChoices):
    NOMINAL = "nominal", "Nominal"
    ORDINAL = "ordinal", "Ordinal"
    INTERVAL = "interval", "Interval"
    RATIO = "ratio", "Ratio"


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    SME = "sme", "Subject-matter expert"
    MANAGER = "manager", "Manager"
    VIEWER = "viewer", "Viewer"


# Bounds on what users may set (checked in services; the API serializers repeat them so
# the schema shows them). Beyond them a value is a mistake or an attack: a TTL of 10^9
# minutes overflows the datetime arithmetic of every hand-out.
MAX_ASSIGNMENT_TTL_MINUTES = 43_200  # 30 days
MAX_OVERLAP = 100
MAX_TIME_SPENT_MS = 24 * 3600 * 1000  # one day
MAX_COMMENT_CHARS = 10_000
MAX_GUIDELINE_CHARS = 200_000


class MonitoringSchedule(models.TextChoices):
    DAILY = "daily", "Daily"
    OFF = "off", "Off"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    task_type = models.CharField(
        max_length=20, choices=TaskType.choices, default=TaskType.CLASSIFICATION
    )
    level = models.CharField(
        max_length=10, choices=MeasurementLevel.choices, default=MeasurementLevel.NOMINAL
    )
    overlap = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    dynamic_overlap = models.BooleanField(
        default=False,
        help_text="Stop at min_overlap when the first labels agree; go up to max_overlap "
        "when they disagree.",
    )
    min_overlap = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    max_overlap = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    assignment_ttl_minutes = models.PositiveIntegerField(
        default=30, help_text="An assignment not submitted within this time is handed out again."
    )
    flag_thresholds = models.JSONField(default=default_flag_thresholds, blank=True)
    # Detection projects: two boxes are the same object when their IoU reaches this.
    box_iou_threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.05), MaxValueValidator(0.95)]
    )
    # Monitoring (consistency.monitoring): below the minimum window a check gives no
    # verdict; a check drifts when its q-value is below the threshold and its effect size
    # is at least the minimum.
    monitoring_min_window = models.PositiveIntegerField(
        default=30, help_text="Items or labels a window needs before a drift verdict."
    )
    monitoring_q_threshold = models.FloatField(
        default=0.05, help_text="Benjamini–Hochberg q-value below which a check may drift."
    )
    monitoring_min_effect = models.FloatField(
        default=0.1, help_text="Smallest effect size that counts as drift."
    )
    monitoring_schedule = models.CharField(
        max_length=10, choices=MonitoringSchedule.choices, default=MonitoringSchedule.DAILY
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMembership", related_name="concord_projects"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(max_overlap__gte=models.F("min_overlap")),
                name="project_max_overlap_at_least_min",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Bounds and cross-checks of the overlap and expiry settings, naming the field."""
        errors = {}
        if not 1 <= (self.assignment_ttl_minutes or 0) <= MAX_ASSIGNMENT_TTL_MINUTES:
            errors["assignment_ttl_minutes"] = (
                f"must be between 1 and {MAX_ASSIGNMENT_TTL_MINUTES} minutes"
            )
        for name in ("overlap", "min_overlap", "max_overlap"):
            if not 1 <= (getattr(self, name) or 0) <= MAX_OVERLAP:
                errors[name] = f"must be between 1 and {MAX_OVERLAP}"
        if not errors:
            if self.min_overlap > self.max_overlap:
                errors["max_overlap"] = "must be at least min_overlap"
            elif self.overlap > self.max_overlap:
                errors["overlap"] = f"must be at most max_overlap ({self.max_overlap})"
            elif self.dynamic_overlap and self.overlap < self.min_overlap:
                errors["overlap"] = (
                    f"with dynamic overlap it must be at least min_overlap ({self.min_overlap})"
                )
        if errors:
            raise ValidationError(errors)


class ProjectMembership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.LABELER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.project}"


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    # Any text up to 80 characters, unique in the project (labeling.services.class_key_error)
    key = models.CharField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rank = models.IntegerField(null=True, blank=True, help_text="Order for ordinal levels.")
    value = models.FloatField(null=True, blank=True, help_text="Numeric value (interval/ratio).")
    is_borderline = models.BooleanField(default=False)
    # A merge never deletes: it maps this class onto another from then on, and can be undone.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )
    shortcut = models.CharField(max_length=1, blank=True, help_text="Keyboard key in the UI.")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["project", "order", "id"]
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="class_key_unique_in_project")
        ]

    def __str__(self) -> str:
        return f"{self.key}"

    @property
    def safe_key(self) -> str:
        """The key as a URL / file name (see :func:`safe_class_key`)."""
        return safe_class_key(self.key)


def safe_class_key(key: str) -> str:
    """A URL- and file-safe form of a class key: ``[A-Za-z0-9._-]`` only, derived.

    A key that is already safe is itself; any other is folded to ASCII (accents dropped),
    every other character made ``_``, and a short hash of the key appended, so two keys
    that fold alike ("Not Humor", "Not_Humor") never share a form.
    """
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", key):
        return key
    ascii_ = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_).strip("_")[:60] or "class"
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    return f"{stem}-{digest}"


class Guideline(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guidelines")
    version = models.PositiveIntegerField()
    text = models.TextField()
    change_note = models.TextField(blank=True)
    example_items = models.ManyToManyField("Item", blank=True, related_name="guideline_examples")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "version"], name="guideline_version_unique_in_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} guideline v{self.version}"


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.SlugField(max_length=80)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="tag_unique_in_project")
        ]

    def __str__(self) -> str:
        return self.name


class SourceBatchKind(models.TextChoices):
    ITEMS = "items", "Items"
    ANNOTATIONS = "annotations", "Annotations"
    LABEL_STUDIO = "label_studio", "Label Studio export"
    DEMO = "demo", "Demo data"


class SourceBatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partially imported"
    FAILED = "failed", "Failed"


class SourceBatch(models.Model):
    """One import: where it came from, who sent it, what it held, what went wrong."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="source_batches")
    kind = models.CharField(max_length=20, choices=SourceBatchKind.choices)
    origin = models.CharField(max_length=500, blank=True, help_text="File name, URL or client.")
    content_type = models.CharField(max_length=100, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=10, choices=SourceBatchStatus.choices, default=SourceBatchStatus.PENDING
    )
    n_rows = models.PositiveIntegerField(default=0)
    n_created = models.PositiveIntegerField(default=0)
    n_updated = models.PositiveIntegerField(default=0)
    n_errors = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, field, message}]")

    class Meta:
        # The table keeps the name it had when the model lived in provenance
        # (moved by labeling 0003 / provenance 0005 without touching the data).
        db_table = "provenance_sourcebatch"
        ordering = ["-created_at"]
        verbose_name_plural = "source batches"

    def __str__(self) -> str:
        return f"{self.kind} batch {self.pk} ({self.origin})"


class PayloadKind(models.TextChoices):
    IMAGE = "image", "Uploaded image"
    IMAGE_URL = "image_url", "Image URL"
    TEXT = "text", "Text"
    AUDIO_URL = "audio_url", "Audio URL"


class ImageStatsStatus(models.TextChoices):
    NOT_APPLICABLE = "n/a", "Not an image"
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def item_image_path(item: Item, filename: str) -> str:
    # Never the uploaded name: a path taken from user input is a traversal waiting to happen.
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    suffix = suffix if suffix.isalnum() and len(suffix) <= 5 else "bin"
    return f"projects/{item.project_id}/images/{item.content_hash or 'upload'}.{suffix}"


def item_thumbnail_path(item: Item, filename: str) -> str:
    return f"projects/{item.project_id}/thumbs/{item.pk}.jpg"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=PayloadKind.choices)
    image = models.FileField(upload_to=item_image_path, blank=True, max_length=300)
    image_url = models.URLField(blank=True, max_length=2000)
    text = models.TextField(blank=True)
    audio_url = models.URLField(blank=True, max_length=2000)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")
    # Image statistics, filled in by the worker (labeling.tasks.compute_image_stats).
    stats_status = models.CharField(
        max_length=10, choices=ImageStatsStatus.choices, default=ImageStatsStatus.NOT_APPLICABLE
    )
    stats_error = models.CharField(max_length=500, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    mean_brightness = models.FloatField(null=True, blank=True, help_text="0–255, luma.")
    perceptual_hash = models.CharField(max_length=16, blank=True, help_text="64-bit dHash, hex.")
    thumbnail = models.FileField(upload_to=item_thumbnail_path, blank=True, max_length=300)
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the payload.")
    source_batch = models.ForeignKey(
        SourceBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="items",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # --- Hand-out state (issue 14) and ground-truth checks (issue 11) ----------------------
    # Kept by labeling.handout in the transaction of every change that moves it (submit,
    # skip, expiry, relabel, import, check marking, overlap settings); compared with a full
    # recount by ``manage.py verify_handout_state``. A new item's defaults are its true
    # state (no labels, no holds, open), so an item created anywhere is handed out.
    handout_labels = models.PositiveIntegerField(
        default=0, help_text="Current labels that count toward overlap (check answers do not)."
    )
    handout_top = models.PositiveIntegerField(
        default=0, help_text="Size of the largest group of equal labels among them."
    )
    handout_holds = models.PositiveIntegerField(
        default=0, help_text="Unexpired active assignments of labelers without a label on it."
    )
    handout_load = models.PositiveIntegerField(
        default=0, help_text="labels + holds: the hand-out takes the highest first."
    )
    handout_open = models.BooleanField(
        default=True, help_text="load below the item's target and not a check: handed out."
    )
    handout_hold_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Earliest expiry among the holds (lazy expiry)."
    )
    is_check = models.BooleanField(
        default=False, help_text="A ground-truth check mixed into labelers' queues."
    )

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_external_id_unique_in_project"
            )
        ]
        indexes = [
            models.Index(fields=["project", "content_hash"], name="item_project_hash"),
            # The hand-out: open items, highest load first, then oldest (a range scan).
            models.Index(
                models.F("project"),
                models.F("handout_load").desc(),
                models.F("id"),
                condition=Q(handout_open=True),
                name="item_handout_queue",
            ),
            # Lazy expiry: the items whose earliest hold has passed.
            models.Index(
                fields=["project", "handout_hold_expires_at"],
                condition=Q(handout_hold_expires_at__isnull=False),
                name="item_handout_holds",
            ),
            models.Index(fields=["project", "id"], condition=Q(is_check=True), name="item_checks"),
            # The data manager: its label-count sort is a walk of this index and its status
            # filter a range of it (consistency.data_manager, on the kept label count).
            models.Index(fields=["project", "handout_labels", "id"], name="item_label_count"),
        ]

    def __str__(self) -> str:
        return self.external_id


class CheckSettings(models.Model):
    """How ground-truth checks are mixed into a project's labeling stream (issue 11)."""

    project = models.OneToOneField(
        "Project", on_delete=models.CASCADE, primary_key=True, related_name="check_settings"
    )
    rate = models.FloatField(default=0.0, help_text="Share of hand-outs that are checks, 0–1.")
    min_accuracy = models.FloatField(
        default=0.7, help_text="A labeler below this accuracy on checks is paused, 0–1."
    )
    min_checks = models.PositiveIntegerField(
        default=10, help_text="Checks answered (since the last resume) before a pause."
    )

    def __str__(self) -> str:
        return f"checks of {self.project_id}"


class LabelerState(models.Model):
    """One labeler's counters in one project, kept by the services: hand-out progress and
    their answers to ground-truth checks since they were last resumed."""

    project = models.ForeignKey("Project", on_delete=models.CASCADE, related_name="+")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    n_done = models.PositiveIntegerField(default=0, help_text="Current labels in the project.")
    n_checks = models.PositiveIntegerField(default=0, help_text="Checks answered since resume.")
    n_checks_correct = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "labeler"], name="one_state_per_labeler")
        ]

    def __str__(self) -> str:
        return f"{self.labeler_id} in {self.project_id}"


class CheckAnswer(models.Model):
    """A labeler's first answer to a ground-truth check, scored against the ground truth
    it had then. The annotation stays an ordinary label; it never counts toward overlap."""

    project = models.ForeignKey("Project", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("Item", on_delete=models.CASCADE, related_name="check_answers")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    annotation = models.ForeignKey(
        "Annotation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    correct = models.BooleanField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "labeler"], name="one_check_answer")]
        indexes = [
            models.Index(
                fields=["project", "labeler", "created_at"], name="check_answer_by_labeler"
            )
        ]

    def __str__(self) -> str:
        return f"check {self.item_id} by {self.labeler_id}: {self.correct}"


class GoldSource(models.TextChoices):
    IMPORT = "import", "Imported ground truth"
    SME = "sme", "SME resolution"


class GoldLabel(models.Model):
    """The reference answer for an item, when one exists (HLP is accuracy against it)."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold")
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    value_number = models.FloatField(null=True, blank=True)
    value_text = models.TextField(blank=True)
    # Detection: [{"class": key, "x", "y", "w", "h"}] in image pixels; [] = nothing there.
    value_boxes = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=GoldSource.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The labeler whose annotation carries this ground truth (import row with gold: true);
    # HLP's gold method leaves that annotation out. Null when the gold has no annotation.
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gold for {self.item_id}"


class ItemDecision(models.Model):
    """An SME's decision on an item: its final label, chosen on review (one per item, the
    latest). Not ground truth: it overrides consensus in datasets and error analysis but is
    never a reference for HLP or labeler accuracy."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="decision")
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    value_number = models.FloatField(null=True, blank=True)
    value_text = models.TextField(blank=True)
    # Detection: [{"class": key, "x", "y", "w", "h"}] in image pixels; [] = nothing there.
    value_boxes = models.JSONField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rationale = models.TextField(blank=True)
    # review.Resolution id (labeling may not reference review's models).
    resolution_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"decision on {self.item_id}"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class Assignment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE
    )
    reason = models.CharField(max_length=20, default="overlap", help_text="overlap | relabel")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "labeler"],
                condition=Q(status="active"),
                name="one_active_assignment_per_item_labeler",
            )
        ]
        indexes = [
            models.Index(fields=["project", "labeler", "status"], name="assign_labeler_status"),
            models.Index(fields=["item", "status"], name="assign_item_status"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} → {self.labeler_id} ({self.status})"


class AnnotationSource(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "REST API"
    IMPORT = "import", "Import"
    DEMO = "demo", "Demo data"


class Annotation(models.Model):
    """A labeler's label for an item. Append-only: a revision is a new row; the old one
    stays with ``is_current=False`` and the new one points at it through ``supersedes``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations"
    )
    value_number = models.FloatField(null=True, blank=True)
    value_text = models.TextField(blank=True)
    # Detection: [{"class": key, "x", "y", "w", "h"}] in image pixels; [] = nothing there.
    value_boxes = models.JSONField(null=True, blank=True)
    guideline = models.ForeignKey(
        Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations"
    )
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    source = models.CharField(
        max_length=10, choices=AnnotationSource.choices, default=AnnotationSource.UI
    )
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["item_id", "labeler_id", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "labeler"],
                condition=Q(is_current=True),
                name="one_current_annotation_per_item_labeler",
            ),
            models.CheckConstraint(
                condition=Q(label_class__isnull=False)
                | Q(value_number__isnull=False)
                | ~Q(value_text="")
                | Q(value_boxes__isnull=False),
                name="annotation_has_a_value",
            ),
        ]
        indexes = [
            # The agreement scan: every current annotation of a project, item by item.
            models.Index(
                fields=["project", "item", "labeler"],
                condition=Q(is_current=True),
                name="annotation_current_scan",
            ),
            models.Index(fields=["labeler", "project", "created_at"], name="annotation_by_labeler"),
            # The data manager's class filter: the items with a current label of a class.
            models.Index(
                fields=["project", "label_class", "item"],
                condition=Q(is_current=True),
                name="annotation_current_class",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.labeler_id} on {self.item_id}"
