"""Labeling tasks retry on transient database errors, with the items not yet done."""

import pytest
from django.db import OperationalError

from config.celery import app as celery_app
from labeling import services, tasks
from labeling.models import ImageStatsStatus
from provenance.models import Event, Verb
from tests.conftest import png_bytes


@pytest.fixture(autouse=True)
def retries_run_eagerly():
    """Eager mode runs a retry at once, unless errors propagate (then Retry is raised)."""
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


@pytest.mark.django_db
def test_image_stats_retry_after_a_database_error_with_the_items_left(project, monkeypatch):
    items = [
        services.create_image_item(
            project=project, external_id=f"img-{i}", image_bytes=png_bytes(40 + i, 30)
        )
        for i in range(3)
    ]
    real = services.compute_item_image_stats
    calls = []

    def once_failing(*, item_id):
        calls.append(item_id)
        if item_id == items[1].pk and calls.count(item_id) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(item_id=item_id)

    monkeypatch.setattr(services, "compute_item_image_stats", once_failing)
    result = tasks.compute_image_stats.delay([i.pk for i in items]).get()

    # First attempt: items 0 and 1 (fails); the retry starts at item 1.
    assert calls == [items[0].pk, items[1].pk, items[1].pk, items[2].pk]
    assert result == {"items": {items[1].pk: "done", items[2].pk: "done"}}
    for i, item in enumerate(items):
        item.refresh_from_db()
        assert (item.stats_status, item.width, item.height) == (ImageStatsStatus.DONE, 40 + i, 30)
        assert Event.objects.filter(verb=Verb.ITEM_IMAGE_STATS, item_id_ref=item.pk).count() == 1


@pytest.mark.django_db
def test_image_stats_give_up_after_max_retries(project, monkeypatch):
    item = services.create_image_item(project=project, external_id="img", image_bytes=png_bytes())

    calls = []

    def always_failing(*, item_id):
        calls.append(item_id)
        raise OperationalError("database is down")

    monkeypatch.setattr(services, "compute_item_image_stats", always_failing)
    with pytest.raises(OperationalError, match="database is down"):
        tasks.compute_image_stats.delay([item.pk]).get()
    assert len(calls) == 1 + tasks.compute_image_stats.max_retries
