"""DatasetVersion, DatasetRow and PipelineToken move here from ``provenance``: state only.

The tables already exist (``provenance`` 0003) and keep their names (``Meta.db_table``),
so the data stays where it is and the PostgreSQL immutability triggers of ``provenance``
0004 stay attached to them. ``provenance`` 0005 then drops the models from its own state.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("labeling", "0002_initial"),
        ("provenance", "0004_dataset_immutable_trigger"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="DatasetVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("building", "Building"),
                            ("succeeded", "Published"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                (
                    "request",
                    models.JSONField(
                        blank=True, default=dict, help_text="The request as validated."
                    ),
                ),
                ("params", models.JSONField(blank=True, default=dict)),
                ("row_count", models.PositiveIntegerField(default=0)),
                ("split_counts", models.JSONField(blank=True, default=dict)),
                ("class_counts", models.JSONField(blank=True, default=dict)),
                ("columns", models.JSONField(blank=True, default=list)),
                ("lineage", models.JSONField(blank=True, default=dict)),
                ("content_hash", models.CharField(blank=True, max_length=64)),
                ("error", models.TextField(blank=True)),
                ("celery_task_id", models.CharField(blank=True, max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dataset_versions",
                        to="labeling.project",
                    ),
                ),
            ],
            options={
                "db_table": "provenance_datasetversion",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="DatasetRow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveIntegerField(help_text="Rank by external id, from 0.")),
                ("external_id", models.CharField(max_length=255)),
                ("split", models.CharField(max_length=20)),
                ("label", models.CharField(blank=True, max_length=200)),
                ("item_id_ref", models.BigIntegerField(blank=True, null=True)),
                (
                    "image_name",
                    models.CharField(
                        blank=True,
                        help_text="Storage name Concord gave the uploaded image.",
                        max_length=300,
                    ),
                ),
                ("line", models.TextField()),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="rows",
                        to="datasets.datasetversion",
                    ),
                ),
            ],
            options={
                "db_table": "provenance_datasetrow",
                "ordering": ["version", "position"],
            },
        ),
        migrations.CreateModel(
            name="PipelineToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(max_length=16)),
                ("token_hash", models.CharField(max_length=64, unique=True)),
                ("scopes", models.JSONField(default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="pipeline_tokens",
                        to="labeling.project",
                    ),
                ),
                (
                    "revoked_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="pipeline_token",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "provenance_pipelinetoken",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="datasetversion",
            index=models.Index(fields=["project", "-created_at"], name="dataset_project_recent"),
        ),
        migrations.AddIndex(
            model_name="datasetrow",
            index=models.Index(fields=["version", "split", "position"], name="dataset_row_split"),
        ),
        migrations.AddConstraint(
            model_name="datasetrow",
            constraint=models.UniqueConstraint(
                fields=("version", "position"), name="dataset_row_position"
            ),
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
