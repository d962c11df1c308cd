import pytest

from provenance import events
from provenance.models import AppendOnlyError, Event, Verb


def _writers(project_id: int, user_id: int) -> list[tuple[Verb, object, dict]]:
    """(verb, writer, keyword arguments): every event writer of provenance.events."""
    p, u = {"project_id": project_id}, {"actor_id": user_id}
    change = {"before": {"x": 1}, "after": {"x": 2}}
    return [
        (Verb.PROJECT_CREATED, events.project_created, {**p, **u, "after": {}}),
        (Verb.PROJECT_UPDATED, events.project_updated, {**p, **u, **change}),
        (Verb.MEMBER_ADDED, events.member_added, {**p, **u, "user_id": user_id, "after": {}}),
        (Verb.MEMBER_CHANGED, events.member_changed, {**p, **u, "user_id": user_id, **change}),
        (
            Verb.MEMBER_REMOVED,
            events.member_removed,
            {**p, **u, "user_id": user_id, "before": {}},
        ),
        (Verb.BATCH_IMPORTED, events.batch_imported, {**p, **u, "batch_id": 1, "after": {}}),
        (
            Verb.ITEM_IMPORTED,
            events.item_imported,
            {**p, **u, "item_id": 1, "batch_id": None, "after": {}},
        ),
        (
            Verb.ITEM_IMPORTED,
            events.items_imported_bulk,
            {**p, **u, "batch_id": 1, "item_ids": [1]},
        ),
        (
            Verb.ITEM_UPDATED,
            events.items_updated_bulk,
            {**p, **u, "batch_id": 1, "item_ids": [1]},
        ),
        (
            Verb.ANNOTATION_CREATED,
            events.annotation_created,
            {**p, **u, "annotation_id": 1, "item_id": 1, "after": {}},
        ),
        (
            Verb.ANNOTATION_REVISED,
            events.annotation_revised,
            {**p, **u, "annotation_id": 1, "item_id": 1, **change},
        ),
        (
            Verb.ANNOTATION_IMPORTED,
            events.annotations_imported_bulk,
            {**p, **u, "batch_id": 1, "rows": [(1, 1, {})]},
        ),
        (Verb.MEMBER_ADDED, events.members_added_bulk, {**p, **u, "rows": [(user_id, {})]}),
        (Verb.ITEM_IMAGE_STATS, events.image_stats_computed, {**p, "item_id": 1, "after": {}}),
        (
            Verb.GUIDELINE_PUBLISHED,
            events.guideline_published,
            {**p, **u, "guideline_id": 1, "version": 2},
        ),
        (Verb.ITEM_GOLD_SET, events.gold_set, {**p, **u, "item_id": 1, **change}),
        (Verb.ITEM_GOLD_SET, events.gold_set_bulk, {**p, **u, "rows": [(1, None, {})]}),
        (
            Verb.DATASET_REQUESTED,
            events.dataset_requested,
            {**p, **u, "dataset_version_id": 1, "after": {}},
        ),
        (
            Verb.DATASET_PUBLISHED,
            events.dataset_published,
            {**p, **u, "dataset_version_id": 1, "after": {}},
        ),
        (
            Verb.DATASET_FAILED,
            events.dataset_failed,
            {**p, **u, "dataset_version_id": 1, "reason": "x"},
        ),
        (Verb.TOKEN_CREATED, events.pipeline_token_created, {**p, **u, "token_id": 1, "after": {}}),
        (Verb.TOKEN_REVOKED, events.pipeline_token_revoked, {**p, **u, "token_id": 1}),
        (Verb.USER_CREATED, events.user_created, {**u, "user_id": user_id, "after": {}}),
        (Verb.USER_ACTIVATED, events.user_activated, {**u, "user_id": user_id, **change}),
        (Verb.USER_DEACTIVATED, events.user_deactivated, {**u, "user_id": user_id, **change}),
        (Verb.CLASS_CREATED, events.class_created, {**p, **u, "class_id": 1, "after": {}}),
        (Verb.CLASS_MERGED, events.class_merged, {**p, **u, "class_id": 1, **change}),
        (Verb.CLASS_UNMERGED, events.class_unmerged, {**p, **u, "class_id": 1, **change}),
        (
            Verb.ASSIGNMENT_SKIPPED,
            events.assignment_skipped,
            {**p, **u, "assignment_id": 1, "item_id": 1},
        ),
        (
            Verb.ITEM_RELABEL_REQUESTED,
            events.relabel_requested,
            {**p, **u, "item_id": 1, "after": {}, "reason": "x"},
        ),
        (
            Verb.MODEL_RUN_UPLOADED,
            events.model_run_uploaded,
            {**p, **u, "model_run_id": 1, "after": {}},
        ),
        (Verb.FLAGS_GENERATED, events.flags_generated, {**p, "agreement_run_id": 1, "after": {}}),
        (
            Verb.DRIFT_FLAGS_RAISED,
            events.drift_flags_raised,
            {**p, "monitoring_run_id": 1, "after": {}},
        ),
        (
            Verb.FLAG_RESOLVED,
            events.flag_resolved,
            {**p, **u, "flag_id": 1, **change, "reason": "x"},
        ),
        (
            Verb.FLAG_DISMISSED,
            events.flag_dismissed,
            {**p, **u, "flag_id": 1, **change, "reason": "x"},
        ),
        (
            Verb.ITEM_RESOLVED,
            events.item_resolved,
            {**p, **u, "item_id": 1, **change, "reason": "x"},
        ),
        (
            Verb.ITEM_MARKED_BORDERLINE,
            events.item_marked_borderline,
            {**p, **u, "item_id": 1, **change, "reason": "x"},
        ),
        (
            Verb.ITEMS_SENT_FOR_RELABEL,
            events.items_sent_for_relabel,
            {**p, **u, "flag_id": 1, **change, "reason": "x"},
        ),
        (
            Verb.ITEMS_TAGS_CHANGED,
            events.items_tags_changed,
            {**p, **u, "after": {"add": {"blurry": 2}, "remove": {}, "n_items": 2}},
        ),
        (
            Verb.NORMALIZATION_PUBLISHED,
            events.normalization_published,
            {**p, **u, **change, "reason": "x"},
        ),
        (Verb.CHECKS_CHANGED, events.checks_changed, {**p, **u, **change}),
        (
            Verb.LABELER_PAUSED,
            events.labeler_paused,
            {**p, **u, "user_id": user_id, "after": {}, "reason": "x"},
        ),
        (
            Verb.LABELER_RESUMED,
            events.labeler_resumed,
            {**p, **u, "user_id": user_id, "before": {}, "reason": "x"},
        ),
    ]


@pytest.mark.django_db
def test_each_writer_records_its_verb(project, manager):
    for verb, writer, kwargs in _writers(project.pk, manager.pk):
        already = set(Event.objects.values_list("pk", flat=True))
        writer(**kwargs)
        written = Event.objects.exclude(pk__in=already)
        assert [e.verb for e in written] == [verb], writer.__name__


def test_every_verb_has_a_writer():
    assert {verb for verb, _, _ in _writers(1, 1)} == set(Verb)


@pytest.mark.django_db
@pytest.mark.parametrize("verb", ["hello", "test.done", "Project.Created", ""])
def test_a_free_string_verb_is_refused(project, verb):
    with pytest.raises(ValueError):
        events._record(
            verb=verb,
            subject_type="project",
            subject_id=project.pk,
            project_id=project.pk,
            actor_id=None,
        )
    assert not Event.objects.filter(verb=verb).exists()


def test_there_is_no_generic_writer():
    assert not hasattr(events, "generic")


@pytest.mark.django_db
def test_events_cannot_be_updated_or_deleted_through_the_orm(project):
    event = events.project_updated(
        project_id=project.pk, actor_id=None, before={"name": "a"}, after={"name": "b"}
    )
    event.reason = "rewrite history"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=event.pk).delete()
    assert Event.objects.get(pk=event.pk).reason == ""


@pytest.mark.django_db
def test_creating_a_project_records_who_created_it(project, manager):
    event = Event.objects.get(verb="project.created", subject_id=str(project.pk))
    assert event.actor_id == manager.pk
    assert event.after["classes"] == ["no_defect", "scratch", "dent", "borderline"]


@pytest.mark.django_db
def test_postgres_trigger_refuses_raw_updates(project):
    from django.db import DatabaseError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL only; SQLite relies on the ORM guard")
    event = events.project_updated(
        project_id=project.pk, actor_id=None, before={"name": "a"}, after={"name": "b"}
    )
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE provenance_event SET reason='x' WHERE id=%s", [event.pk])


@pytest.mark.django_db(transaction=True)
def test_the_verb_choices_migration_leaves_the_table_alone():
    """Choices are not a database attribute: altering them must not rebuild the table (a
    rebuild would drop PostgreSQL's append-only triggers)."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("sqlmigrate", "provenance", "0007", stdout=out)
    statements = [
        line
        for line in out.getvalue().splitlines()
        if line.strip() and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;")
    ]
    assert statements == []
