"""Leases for long background jobs: a heartbeat while a worker executes one, and the
settings that tell a live job from one whose worker is gone.

A job row (an agreement run, a dataset build) carries ``heartbeat_at`` and ``attempts``.
The worker that *claims* a job increments ``attempts`` (its token) in the same UPDATE
that moves the job to running, and a :class:`Heartbeat` thread refreshes ``heartbeat_at``
every ``CONCORD_JOB_HEARTBEAT_SECONDS`` while the job executes. A job is *stalled* when
its heartbeat is older than ``CONCORD_JOB_STALE_SECONDS``: the process that held it was
killed (SIGKILL, the OOM killer, a lost machine). The reapers (``consistency.runs`` and
``datasets.recovery``, run by Celery beat) re-queue stalled jobs, at most
``CONCORD_JOB_MAX_ATTEMPTS`` executions in all, and then mark them failed with the reason.

Every write of a job's outcome is guarded by its token, so an execution that was given
up for dead and comes back (a paused process, a redelivered message) changes nothing.

Used by ``consistency`` and ``datasets`` (which may import ``consistency``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)


class Superseded(Exception):  # noqa: N818 (a state, not an error)
    """The job was taken from this execution (re-queued or failed by the reaper)."""


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Hand the memory a finished job freed back to the operating system.

    numpy arrays below glibc's mmap threshold (raised up to 32 MB after the first large
    free) live on the heap, and a heap that a large job fragmented keeps its pages: a
    worker stayed at ~940 MB after a 10M-label run until this was called. glibc only;
    returns whether it ran."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def heartbeat_seconds() -> float:
    """Seconds between two heartbeats of a running job."""
    return float(getattr(settings, "CONCORD_JOB_HEARTBEAT_SECONDS", 10))


def stale_seconds() -> float:
    """Seconds without a heartbeat after which a job's worker is taken to be gone."""
    return float(getattr(settings, "CONCORD_JOB_STALE_SECONDS", 180))


def max_attempts() -> int:
    """Executions a job may start before a stall marks it failed instead of re-queued."""
    return int(getattr(settings, "CONCORD_JOB_MAX_ATTEMPTS", 3))


def stale_before():
    """The time before which a heartbeat is stale (aware datetime)."""
    return timezone.now() - timedelta(seconds=stale_seconds())


class Heartbeat:
    """Refresh ``heartbeat_at`` of each queryset (one job row, filtered by its token) from
    a daemon thread every :func:`heartbeat_seconds` while the ``with`` block runs.

    ``lost`` becomes True when the UPDATE matches no row: the job was taken away, and the
    execution should stop at its next checkpoint (:meth:`check`). The thread uses its own
    database connection (Django's are per thread) and closes it on exit; a failed write
    (SQLite busy during another transaction) is retried at the next beat.
    """

    def __init__(self, *querysets, interval: float | None = None):
        self.querysets = querysets
        self.interval = heartbeat_seconds() if interval is None else interval
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """One heartbeat now; False if a job row no longer matches."""
        now = timezone.now()
        matched = all([qs.update(heartbeat_at=now) for qs in self.querysets])
        if not matched:
            self.lost = True
        return matched

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception as exc:  # noqa: BLE001 (a missed beat is retried; never fatal)
                    # SQLite: busy while this job's own write transaction holds the lock.
                    logger.warning("heartbeat write failed (%s); retrying", exc)
                    close_old_connections()
        finally:
            connection.close()

    def check(self) -> None:
        """Raise :class:`Superseded` if the job was taken from this execution."""
        if self.lost:
            raise Superseded("the job was re-queued or failed while this worker ran it")

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def failpoint(name: str) -> None:
    """Fault injection for the worker-kill tests: when ``CONCORD_FAILPOINTS`` names this
    point (``name=seconds,...``), write ``<CONCORD_FAILPOINT_DIR>/<name>.<pid>`` and
    sleep, so a test can kill this very process in the middle of a job. A no-op unless
    the environment variable is set (it never is in a deployment)."""
    spec = os.environ.get("CONCORD_FAILPOINTS")
    if not spec:
        return
    for part in spec.split(","):
        key, _, seconds = part.partition("=")
        if key.strip() == name:
            folder = Path(os.environ.get("CONCORD_FAILPOINT_DIR", settings.VAR_DIR))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.{os.getpid()}").write_text(str(time.time()))
            time.sleep(float(seconds or 1))


def is_stalled(job) -> bool:
    """Whether a queued or running job's heartbeat is older than the stale limit (its
    worker is gone and the reaper will re-queue or fail it): pages must not wait on it."""
    beat = job.heartbeat_at or getattr(job, "created_at", None)
    return beat is not None and beat < stale_before()
