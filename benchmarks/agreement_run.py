"""Agreement run end to end through a real Celery worker, against just reading the rows.

Synthetic data (deterministic, seed 0): ``--items`` items (default 200,000) x 5 labelers
drawn from a pool of 50, 6 classes of which classes 1 and 2 are confusable, 3 metadata
keys (factory, camera, phone_model). Stored in a throwaway SQLite database under
``$CONCORD_VAR_DIR`` (default /tmp/bench-agree), then:

(a) ``read``: the time to read those rows with the run's own scan query
    (:func:`consistency.scan.scan_annotations`), best of 3, warm cache;
(b) ``run``: from ``start_agreement_run`` (commit → enqueue) to ``succeeded``, executed
    by a separate ``celery worker`` process (prefork, ``--concurrency``): every metric,
    HLP, consensus by majority and Dawid-Skene (both stored), 3 slice keys, 1000
    bootstrap samples.

Usage::

    CONCORD_VAR_DIR=/tmp/bench-agree /tmp/venvprobe/bin/python benchmarks/agreement_run.py
    ... --items 20000            # a quick look
    ... --reuse                  # keep the database of an earlier call
    ... --parallel-workers 2     # let the run split into chunks for 2 worker processes
    DATABASE_URL=postgres://... SECRET_KEY=... ... # the same on PostgreSQL (flushed first)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONCORD_VAR_DIR", "/tmp/bench-agree")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
sys.path.insert(0, str(ROOT))

N_CLASSES = 6
POOL = 50
PER_ITEM = 5


def build(n_items: int) -> int:
    """Create the database and the synthetic project; return the project id."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from labeling import services
    from labeling.models import Annotation, Item, LabelClass, PayloadKind

    call_command("migrate", verbosity=0)
    User = get_user_model()
    owner = User.objects.create_user("bench-manager", password=None)
    project = services.create_project(
        name="Agreement benchmark",
        classes=[{"key": f"c{i}", "name": f"Class {i}"} for i in range(N_CLASSES)],
        overlap=PER_ITEM,
        created_by=owner,
        guideline_text="Benchmark guideline.",
    )
    guideline_id = project.guidelines.get().pk
    users = User.objects.bulk_create(
        [User(username=f"bench-labeler{i:02d}", password="!") for i in range(POOL)]
    )
    class_ids = list(
        LabelClass.objects.filter(project=project).order_by("order").values_list("pk", flat=True)
    )
    rng = np.random.default_rng(0)
    factories = np.array(["north", "south", "east"])
    cameras = np.array([f"cam-{i}" for i in range(1, 9)])
    models = np.array(["Alpha", "Beta", "Gamma", "Delta", "Epsilon"])
    f_idx = rng.integers(0, factories.size, n_items)
    c_idx = rng.integers(0, cameras.size, n_items)
    m_idx = rng.integers(0, models.size, n_items)
    t0 = time.perf_counter()
    with transaction.atomic():
        Item.objects.bulk_create(
            (
                Item(
                    project=project,
                    external_id=f"item-{i:07d}",
                    kind=PayloadKind.TEXT,
                    text="",
                    metadata={
                        "factory": str(factories[f_idx[i]]),
                        "camera": str(cameras[c_idx[i]]),
                        "phone_model": str(models[m_idx[i]]),
                    },
                )
                for i in range(n_items)
            ),
            batch_size=5000,
        )
    item_ids = np.fromiter(
        Item.objects.filter(project=project).order_by("id").values_list("id", flat=True),
        dtype=np.int64,
    )
    # Labels: truth per item; each of 5 labelers (distinct, out of 50) is right with a
    # labeler-specific skill, else picks a random class; classes 1 and 2 are confusable
    # (35% of labels on them go to the other one).
    truth = rng.integers(0, N_CLASSES, n_items)
    skill = rng.uniform(0.7, 0.97, POOL)
    labelers = np.argsort(rng.random((n_items, POOL)), axis=1)[:, :PER_ITEM].ravel()
    items = np.repeat(np.arange(n_items), PER_ITEM)
    t = truth[items]
    right = rng.random(items.size) < skill[labelers]
    value = np.where(right, t, rng.integers(0, N_CLASSES, items.size))
    swap = np.isin(value, (1, 2)) & (rng.random(items.size) < 0.35)
    value = np.where(swap, 3 - value, value)
    user_ids = np.array([u.pk for u in users])
    table = connection.ops.quote_name(Annotation._meta.db_table)
    sql = (
        f"INSERT INTO {table} (project_id, item_id, labeler_id, label_class_id, value_text, "
        "guideline_id, comment, source, is_current, created_at) "
        "VALUES (%s, %s, %s, %s, '', %s, '', 'import', %s, '2024-03-04 10:00:00')"
    )
    class_arr = np.asarray(class_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        batch = 200_000
        for lo in range(0, items.size, batch):
            hi = min(lo + batch, items.size)
            rows = zip(
                [project.pk] * (hi - lo),
                item_ids[items[lo:hi]].tolist(),
                user_ids[labelers[lo:hi]].tolist(),
                class_arr[value[lo:hi]].tolist(),
                [guideline_id] * (hi - lo),
                [True] * (hi - lo),
                strict=True,
            )
            cursor.executemany(sql, list(rows))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # the visibility map: index-only scans
    print(
        f"built {n_items} items, {items.size} annotations in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return project.pk


def measure_read(project_id: int, repeat: int = 3) -> float:
    from consistency.scan import scan_annotations

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        cols = scan_annotations(project_id)
        best = min(best, time.perf_counter() - t0)
    print(f"(a) read {cols.n} rows: best of {repeat} = {best:.2f}s", flush=True)
    return best


def start_worker(concurrency: int, log_path: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        *(() if os.environ.get("REDIS_URL") else ("--without-gossip", "--without-mingle")),
        "--without-heartbeat",
        "--hostname",
        f"bench-{os.getpid()}@localhost",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b" ready." in log_path.read_bytes():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"worker exited: see {log_path}")
        time.sleep(0.1)
    raise SystemExit(f"worker not ready after 60s: see {log_path}")


def measure_run(project_id: int, params: dict, timeout: float = 600) -> dict:
    from django.db import transaction

    from consistency import runs
    from consistency.models import AgreementRun
    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    t0 = time.perf_counter()
    with transaction.atomic():
        run = runs.start_agreement_run(project=project, params=params)
    while time.perf_counter() - t0 < timeout:
        status = AgreementRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    run = AgreementRun.objects.get(pk=run.pk)
    overall = (run.results or {}).get("overall", {})
    return {
        "status": run.status,
        "error": run.error,
        "seconds": round(elapsed, 2),
        "n_chunks": run.n_chunks,
        "timings": run.timings,
        "alpha": overall.get("krippendorff_alpha"),
        "alpha_ci": overall.get("krippendorff_alpha_ci"),
        "n_annotations": overall.get("n_annotations"),
        "n_consensus_rows": run.consensus.count(),
    }


def measure_in_process(project_id: int, params: dict, skip_gwet_ci: bool) -> dict:
    """The run executed in this process (no broker, no worker start-up), so that the read
    and the run are timed back to back under the same machine load. With
    ``skip_gwet_ci`` Gwet's AC bootstrap interval is stubbed out (reported as None) to
    show what the rest of the run costs; the stub is this benchmark's, never the app's."""
    from consistency import runs
    from consistency.models import AgreementRun
    from labeling.models import Project

    if skip_gwet_ci:
        from consistency.metrics import summary

        summary.gwet_ac_bootstrap = lambda *a, **k: None
    project = Project.objects.get(pk=project_id)
    t0 = time.perf_counter()
    run = runs.start_agreement_run(project=project, params=params)
    run = runs.execute_agreement_run(run.pk)
    run = AgreementRun.objects.get(pk=run.pk)
    # Until the run is marked succeeded, as the worker path measures it (flags are
    # generated after that, as advice; their time is printed apart).
    elapsed = (run.finished_at - run.created_at).total_seconds()
    print(f"flags after success: {time.perf_counter() - t0 - elapsed:.2f}s", flush=True)
    overall = (run.results or {}).get("overall", {})
    return {
        "status": run.status,
        "error": run.error,
        "seconds": round(elapsed, 2),
        "n_chunks": run.n_chunks,
        "timings": run.timings,
        "alpha": overall.get("krippendorff_alpha"),
        "alpha_ci": overall.get("krippendorff_alpha_ci"),
        "n_annotations": overall.get("n_annotations"),
        "n_consensus_rows": run.consensus.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--chunk-items", type=int, default=None, help="default: the setting")
    parser.add_argument(
        "--parallel-workers",
        type=int,
        default=None,
        help="CONCORD_AGREEMENT_PARALLEL_WORKERS for the worker (default: the setting, 1)",
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true", help="keep an existing database")
    parser.add_argument(
        "--in-process", action="store_true", help="run in this process, not through a worker"
    )
    parser.add_argument(
        "--skip-gwet-ci",
        action="store_true",
        help="(with --in-process) stub out Gwet's AC bootstrap interval to time the rest",
    )
    args = parser.parse_args()

    var = Path(os.environ["CONCORD_VAR_DIR"])
    if not args.reuse and var.exists():
        shutil.rmtree(var)
    var.mkdir(parents=True, exist_ok=True)

    import django

    django.setup()
    if not args.reuse and os.environ.get("DATABASE_URL"):
        from django.core.management import call_command

        call_command("flush", "--noinput", verbosity=0)
    from labeling.models import Project

    project = Project.objects.filter(slug="agreement-benchmark").first() if args.reuse else None
    project_id = project.pk if project else build(args.items)
    read_s = measure_read(project_id)
    params = {
        "slices": ["factory", "camera", "phone_model"],
        "n_bootstrap": args.n_bootstrap,
        "seed": 0,
        "consensus": ["majority", "dawid_skene"],
    }
    if args.chunk_items:
        params["chunk_items"] = args.chunk_items
    if args.in_process:
        run = measure_in_process(project_id, params, args.skip_gwet_ci)
        read_again = measure_read(project_id)
        read_s = min(read_s, read_again)
    else:
        if args.parallel_workers:
            os.environ["CONCORD_AGREEMENT_PARALLEL_WORKERS"] = str(args.parallel_workers)
        worker = start_worker(args.concurrency, var / "bench-worker.log")
        try:
            run = measure_run(project_id, params)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    record = {
        "items": args.items,
        "annotations": run["n_annotations"],
        "read_s": round(read_s, 2),
        "run_s": run["seconds"],
        "ratio": round(run["seconds"] / read_s, 2),
        **{k: v for k, v in run.items() if k != "seconds"},
    }
    where = "in this process" if args.in_process else "through the worker"
    print(f"(b) run {where}: {run['seconds']:.2f}s ({run['status']})", flush=True)
    print(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
