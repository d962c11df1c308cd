import pytest

from provenance import events
from provenance.models import AppendOnlyError, Event


@pytest.mark.django_db
def test_events_cannot_be_updated_or_deleted_through_the_orm(project):
    event = events.generic(
        verb="test.done",
        subject_type="project",
        subject_id=project.pk,
        project_id=project.pk,
        actor_id=None,
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
    event = events.generic(
        verb="test.done",
        subject_type="project",
        subject_id=1,
        project_id=project.pk,
        actor_id=None,
    )
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE provenance_event SET reason='x' WHERE id=%s", [event.pk])
