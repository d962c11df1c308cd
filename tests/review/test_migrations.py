"""The 0006 data migration: transcript conventions published as events before the
rule-set table existed become its rows, so an existing database keeps them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from consistency.selectors import current_normalization
from labeling import services
from labeling.models import TaskType
from provenance import events
from review.selectors import normalization_versions

BEFORE = [("consistency", "0005_move_resolution_to_review")]
RULES_V1 = [{"find": "umm", "replace": "um"}]
RULES_V2 = [{"find": "umm", "replace": "um"}, {"find": "...", "replace": ","}]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_rule_sets_are_built_from_published_events():
    _migrate(BEFORE)
    # Labeling and the event log are untouched by consistency 0006: today's models fit.
    manager = get_user_model().objects.create_user("mgr", password="x")
    speech = services.create_project(
        name="Calls", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    other = services.create_project(
        name="Notes", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    published = []
    for project, version, rules, why in [
        (speech, 1, RULES_V1, "one filler spelling"),
        (speech, 2, RULES_V2, "ellipsis is a comma"),
        (other, 1, RULES_V2, "house style"),
    ]:
        before = {"version": version - 1, "rules": RULES_V1} if version > 1 else None
        published.append(
            events.normalization_published(
                project_id=project.pk,
                actor_id=manager.pk,
                before=before,
                after={"version": version, "rules": rules},
                reason=why,
            )
        )

    executor = _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    state = executor.loader.project_state(executor.loader.graph.leaf_nodes())
    RuleSet = state.apps.get_model("consistency", "TranscriptRuleSet")
    rows = list(RuleSet.objects.order_by("project_id", "version"))
    assert [(r.project_id, r.version, r.rules, r.rationale) for r in rows] == [
        (speech.pk, 1, RULES_V1, "one filler spelling"),
        (speech.pk, 2, RULES_V2, "ellipsis is a comma"),
        (other.pk, 1, RULES_V2, "house style"),
    ]
    assert all(r.created_by_id == manager.pk for r in rows)
    assert [r.created_at for r in rows] == [e.created_at for e in published]

    # and the readers see them: the conventions in force did not change
    assert current_normalization(speech) == {"version": 2, "rules": RULES_V2}
    assert [v["version"] for v in normalization_versions(speech)] == [2, 1]
