"""Consistency nouns: agreement runs and their per-item consensus, flags raised by runs,
the versioned transcript rule sets agreement applies, and model runs with their
predictions (error analysis beside HLP). SME decisions on flags (``Resolution``) live in
the ``review`` app."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class AgreementRun(models.Model):
    """One agreement computation over a project (optionally a slice), run by the worker.

    ``results`` follows DESIGN.md "Results of an agreement run". ``data_version`` is the
    snapshot of the project's labels the run read (highest annotation id and count), so a
    result computed from stale data can be recognised and discarded.
    """

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="agreement_runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0–1")
    params = models.JSONField(default=dict, blank=True)
    results = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    data_version = models.JSONField(default=dict, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    n_chunks = models.PositiveIntegerField(default=0)
    # Wall-clock seconds per phase (scan, metrics, consensus, ...). Kept out of ``results``
    # so that a chunked and a single-pass run of the same data have identical results.
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The lease (consistency.jobs): refreshed while a worker executes the run (or since it
    # was queued); ``attempts`` counts executions started and is their token; ``phase``
    # says what the reaper must redo if the heartbeat stops: plan/single/final (the whole
    # run) or chunks (only the chunks not done).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    phase = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="run_project_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"agreement run {self.pk} ({self.status})"


class AgreementRunChunk(models.Model):
    """Partial statistics of one item-id range of a chunked run, until the run is merged.

    Kept in the database (not a file) so workers on different machines can hand their
    chunks to whichever worker runs the merge; deleted once the run is finalized.
    """

    run = models.ForeignKey(AgreementRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_item_id = models.BigIntegerField()
    last_item_id = models.BigIntegerField()
    n_annotations = models.PositiveIntegerField(default=0)
    payload = models.BinaryField(help_text="Compressed npz of the chunk's sufficient statistics.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Which execution of the run planned it (the run's ``attempts`` then), its state, how
    # many executions claimed it, and the heartbeat of the one computing it.
    attempt = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=8, default="done")
    tries = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="one_chunk_per_run_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id}"


class ConsensusMethod(models.TextChoices):
    MAJORITY = "majority", "Majority vote"
    DAWID_SKENE = "dawid_skene", "Dawid–Skene"
    SME = "sme", "SME resolution"


class ConsensusStatus(models.TextChoices):
    AGREED = "agreed", "Agreed"
    DISPUTED = "disputed", "Disputed"
    BORDERLINE = "borderline", "Borderline"
    RESOLVED = "resolved", "Resolved by an SME"


class Consensus(models.Model):
    """An item's consensus label under one method, as computed by one run.

    Derived data, written only by ``consistency.consensus_store`` from ids the run has
    just read, up to 400,000 rows a run at a million labels. So its foreign keys are
    enforced by the ORM (cascade, protect) and not by database constraints: on
    PostgreSQL the deferred constraint triggers cost more than the COPY itself (14 s
    of 23 s for 400,000 rows, benchmarks/RESULTS-agreement.md). ``run`` has no index of
    its own: the unique (run, item, method) index serves lookups by run.
    """

    run = models.ForeignKey(
        AgreementRun,
        on_delete=models.CASCADE,
        related_name="consensus",
        db_constraint=False,
        db_index=False,
    )
    item = models.ForeignKey(
        "labeling.Item", on_delete=models.CASCADE, related_name="consensus", db_constraint=False
    )
    method = models.CharField(max_length=12, choices=ConsensusMethod.choices)
    label_class = models.ForeignKey(
        "labeling.LabelClass",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    value_text = models.TextField(blank=True)
    value_number = models.FloatField(null=True, blank=True)
    # Detection: the consensus boxes [{class, x, y, w, h, support}] (pixels); [] = nothing.
    value_boxes = models.JSONField(null=True, blank=True)
    support = models.FloatField(null=True, blank=True, help_text="Share of labels for it, 0–1.")
    confidence = models.FloatField(null=True, blank=True, help_text="Posterior or support, 0–1.")
    entropy = models.FloatField(null=True, blank=True, help_text="Of the label shares, bits.")
    n_labels = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=ConsensusStatus.choices)

    class Meta:
        verbose_name_plural = "consensus"
        constraints = [
            models.UniqueConstraint(
                fields=["run", "item", "method"], name="one_consensus_per_run_item_method"
            )
        ]
        indexes = [models.Index(fields=["run", "method", "status"], name="consensus_run_status")]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_class_id or self.value_text} ({self.method})"


class FlagKind(models.TextChoices):
    ITEM_DISAGREEMENT = "item_disagreement", "Item disagreement"
    MERGE_CLASSES = "merge_classes", "Confusable classes (merge?)"
    BORDERLINE = "borderline", "Needs a borderline label"
    UNCLEAR_SLICE = "unclear_slice", "Unclear guideline or input in a slice"
    LABELER = "labeler", "Labeler"
    DRIFT = "drift", "Drift"
    LABEL_ERROR = "label_error", "Suspected label error (model run)"
    BOX_CONVENTION = "box_convention", "Box convention (group vs object, loose vs tight)"


class FlagStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    DISMISSED = "dismissed", "Dismissed"
    # An open flag of an older run that a newer run replaced: kept, never deleted, so a
    # flag an SME has open still answers (``superseded_by`` names its successor).
    SUPERSEDED = "superseded", "Superseded"


class Flag(models.Model):
    """Something an SME should look at, found by an agreement run, with its evidence."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="flags")
    # The agreement run that raised it; null for a drift flag, which a monitoring run raises.
    run = models.ForeignKey(
        AgreementRun, null=True, blank=True, on_delete=models.CASCADE, related_name="flags"
    )
    monitoring_run = models.ForeignKey(
        "MonitoringRun", null=True, blank=True, on_delete=models.CASCADE, related_name="flags"
    )
    kind = models.CharField(max_length=20, choices=FlagKind.choices)
    status = models.CharField(max_length=10, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    impact = models.FloatField(default=0.0, help_text="Items affected × disagreement.")
    suggested_action = models.CharField(max_length=40, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    items = models.ManyToManyField("labeling.Item", blank=True, related_name="flags")
    classes = models.ManyToManyField("labeling.LabelClass", blank=True, related_name="flags")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    slice_key = models.CharField(max_length=80, blank=True)
    slice_value = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="supersedes",
        help_text="The newer run's flag for the same subject (same signature), if any.",
    )

    class Meta:
        ordering = ["status", "-impact", "id"]
        indexes = [
            models.Index(fields=["project", "status", "-impact"], name="flag_queue"),
            models.Index(fields=["project", "kind", "status"], name="flag_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} flag {self.pk} ({self.status})"


class TranscriptRuleSet(models.Model):
    """One published version of a transcription project's conventions: the ordered
    rewrite rules (``consistency.normalization``) that agreement applies to transcripts
    before comparing them.

    Append-only, one row per version; the highest version is in force. The row is the
    state, the ``normalization.published`` event written beside it (same transaction,
    ``review.services.publish_normalization``) records the change.
    """

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="transcript_rule_sets"
    )
    version = models.PositiveIntegerField()
    rules = models.JSONField(default=list, blank=True, help_text="[{find, replace, ...}]")
    rationale = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "version"], name="one_rule_set_per_project_version"
            )
        ]

    def __str__(self) -> str:
        return f"transcript rules v{self.version} of project {self.project_id}"


class ModelRun(models.Model):
    """Predictions uploaded by a pipeline, set beside HLP per slice and tag (error analysis)."""

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="model_runs"
    )
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    params = models.JSONField(default=dict, blank=True)
    n_predictions = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"model run {self.pk} ({self.name})"


class Prediction(models.Model):
    """One model prediction for one item (a class, a number or a text)."""

    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="predictions")
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="predictions")
    label_class = models.ForeignKey(
        "labeling.LabelClass", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    value_number = models.FloatField(null=True, blank=True)
    value_text = models.TextField(blank=True)
    # Detection: predicted boxes [{class, x, y, w, h, score}] (pixels, score 0-1).
    value_boxes = models.JSONField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_run", "item"], name="one_prediction_per_run_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_class_id or self.value_number or self.value_text}"


class MonitoringTrigger(models.TextChoices):
    MANUAL = "manual", "Started by a person"
    SCHEDULED = "scheduled", "Scheduled"


class MonitoringRun(models.Model):
    """A baseline window against a current window of one project: input metrics, label
    distribution, agreement and each labeler, per slice (``consistency.monitoring``).

    ``params`` holds the windows (ISO 8601) and slice keys; ``results`` follows DESIGN.md
    "Monitoring (REST contract)" (``results.checks[]``) plus the weekly series the page
    draws. Drifted checks raise flags of kind ``drift`` (``Flag.monitoring_run``).
    """

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="monitoring_runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(
        max_length=10, choices=MonitoringTrigger.choices, default=MonitoringTrigger.MANUAL
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0–1")
    params = models.JSONField(default=dict, blank=True)
    results = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="monitoring_project_recent")
        ]

    def __str__(self) -> str:
        return f"monitoring run {self.pk} ({self.status})"
