"""Monitoring run on a large project: 200,000 items and 1,000,000 labels.

Synthetic data (deterministic, seed 0): ``--items`` items (default 200,000) captured over
six weeks, each with image statistics (brightness, width, height) and metadata
(``factory`` 3 values, ``camera`` 8, ``phone_model`` 5, ``captured_at``); one camera's
images are 30 % darker in the last two weeks. Five labels per item (default, ``--per-item``)
from a pool of 50 labelers, 6 classes, made a few hours after capture; one labeler's
confusion changes in the last two weeks. Stored in a throwaway SQLite database under
``$CONCORD_VAR_DIR`` (default /tmp/bench-monitoring).

Measured: ``consistency.monitoring.execute_monitoring_run`` in this process (the task
body, without the broker), default windows and slices (the three metadata keys), 200
bootstrap samples; the run's own phase timings (load, checks, flags) and the total.

Usage::

    CONCORD_VAR_DIR=/tmp/bench-monitoring python benchmarks/monitoring_run.py
    ... --items 20000            # a quick look
    ... --reuse                  # keep the database of an earlier call
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONCORD_VAR_DIR", "/tmp/bench-monitoring")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
sys.path.insert(0, str(ROOT))

N_CLASSES = 6
POOL = 50
DAYS = 42


def build(n_items: int, per_item: int) -> int:
    """Create the database and the synthetic project; return the project id."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from labeling import services
    from labeling.models import Annotation, ImageStatsStatus, Item, LabelClass, PayloadKind

    call_command("migrate", verbosity=0)
    User = get_user_model()
    owner = User.objects.create_user("bench-manager", password=None)
    project = services.create_project(
        name="Monitoring benchmark",
        classes=[{"key": f"c{i}", "name": f"Class {i}"} for i in range(N_CLASSES)],
        overlap=per_item,
        created_by=owner,
        monitoring_schedule="off",
    )
    users = User.objects.bulk_create(
        [User(username=f"bench-labeler{i:02d}", password="!") for i in range(POOL)]
    )
    class_ids = list(
        LabelClass.objects.filter(project=project).order_by("order").values_list("pk", flat=True)
    )
    rng = np.random.default_rng(0)
    start = datetime(2024, 3, 4, tzinfo=UTC)
    factories = np.array(["north", "south", "east"])
    cameras = np.array([f"cam-{i}" for i in range(1, 9)])
    models = np.array(["Alpha", "Beta", "Gamma", "Delta", "Epsilon"])
    f_idx = rng.integers(0, factories.size, n_items)
    c_idx = rng.integers(0, cameras.size, n_items)
    m_idx = rng.integers(0, models.size, n_items)
    day = np.sort(rng.uniform(0, DAYS, n_items))
    brightness = rng.normal(120, 12, n_items)
    brightness[(c_idx == 3) & (day >= 28)] *= 0.7
    t0 = time.perf_counter()
    with transaction.atomic():
        Item.objects.bulk_create(
            (
                Item(
                    project=project,
                    external_id=f"item-{i:07d}",
                    kind=PayloadKind.IMAGE_URL,
                    image_url=f"https://example.org/{i}.png",
                    stats_status=ImageStatsStatus.DONE,
                    mean_brightness=float(brightness[i]),
                    width=640,
                    height=480 if i % 10 else 360,
                    metadata={
                        "factory": str(factories[f_idx[i]]),
                        "camera": str(cameras[c_idx[i]]),
                        "phone_model": str(models[m_idx[i]]),
                        "captured_at": (start + timedelta(days=float(day[i]))).isoformat(),
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
    truth = rng.integers(0, N_CLASSES, n_items)
    skill = rng.uniform(0.75, 0.97, POOL)
    labelers = np.argsort(rng.random((n_items, POOL)), axis=1)[:, :per_item].ravel()
    items = np.repeat(np.arange(n_items), per_item)
    t = truth[items]
    right = rng.random(items.size) < skill[labelers]
    value = np.where(right, t, rng.integers(0, N_CLASSES, items.size))
    # labeler 7 starts calling class 2 class 3 in the last two weeks
    late = day[items] >= 28
    confused = (labelers == 7) & late & (value == 2) & (rng.random(items.size) < 0.8)
    value = np.where(confused, 3, value)
    made = start.timestamp() + (day[items] + rng.uniform(0.05, 0.5, items.size)) * 86400
    created = [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S") for s in made.tolist()]
    user_ids = np.array([u.pk for u in users])
    table = connection.ops.quote_name(Annotation._meta.db_table)
    sql = (
        f"INSERT INTO {table} (project_id, item_id, labeler_id, label_class_id, value_text, "
        "comment, source, is_current, created_at) "
        "VALUES (%s, %s, %s, %s, '', '', 'import', 1, %s)"
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
                created[lo:hi],
                strict=True,
            )
            cursor.executemany(sql, list(rows))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"built {n_items} items, {items.size} annotations in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return project.pk


def measure(project_id: int) -> dict:
    from consistency import monitoring
    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    t0 = time.perf_counter()
    run = monitoring.start_monitoring_run(project=project)
    run = monitoring.execute_monitoring_run(run.pk)
    total = time.perf_counter() - t0
    if run.status != "succeeded":
        raise SystemExit(f"run failed: {run.error}")
    summary = run.results["summary"]
    drifted = [
        (c["metric"], c["slice"], c["labeler"]) for c in run.results["checks"] if c["drifted"]
    ]
    out = {
        "total_seconds": round(total, 2),
        "timings": run.timings,
        "summary": summary,
        "drifted": drifted,
        "json_bytes": len(json.dumps(run.results)),
    }
    print(json.dumps(out, indent=1, default=str), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    var = Path(os.environ["CONCORD_VAR_DIR"])
    if not args.reuse and var.exists():
        shutil.rmtree(var)
    var.mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from labeling.models import Project

    if args.reuse and Project.objects.filter(name="Monitoring benchmark").exists():
        project_id = Project.objects.get(name="Monitoring benchmark").pk
    else:
        project_id = build(args.items, args.per_item)
    measure(project_id)


if __name__ == "__main__":
    main()
