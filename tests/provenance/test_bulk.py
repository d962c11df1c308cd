"""provenance.bulk: the shared INSERT/COPY and UPDATE writer (runs on SQLite and, with
DATABASE_URL set, on PostgreSQL, where inserts go through COPY)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.models import ImageStatsStatus, Item, PayloadKind
from provenance import bulk
from provenance.models import Event


def test_chunks_cut_a_sequence_into_slices_of_at_most_size():
    assert [list(c) for c in bulk.chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(bulk.chunks([], 3)) == []


@pytest.mark.django_db
def test_insert_rows_fills_missing_columns_with_field_defaults(project):
    bulk.insert_rows(Item, [{"project_id": project.pk, "external_id": "a", "kind": "text"}])
    item = Item.objects.get(project=project, external_id="a")
    assert item.metadata == {}  # JSONField(default=dict)
    assert item.stats_status == ImageStatsStatus.NOT_APPLICABLE  # CharField default
    assert item.text == "" and item.image_url == ""  # NOT NULL text without a default
    assert not item.image  # FileField: empty name
    assert item.width is None and item.source_batch_id is None  # nullable columns


@pytest.mark.django_db
def test_insert_rows_stores_json_values_and_sql_null(project):
    bulk.insert_rows(
        Event,
        [
            {
                "verb": "item.imported",
                "subject_type": "item",
                "subject_id": "1",
                "project_id": project.pk,
                "before": None,
                "after": {"tags": ["a", "é"], "n": 2, "nested": {"x": None}},
            },
            {
                "verb": "item.imported",
                "subject_type": "item",
                "subject_id": "2",
                "project_id": project.pk,
                "before": [1, 2],
                "after": "text",
            },
        ],
    )
    first, second = Event.objects.filter(verb="item.imported").order_by("subject_id")
    assert first.after == {"tags": ["a", "é"], "n": 2, "nested": {"x": None}}
    assert first.before is None
    assert Event.objects.filter(verb="item.imported", before__isnull=True).count() == 1
    assert second.before == [1, 2] and second.after == "text"
    assert first.reason == ""


@pytest.mark.django_db
def test_insert_rows_gives_unset_auto_dates_one_now_and_keeps_given_dates(project):
    given = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    before = timezone.now()
    rows = [
        {"project_id": project.pk, "external_id": f"d{i}", "kind": PayloadKind.TEXT}
        for i in range(3)
    ]
    rows[0]["created_at"] = given
    bulk.insert_rows(Item, rows)
    after = timezone.now()
    items = {i.external_id: i for i in Item.objects.filter(external_id__startswith="d")}
    assert items["d0"].created_at == given
    assert items["d1"].created_at == items["d2"].created_at  # one "now" per call
    assert before - timedelta(seconds=1) <= items["d1"].created_at <= after
    assert items["d1"].updated_at == items["d1"].created_at  # auto_now and auto_now_add


@pytest.mark.django_db
def test_insert_rows_writes_every_chunk_in_order(project, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_SIZE", 3)
    bulk.insert_rows(
        Item,
        [{"project_id": project.pk, "external_id": f"c{i:02d}", "kind": "text"} for i in range(8)],
    )
    stored = list(
        Item.objects.filter(project=project).order_by("pk").values_list("external_id", flat=True)
    )
    assert stored == [f"c{i:02d}" for i in range(8)]


@pytest.mark.django_db
def test_insert_rows_raises_integrity_error_on_a_unique_conflict(project):
    row = {"project_id": project.pk, "external_id": "dup", "kind": "text"}
    bulk.insert_rows(Item, [row])
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_rows(Item, [row])
    assert Item.objects.filter(external_id="dup").count() == 1


@pytest.mark.django_db
def test_insert_rows_with_no_rows_writes_nothing(project, django_assert_num_queries):
    with django_assert_num_queries(0):
        bulk.insert_rows(Item, [])
        bulk.update_rows(Item, [], ["text"])


@pytest.mark.django_db
def test_update_rows_sets_only_the_named_fields(project):
    bulk.insert_rows(
        Item,
        [
            {
                "project_id": project.pk,
                "external_id": f"u{i}",
                "kind": "text",
                "text": "old",
                "metadata": {"factory": "A"},
            }
            for i in range(2)
        ],
    )
    ids = dict(Item.objects.filter(project=project).values_list("external_id", "pk"))
    bulk.update_rows(
        Item,
        [
            {"id": ids["u0"], "text": "new", "metadata": {"factory": "B", "line": [1, 2]}},
            {"id": ids["u1"], "metadata": {"factory": "C"}},  # text omitted: its default ""
        ],
        ["text", "metadata"],
    )
    u0, u1 = Item.objects.get(pk=ids["u0"]), Item.objects.get(pk=ids["u1"])
    assert (u0.text, u0.metadata) == ("new", {"factory": "B", "line": [1, 2]})
    assert (u1.text, u1.metadata) == ("", {"factory": "C"})
    assert u0.external_id == "u0" and u0.kind == "text"  # not named: untouched


@pytest.mark.django_db
def test_update_rows_converts_dates_and_chunks(project, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_SIZE", 2)
    bulk.insert_rows(
        Item, [{"project_id": project.pk, "external_id": f"t{i}", "kind": "text"} for i in range(5)]
    )
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    when = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    bulk.update_rows(
        Item,
        [{"id": pk, "updated_at": when, "stats_status": "done"} for pk in ids],
        ["updated_at", "stats_status"],
    )
    assert set(Item.objects.filter(pk__in=ids).values_list("updated_at", flat=True)) == {when}
    assert Item.objects.filter(pk__in=ids, stats_status="done").count() == 5
