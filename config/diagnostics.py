"""Diagnostic tasks for the worker wiring (broker benchmarks, "is a worker alive?")."""

import os

from celery import shared_task


@shared_task(name="concord.ping")
def ping(n: int = 0, append_to: str = "") -> dict:
    """Return ``n`` and the worker's pid; with ``append_to``, also append ``n`` to that file
    (one line per execution, so a benchmark can count lost and duplicated deliveries)."""
    if append_to:
        with open(append_to, "a", encoding="ascii") as fh:
            fh.write(f"{n}\n")
    return {"n": n, "pid": os.getpid()}
