"""Review nouns: the SME's decisions on flags (or on items directly), with rationale.

Flags themselves are found by agreement runs and live in ``consistency``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ResolutionAction(models.TextChoices):
    SET_LABEL = "set_label", "Set the final label"
    MARK_BORDERLINE = "mark_borderline", "Mark borderline"
    MERGE_CLASSES = "merge_classes", "Merge classes"
    UNMERGE_CLASSES = "unmerge_classes", "Undo a merge"
    RELABEL = "relabel", "Send back for relabeling"
    PUBLISH_GUIDELINE = "publish_guideline", "Publish a clarified guideline"
    DISMISS = "dismiss", "Dismiss"


class Resolution(models.Model):
    """An SME decision on a flag (or on items directly), with its rationale."""

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="resolutions"
    )
    flag = models.ForeignKey(
        "consistency.Flag",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolutions",
    )
    action = models.CharField(max_length=20, choices=ResolutionAction.choices)
    rationale = models.TextField()
    label_class = models.ForeignKey(
        "labeling.LabelClass", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    into_class = models.ForeignKey(
        "labeling.LabelClass", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    items = models.ManyToManyField("labeling.Item", blank=True, related_name="resolutions")
    guideline = models.ForeignKey(
        "labeling.Guideline", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="resolutions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved from the consistency app: the table (and its rows) kept their name.
        db_table = "consistency_resolution"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.decided_by_id}"
