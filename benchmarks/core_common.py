"""Shared helpers of the core benchmarks: each measurement runs in its own subprocess.

Peak memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that subprocess minus
the same figure for a bare interpreter that only imported numpy.
"""

from __future__ import annotations

import json
import pathlib
import resource
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def baseline_mb() -> float:
    code = "import numpy, resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024.0


def run_worker(script: str, args: list[str]) -> dict:
    """Run ``script --worker ...`` in a fresh interpreter and parse its last JSON line."""
    cmd = [sys.executable, script, "--worker", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
