"""Dataset nouns: published, immutable dataset versions, their rows, and pipeline tokens.

The tables keep the names they had when these models lived in ``provenance``
(``provenance_datasetversion`` ...): the PostgreSQL immutability triggers of
``provenance/migrations/0004`` are attached to them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


# --- Dataset versions -------------------------------------------------------------------
class ImmutableError(Exception):
    """Raised on an attempt to change a published dataset version or its rows."""


class DatasetStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    SUCCEEDED = "succeeded", "Published"
    FAILED = "failed", "Failed"


class DatasetVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if self.filter(status=DatasetStatus.SUCCEEDED).exists():
            raise ImmutableError("A published dataset version is immutable: it is never updated.")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(status=DatasetStatus.SUCCEEDED).exists():
            raise ImmutableError("A published dataset version is immutable: it is never deleted.")
        return super().delete()


class DatasetVersion(models.Model):
    """A published, immutable dataset: its parameters, rows, counts and content hash.

    ``params`` are the canonical, fully resolved build parameters (run, consensus method,
    filters, class merges, splits, seed, stratification, grouping); ``content_hash`` is
    the SHA-256 of the canonical params and the canonical JSONL of the rows, so the same
    parameters on the same data give the same hash. ``columns`` is the export schema
    (metadata keys and their types). ``lineage`` summarises what contributed, as of build.
    """

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="dataset_versions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=DatasetStatus.choices, default=DatasetStatus.QUEUED
    )
    request = models.JSONField(default=dict, blank=True, help_text="The request as validated.")
    params = models.JSONField(default=dict, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    split_counts = models.JSONField(default=dict, blank=True)
    class_counts = models.JSONField(default=dict, blank=True)
    columns = models.JSONField(default=list, blank=True)
    lineage = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The build's lease (consistency.jobs): refreshed while a worker builds (or since it
    # was queued); ``attempts`` counts builds started and is their token.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    objects = DatasetVersionQuerySet.as_manager()

    class Meta:
        db_table = "provenance_datasetversion"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="dataset_project_recent")]

    def __str__(self) -> str:
        return f"dataset version {self.pk} ({self.status})"

    # Guards, not behaviour: once published, a version never changes (asked of the
    # database, not of this instance, which may be stale).
    def save(self, *args, **kwargs):
        if self._published_in_db():
            raise ImmutableError("A published dataset version is immutable: it is never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._published_in_db():
            raise ImmutableError("A published dataset version is immutable: it is never deleted.")
        return super().delete(*args, **kwargs)

    def _published_in_db(self) -> bool:
        return (
            self.pk is not None
            and DatasetVersion.objects.filter(pk=self.pk, status=DatasetStatus.SUCCEEDED).exists()
        )


class DatasetRowQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableError("Dataset rows are immutable: they are never updated.")

    def delete(self):
        raise ImmutableError("Dataset rows are immutable: they are never deleted.")


class DatasetRow(models.Model):
    """One row of a dataset version. ``line`` is its canonical JSON (the JSONL export line);
    the other columns exist to filter, order and diff without parsing it."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField(help_text="Rank by external id, from 0.")
    external_id = models.CharField(max_length=255)
    split = models.CharField(max_length=20)
    label = models.CharField(max_length=200, blank=True)
    item_id_ref = models.BigIntegerField(null=True, blank=True)
    image_name = models.CharField(
        max_length=300, blank=True, help_text="Storage name Concord gave the uploaded image."
    )
    line = models.TextField()

    objects = DatasetRowQuerySet.as_manager()

    class Meta:
        db_table = "provenance_datasetrow"
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="dataset_row_position"),
        ]
        indexes = [
            models.Index(fields=["version", "split", "position"], name="dataset_row_split"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.split})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ImmutableError("Dataset rows are immutable: they are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("Dataset rows are immutable: they are never deleted.")


# --- Pipeline tokens --------------------------------------------------------------------
class PipelineToken(models.Model):
    """A token for scripts and pipelines, scoped to one project.

    Only the SHA-256 of the secret is stored (and a short prefix to recognise it); the
    secret is shown once, when created. The token acts as its own service ``user``, a
    member of exactly this project, so every membership check applies unchanged.
    """

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="pipeline_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pipeline_token",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "provenance_pipelinetoken"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
