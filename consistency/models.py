"""Consistency nouns: agreement runs and their per-item consensus.

(Flags and resolutions, model runs and predictions are added by their own issues.)
"""

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
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="run_project_recent")]

    def __str__(self) -> str:
        return f"agreement run {self.pk} ({self.status})"


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
    """An item's consensus label under one method, as computed by one run."""

    run = models.ForeignKey(AgreementRun, on_delete=models.CASCADE, related_name="consensus")
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="consensus")
    method = models.CharField(max_length=12, choices=ConsensusMethod.choices)
    label_class = models.ForeignKey(
        "labeling.LabelClass", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    value_text = models.TextField(blank=True)
    value_number = models.FloatField(null=True, blank=True)
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
