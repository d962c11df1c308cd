"""A job submitted by the web process is executed by a separate Celery worker process,
on whichever broker is configured (the embedded filesystem broker, or Redis in CI)."""

import pytest
from django_celery_results.models import TaskResult

from labeling import services
from labeling.models import ImageStatsStatus, Item
from tests.conftest import png_bytes, wait_for


@pytest.mark.integration
def test_image_stats_job_runs_in_a_separate_worker_process(project, celery_worker_process):
    item = services.create_image_item(
        project=project, external_id="img-worker", image_bytes=png_bytes(120, 80, (30, 30, 30))
    )

    def done():
        return Item.objects.get(pk=item.pk).stats_status == ImageStatsStatus.DONE

    wait_for(done, timeout=90, proc=celery_worker_process, what="the worker to compute stats")
    item.refresh_from_db()
    assert (item.width, item.height) == (120, 80)
    assert item.mean_brightness == pytest.approx(30.0)
    result = TaskResult.objects.get(
        task_name="labeling.tasks.compute_image_stats", task_args__contains=str(item.pk)
    )
    assert result.status == "SUCCESS"
    assert result.worker.startswith("itest-")
