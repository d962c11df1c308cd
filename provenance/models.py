"""Provenance nouns: the append-only event log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised on an attempt to change or delete an event."""


class Verb(models.TextChoices):
    """Every kind of event Concord writes; :mod:`provenance.events` has one writer each."""

    ANNOTATION_CREATED = "annotation.created"
    ANNOTATION_REVISED = "annotation.revised"
    ANNOTATION_IMPORTED = "annotation.imported"
    ASSIGNMENT_SKIPPED = "assignment.skipped"
    BATCH_IMPORTED = "batch.imported"
    CLASS_CREATED = "class.created"
    CLASS_MERGED = "class.merged"
    CLASS_UNMERGED = "class.unmerged"
    CHECKS_CHANGED = "checks.changed"
    DATASET_REQUESTED = "dataset.requested"
    DATASET_PUBLISHED = "dataset.published"
    DATASET_FAILED = "dataset.failed"
    FLAG_RESOLVED = "flag.resolved"
    FLAG_DISMISSED = "flag.dismissed"
    FLAGS_GENERATED = "flags.generated"
    DRIFT_FLAGS_RAISED = "flags.drift_raised"
    GUIDELINE_PUBLISHED = "guideline.published"
    ITEM_IMPORTED = "item.imported"
    ITEM_UPDATED = "item.updated"
    ITEM_IMAGE_STATS = "item.image_stats"
    ITEM_GOLD_SET = "item.gold_set"
    ITEM_RELABEL_REQUESTED = "item.relabel_requested"
    ITEM_RESOLVED = "item.resolved"
    ITEM_MARKED_BORDERLINE = "item.marked_borderline"
    ITEMS_SENT_FOR_RELABEL = "items.sent_for_relabel"
    ITEMS_TAGS_CHANGED = "items.tags_changed"
    LABELER_PAUSED = "labeler.paused"
    LABELER_RESUMED = "labeler.resumed"
    MEMBER_ADDED = "member.added"
    MEMBER_CHANGED = "member.changed"
    MEMBER_REMOVED = "member.removed"
    MODEL_RUN_UPLOADED = "model_run.uploaded"
    NORMALIZATION_PUBLISHED = "normalization.published"
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    USER_CREATED = "user.created"
    USER_ACTIVATED = "user.activated"
    USER_DEACTIVATED = "user.deactivated"


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The event log is append-only: events are never updated.")

    def delete(self):
        raise AppendOnlyError("The event log is append-only: events are never deleted.")


class Event(models.Model):
    """Everything that changed a label or an item's meaning. Never updated, never deleted."""

    project = models.ForeignKey(
        "labeling.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verb = models.CharField(max_length=60, choices=Verb.choices)
    subject_type = models.CharField(max_length=40)
    subject_id = models.CharField(max_length=64)
    item_id_ref = models.BigIntegerField(
        null=True, blank=True, help_text="The item concerned, for an item's history."
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id"], name="event_subject"),
            models.Index(fields=["item_id_ref", "created_at"], name="event_item"),
            models.Index(fields=["project", "verb", "created_at"], name="event_project_verb"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} {self.subject_type}:{self.subject_id}"

    # Guards, not behaviour: an event row, once written, is immutable.
    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("The event log is append-only: events are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The event log is append-only: events are never deleted.")
