"""Resolution, moved from the consistency app with its table (state only: no SQL)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("consistency", "0005_move_resolution_to_review"),
        ("labeling", "0002_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Resolution",
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
                            "action",
                            models.CharField(
                                choices=[
                                    ("set_label", "Set the final label"),
                                    ("mark_borderline", "Mark borderline"),
                                    ("merge_classes", "Merge classes"),
                                    ("unmerge_classes", "Undo a merge"),
                                    ("relabel", "Send back for relabeling"),
                                    ("publish_guideline", "Publish a clarified guideline"),
                                    ("dismiss", "Dismiss"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("rationale", models.TextField()),
                        ("details", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "decided_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="resolutions",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "flag",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="resolutions",
                                to="consistency.flag",
                            ),
                        ),
                        (
                            "guideline",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="labeling.guideline",
                            ),
                        ),
                        (
                            "into_class",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="labeling.labelclass",
                            ),
                        ),
                        (
                            "items",
                            models.ManyToManyField(
                                blank=True, related_name="resolutions", to="labeling.item"
                            ),
                        ),
                        (
                            "label_class",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="labeling.labelclass",
                            ),
                        ),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="resolutions",
                                to="labeling.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "consistency_resolution",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
