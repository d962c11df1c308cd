"""Transcript conventions become a table: one row per published rule-set version.

Until now a rule set existed only as a ``normalization.published`` event (``after`` =
``{version, rules}``, ``reason`` = rationale) replayed on every read. The data step builds
the rows from those events so an existing database keeps its conventions; the events
stay as the record of each change.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

NORMALIZATION_VERB = "normalization.published"


def rule_sets_from_events(apps, schema_editor):
    Event = apps.get_model("provenance", "Event")
    TranscriptRuleSet = apps.get_model("consistency", "TranscriptRuleSet")
    events = Event.objects.filter(verb=NORMALIZATION_VERB, project__isnull=False).order_by(
        "created_at", "id"
    )
    latest: dict[tuple[int, int], object] = {}
    counts: dict[int, int] = {}
    for event in events:
        after = event.after or {}
        counts[event.project_id] = counts.get(event.project_id, 0) + 1
        # Every publish recorded its version; count the project's events if one did not.
        version = after.get("version") or counts[event.project_id]
        # The readers took the latest event as current: a repeated version keeps the last.
        latest[(event.project_id, int(version))] = event
    for (project_id, version), event in sorted(latest.items()):
        row = TranscriptRuleSet.objects.create(
            project_id=project_id,
            version=version,
            rules=list((event.after or {}).get("rules", [])),
            rationale=event.reason or "",
            created_by_id=event.actor_id,
        )
        # auto_now_add stamped the migration's clock: keep the time it was published.
        TranscriptRuleSet.objects.filter(pk=row.pk).update(created_at=event.created_at)


class Migration(migrations.Migration):
    dependencies = [
        ("consistency", "0005_move_resolution_to_review"),
        ("labeling", "0002_initial"),
        ("provenance", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TranscriptRuleSet",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.PositiveIntegerField()),
                (
                    "rules",
                    models.JSONField(blank=True, default=list, help_text="[{find, replace, ...}]"),
                ),
                ("rationale", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
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
                        related_name="transcript_rule_sets",
                        to="labeling.project",
                    ),
                ),
            ],
            options={
                "ordering": ["project", "-version"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "version"), name="one_rule_set_per_project_version"
                    )
                ],
            },
        ),
        migrations.RunPython(rule_sets_from_events, migrations.RunPython.noop),
    ]
