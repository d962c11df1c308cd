"""The agreement-run lease and reaper, in-process (tasks eager): a run whose worker died
is re-queued and completes with the same results, or fails with the reason once out of
attempts; an execution that lost its run writes nothing; a stalled run does not hold
the dashboard's button. The same with real killed workers: tests/test_job_recovery.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consistency import jobs, runs
from consistency.models import AgreementRun, AgreementRunChunk, Consensus, RunStatus
from tests.datasets.conftest import bulk_label_items, make_items

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(hours=1)


@pytest.fixture
def labeled(project, labelers):
    items = make_items(project, 30)
    keys = ["no_defect", "scratch", "dent"]
    bulk_label_items(items, labelers, lambda i, j: keys[(i + (j if i % 4 == 0 else 0)) % 3])
    return project


def reference(project, **params) -> AgreementRun:
    run = runs.start_agreement_run(project=project, params=params)
    return runs.execute_agreement_run(run.pk)


def consensus_rows(run):
    return list(
        Consensus.objects.filter(run=run)
        .order_by("method", "item_id")
        .values_list("item_id", "method", "label_class_id", "support", "confidence", "status")
    )


def stall(run_id: int, **fields) -> None:
    """What a SIGKILLed worker leaves behind: the heartbeat stops."""
    AgreementRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now() - LONG_AGO, **fields)


def test_a_run_whose_worker_died_is_requeued_and_completes_identically(
    labeled, django_capture_on_commit_callbacks
):
    expected = reference(labeled, n_bootstrap=10, seed=1)
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 10, "seed": 1})
    assert runs._claim(run.pk) is not None  # an execution took it ... and died
    stall(run.pk, phase="single")
    with django_capture_on_commit_callbacks(execute=True):
        counts = runs.reap_stalled_agreement_runs()
    assert counts["requeued"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2 and run.error == ""
    assert run.results == expected.results
    assert consensus_rows(run) == consensus_rows(expected)


def test_a_run_out_of_attempts_fails_with_the_reason(labeled, settings):
    settings.CONCORD_JOB_MAX_ATTEMPTS = 2
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0})
    runs._claim(run.pk)
    stall(run.pk, phase="single", attempts=2)
    assert runs.reap_stalled_agreement_runs()["failed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "stopped responding" in run.error and "gave up after 2 attempts" in run.error
    assert run.finished_at is not None


def test_a_live_run_is_left_alone(labeled):
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0})
    runs._claim(run.pk)  # heartbeat: now
    assert not any(runs.reap_stalled_agreement_runs().values())
    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 1)


def test_a_lost_queued_message_is_sent_again(labeled):
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0})
    stall(run.pk)  # queued an hour ago; its message died with a worker that reserved it
    assert runs.reap_stalled_agreement_runs()["resent"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 1


def test_an_execution_that_lost_its_run_writes_nothing(labeled):
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0})
    mine = runs._claim(run.pk)
    AgreementRun.objects.filter(pk=run.pk).update(attempts=2)  # the reaper gave it away
    with pytest.raises(jobs.Superseded):
        runs._save(mine, progress=0.9)
    with pytest.raises(jobs.Superseded):
        runs.consensus_part(mine, *_stats(mine))
    assert not Consensus.objects.filter(run=run).exists()
    assert AgreementRun.objects.get(pk=run.pk).progress == pytest.approx(0.01)


def _stats(run):
    import numpy as np

    from consistency.chunks import chunk_stats
    from consistency.class_map import class_map

    labeler_ids, _ = runs._labelers_and_version(run.project_id)
    classes = class_map(run.project, "nominal")
    run.params = {**run.params, "level": "nominal"}
    ids = np.asarray(labeler_ids, dtype=np.int64)
    return chunk_stats(run.project, "nominal", classes, ids, None, None), classes


def test_a_chunked_run_redoes_only_the_chunk_whose_worker_died(labeled):
    expected = reference(labeled, n_bootstrap=10, seed=2)
    run = runs.start_agreement_run(
        project=labeled, params={"n_bootstrap": 10, "seed": 2, "chunk_items": 10}
    )
    sent = []
    runs.execute_agreement_run(run.pk, dispatch_chunks=lambda *a: sent.append(a))
    assert sent and sent[0][2] == [0, 1, 2]
    runs.compute_agreement_chunk(run_id=run.pk, attempt=1, index=0)
    # Chunk 1 was claimed by a worker that died; chunk 2's message was lost.
    AgreementRunChunk.objects.filter(run=run, index=1).update(
        state="running", tries=1, heartbeat_at=timezone.now() - LONG_AGO
    )
    stall(run.pk)
    assert runs.reap_stalled_agreement_runs()["chunks_resent"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 1  # the chunks were redone, not the run
    assert run.results == {**expected.results, "params": run.params}
    assert consensus_rows(run) == consensus_rows(expected)
    assert not AgreementRunChunk.objects.filter(run=run).exists()


def test_a_chunk_that_keeps_killing_its_worker_fails_the_run(labeled, settings):
    settings.CONCORD_JOB_MAX_ATTEMPTS = 2
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0, "chunk_items": 10})
    runs.execute_agreement_run(run.pk, dispatch_chunks=lambda *a: None)
    AgreementRunChunk.objects.filter(run=run, index=1).update(
        state="running", tries=2, heartbeat_at=timezone.now() - LONG_AGO
    )
    stall(run.pk)
    assert runs.reap_stalled_agreement_runs()["failed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "chunk 1 lost its worker 2 times" in run.error


def test_a_stalled_run_does_not_disable_the_run_button(labeled, manager):
    run = runs.start_agreement_run(project=labeled, params={"n_bootstrap": 0})
    runs._claim(run.pk)
    client = Client()
    client.force_login(manager)
    url = reverse("consistency-dashboard", args=[labeled.pk])

    def button_disabled() -> bool:
        page = client.get(url, secure=True).content.decode()
        tag = page[page.index('data-testid="start-run"') :].split(">", 1)[0]
        return "disabled" in tag

    assert button_disabled()  # a live run holds it
    stall(run.pk)
    assert not button_disabled()
