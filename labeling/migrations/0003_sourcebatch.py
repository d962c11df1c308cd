"""SourceBatch moves from provenance to labeling ("it lives with the imports that create
it"). State only: the table keeps its name ``provenance_sourcebatch`` and its rows, and
the foreign key from ``labeling_item`` keeps pointing at it. provenance 0005 removes the
old model from provenance's state. The content type is renamed so admin permissions
granted on source batches carry over."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _rename_content_type(apps, schema_editor, old_app, new_app):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label=new_app, model="sourcebatch").exists():
        ContentType.objects.using(db).filter(app_label=old_app, model="sourcebatch").update(
            app_label=new_app
        )


def forwards(apps, schema_editor):
    _rename_content_type(apps, schema_editor, "provenance", "labeling")


def backwards(apps, schema_editor):
    _rename_content_type(apps, schema_editor, "labeling", "provenance")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("labeling", "0002_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SourceBatch",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("items", "Items"),
                                    ("annotations", "Annotations"),
                                    ("label_studio", "Label Studio export"),
                                    ("demo", "Demo data"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "origin",
                            models.CharField(
                                blank=True, help_text="File name, URL or client.", max_length=500
                            ),
                        ),
                        ("content_type", models.CharField(blank=True, max_length=100)),
                        ("file_sha256", models.CharField(blank=True, max_length=64)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("succeeded", "Succeeded"),
                                    ("partial", "Partially imported"),
                                    ("failed", "Failed"),
                                ],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("n_rows", models.PositiveIntegerField(default=0)),
                        ("n_created", models.PositiveIntegerField(default=0)),
                        ("n_updated", models.PositiveIntegerField(default=0)),
                        ("n_errors", models.PositiveIntegerField(default=0)),
                        (
                            "errors",
                            models.JSONField(
                                blank=True, default=list, help_text="[{row, field, message}]"
                            ),
                        ),
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
                                related_name="source_batches",
                                to="labeling.project",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "source batches",
                        "db_table": "provenance_sourcebatch",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.AlterField(
                    model_name="item",
                    name="source_batch",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="items",
                        to="labeling.sourcebatch",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
