"""A worker killed in the middle of a job: the job still ends, with the same results.

Real worker processes (prefork pool, Celery beat embedded, so the reapers run) on the
embedded filesystem broker and on a private Redis. A fault-injection point
(``consistency.jobs.failpoint``) pauses the job at a known place and names the process
that reached it; the test SIGKILLs either that pool process only (as the OOM killer
does) or the whole worker with its process group (then starts a new worker). The job
must end ``succeeded`` with results identical to an undisturbed run of the same request
computed in this process, with no duplicate consensus or dataset rows, within a bound.
The lease settings are shortened (heartbeat 1 s, stale after 4 s, reaper every 1 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from kombu import pools as kombu_pools

from config.celery import app as celery_app
from consistency import runs
from consistency.models import AgreementRun, Consensus, RunStatus
from consistency.run_params import validate_params
from datasets import services as dataset_services
from datasets.models import DatasetRow, DatasetStatus, DatasetVersion
from tests.conftest import ROOT, _worker_env
from tests.datasets.conftest import bulk_label_items, make_items, run_majority

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PAUSE_S = 3
BOUND_S = 60  # from the kill to the job's end
LEASE_ENV = {
    "CONCORD_JOB_HEARTBEAT_SECONDS": "1",
    "CONCORD_JOB_STALE_SECONDS": "4",
    "CONCORD_JOB_REAPER_SECONDS": "1",
    "CONCORD_JOB_MAX_ATTEMPTS": "3",
}
FAILPOINT = {"single": "agreement.single", "chunked": "agreement.chunk", "dataset": "dataset.build"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _broker_url(url: str):
    """Point this process's Celery producer at ``url`` (the worker gets REDIS_URL)."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)

    def reset_pools():
        # kombu keeps its connection pools in a registry keyed by connection: closing one
        # without clearing the registry would hand the closed pool back later.
        kombu_pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    reset_pools()
    conf.broker_url = url
    conf.broker_transport_options = {"visibility_timeout": 7200}
    try:
        yield
    finally:
        reset_pools()
        conf.broker_url, conf.broker_transport_options = saved


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    """Extra worker environment for the broker under test (Redis: a private server)."""
    if request.param == "filesystem":
        if settings.REDIS_URL:
            pytest.skip("this test process is configured for Redis (REDIS_URL is set)")
        yield {}
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with _broker_url(url):
            with celery_app.producer_or_acquire() as producer:
                assert producer.connection.as_uri().startswith("redis://")
            yield {"REDIS_URL": url}
    finally:
        proc.kill()
        proc.wait()


class Workers:
    """Start and kill worker processes; each in its own process group."""

    def __init__(self, tmp_path: Path, extra_env: dict, failpoint: str):
        self.tmp = tmp_path
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.env = {
            **_worker_env(),
            **LEASE_ENV,
            **extra_env,
            "CONCORD_FAILPOINTS": f"{failpoint}={PAUSE_S}",
            "CONCORD_FAILPOINT_DIR": str(self.marks),
        }
        self.failpoint = failpoint
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        n = len(self.procs)
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--beat",
            "--schedule",
            str(self.tmp / f"beat-{n}"),
            "--loglevel",
            "INFO",
            "--hostname",
            f"kill-{os.getpid()}-{n}@localhost",
        ]
        if "REDIS_URL" not in self.env:
            cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(self.tmp / f"worker-{n}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def marks_seen(self) -> list[int]:
        """Pids of the processes that reached the failpoint, oldest first."""
        found = sorted(self.marks.glob(f"{self.failpoint}.*"), key=lambda p: p.stat().st_mtime)
        return [int(p.suffix[1:]) for p in found]

    def wait_for_failpoint(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.marks_seen()
            if seen:
                return seen[0]
            time.sleep(0.05)
        raise AssertionError(f"no worker reached {self.failpoint}\n{self.logs()}")

    def kill_group(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        out = []
        for log in sorted(self.tmp.glob("worker-*.log")):
            out.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def labeled(project, labelers):
    """60 items, three labelers, agreeing on two items in three."""
    items = make_items(project, 60)
    keys = ["no_defect", "scratch", "dent"]
    bulk_label_items(
        items, labelers, lambda i, j: keys[(i + (j if i % 3 == 0 else 0)) % 3] if i < 57 else None
    )
    return project


def _start(kind: str, project):
    """Submit the job as the API would (enqueued on commit); returns a reload function."""
    if kind == "dataset":
        run_majority(project)
        version = dataset_services.request_dataset_version(
            project=project, requested_by=None, data={"seed": 9}
        )
        return lambda: DatasetVersion.objects.get(pk=version.pk)
    params = {"n_bootstrap": 20, "seed": 5}
    if kind == "chunked":
        params["chunk_items"] = 20
    run = runs.start_agreement_run(project=project, params=params)
    return lambda: AgreementRun.objects.get(pk=run.pk)


def _consensus_rows(run):
    return list(
        Consensus.objects.filter(run=run)
        .order_by("method", "item_id")
        .values_list("item_id", "method", "label_class_id", "support", "confidence", "status")
    )


def _assert_same_as_undisturbed(kind: str, job) -> None:
    if kind == "dataset":
        assert job.status == DatasetStatus.SUCCEEDED, job.error
        reference = DatasetVersion.objects.create(project=job.project, request=job.request)
        reference = dataset_services.build_dataset_version(dataset_version_id=reference.pk)
        assert reference.status == DatasetStatus.SUCCEEDED, reference.error
        assert job.content_hash == reference.content_hash
        rows = list(DatasetRow.objects.filter(version=job).order_by("position").values_list("line"))
        expected = list(
            DatasetRow.objects.filter(version=reference).order_by("position").values_list("line")
        )
        assert len(rows) == job.row_count == reference.row_count > 0
        assert rows == expected  # one row per item: none duplicated, none lost
        return
    assert job.status == RunStatus.SUCCEEDED, job.error
    reference = AgreementRun.objects.create(
        project=job.project, params=validate_params(job.project, job.params)
    )
    reference = runs.execute_agreement_run(reference.pk)
    assert reference.status == RunStatus.SUCCEEDED, reference.error
    assert job.results == reference.results
    rows = _consensus_rows(job)
    assert rows == _consensus_rows(reference)
    assert len(rows) == 2 * 57  # two methods, one row per labeled item


@pytest.mark.parametrize("kill", ["pool_process", "whole_worker"])
@pytest.mark.parametrize("kind", ["single", "chunked", "dataset"])
def test_a_job_survives_its_worker_being_killed(kind, kill, broker, labeled, tmp_path):
    celery_app.control.purge()
    workers = Workers(tmp_path, broker, FAILPOINT[kind])
    try:
        first = workers.start()
        reload = _start(kind, labeled)
        victim = workers.wait_for_failpoint()
        if kill == "pool_process":
            assert victim != first.pid  # the pool process, not the worker's main process
            os.kill(victim, signal.SIGKILL)
        else:
            workers.kill_group(first)
            workers.start()
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < BOUND_S:
            job = reload()
            if job.status in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(
                f"{kind} job still {job.status} {BOUND_S}s after the kill\n{workers.logs()}"
            )
        # The work at the failpoint was done again after the kill, by another process.
        seen = workers.marks_seen()
        assert len(seen) >= 2 and victim in seen, seen
        try:
            _assert_same_as_undisturbed(kind, job)
        except AssertionError:
            print(workers.logs())
            raise
        assert job.attempts >= (1 if kind == "chunked" else 2)
    finally:
        workers.stop()
