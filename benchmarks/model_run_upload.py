"""Upload a model run of N predictions through the REST endpoint, and time it.

``POST /api/v1/projects/{id}/model-runs/`` with the same N predictions as JSON Lines
(``application/x-ndjson``), CSV (``text/csv``) and JSON (``application/json``), sent
through Django's test client in this process: the full request path (middleware,
authentication, DRF view, parsing, per-row validation, bulk insert, event, commit) and
the error analysis the 201 response carries (accuracy per slice and tag, HLP measured
per slice, tag statistics, per-class metrics), on the embedded default (SQLite in WAL
mode) in a throwaway folder.

The project: N items with two metadata keys (``factory``: 3 values, ``phone_model``: 4)
and a tag on every fifth item (one of 4), two human labels per item, ground truth on 1
item in 20, 4 classes; predictions right on about 85 % of items.

Usage::

    CONCORD_VAR_DIR=/tmp/concord-bench-model-runs python benchmarks/model_run_upload.py

The folder named by CONCORD_VAR_DIR is created and its database deleted first; nothing
outside it is touched. Goal (issue 10): 100,000 predictions well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ["ok", "scratch", "dent", "crack"]


def build(n: int, seed: int = 3):
    """The project, its items, labels and ground truth; returns (project, manager, truth)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from labeling import services
    from labeling.models import Annotation, GoldLabel, Item, LabelClass, Tag
    from provenance.bulk import insert_rows

    rng = random.Random(seed)
    users = get_user_model()
    manager = users.objects.create_user("bench-manager", password="x-bench-pw-1")
    humans = [users.objects.create_user(f"bench-h{i}", password="x-bench-pw-1") for i in (1, 2)]
    project = services.create_project(
        name="Model-run benchmark",
        classes=[{"key": k} for k in CLASSES],
        created_by=manager,
        overlap=2,
    )
    class_ids = dict(LabelClass.objects.filter(project=project).values_list("key", "id"))
    now = timezone.now()
    truth = [rng.choice(CLASSES) for _ in range(n)]
    with transaction.atomic():
        insert_rows(
            Item,
            [
                {
                    "project_id": project.pk,
                    "external_id": f"img-{k:07d}",
                    "kind": "text",
                    "text": f"item {k}",
                    "metadata": {
                        "factory": rng.choice(["shenzhen", "pune", "guadalajara"]),
                        "phone_model": rng.choice(["p7", "p8", "p8-pro", "p9"]),
                    },
                }
                for k in range(n)
            ],
        )
        ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        tags = [
            Tag.objects.create(project=project, name=t) for t in ("car", "night", "glare", "wind")
        ]
        insert_rows(
            Item.tags.through,
            [{"item_id": ids[k], "tag_id": rng.choice(tags).pk} for k in range(0, n, 5)],
        )
        insert_rows(
            Annotation,
            [
                {
                    "project_id": project.pk,
                    "item_id": ids[k],
                    "labeler_id": h.pk,
                    "label_class_id": class_ids[
                        truth[k] if rng.random() < 0.9 else rng.choice(CLASSES)
                    ],
                    "created_at": now,
                }
                for k in range(n)
                for h in humans
            ],
        )
        insert_rows(
            GoldLabel,
            [
                {
                    "item_id": ids[k],
                    "label_class_id": class_ids[truth[k]],
                    "source": "import",
                }
                for k in range(0, n, 20)
            ],
        )
    return project, manager, truth


def bodies(n: int, truth: list[str], seed: int = 5) -> dict[str, tuple[bytes, str]]:
    rng = random.Random(seed)
    rows = [
        {
            "item": f"img-{k:07d}",
            "value": truth[k] if rng.random() < 0.85 else rng.choice(CLASSES),
            "confidence": round(rng.random(), 3),
        }
        for k in range(n)
    ]
    jsonl = "\n".join(json.dumps(r) for r in rows).encode()
    csv = (
        "item,value,confidence\n"
        + "".join(f"{r['item']},{r['value']},{r['confidence']}\n" for r in rows)
    ).encode()
    as_json = json.dumps({"name": "json", "predictions": rows}).encode()
    return {
        "jsonl": (jsonl, "application/x-ndjson"),
        "csv": (csv, "text/csv"),
        "json": (as_json, "application/json"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    args = parser.parse_args()

    var_dir = os.environ.get("CONCORD_VAR_DIR")
    if not var_dir or not var_dir.startswith("/tmp/"):
        sys.exit("set CONCORD_VAR_DIR to a throwaway folder under /tmp/")
    Path(var_dir).mkdir(parents=True, exist_ok=True)
    for name in ("concord.sqlite3", "concord.sqlite3-wal", "concord.sqlite3-shm"):
        (Path(var_dir) / name).unlink(missing_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from consistency import model_runs
    from consistency.models import ModelRun, Prediction

    call_command("migrate", verbosity=0)
    n = args.predictions
    started = time.perf_counter()
    project, manager, truth = build(n)
    print(
        f"setup: {n} items, {2 * n} labels, {n // 20} ground truths in "
        f"{time.perf_counter() - started:.1f} s"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(manager)
    url = f"/api/v1/projects/{project.pk}/model-runs/"
    warm = client.get(url, secure=True)
    if warm.status_code != 200:
        sys.exit(f"warm-up: HTTP {warm.status_code}")

    for label, (body, content_type) in bodies(n, truth).items():
        query = "" if label == "json" else f"?name={label}"
        started = time.perf_counter()
        response = client.post(url + query, data=body, content_type=content_type, secure=True)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            sys.exit(f"{label}: HTTP {response.status_code}: {response.content[:500]!r}")
        analysis = response.json()["error_analysis"]
        print(
            f"{label}: {n} predictions, {len(body) / 1e6:.1f} MB, upload + error analysis "
            f"in {elapsed:.2f} s = {n / elapsed:,.0f} predictions/s; accuracy "
            f"{analysis['overall']['model_accuracy']:.3f}, "
            f"{len(analysis['prioritisation'])} table rows"
        )
    run = ModelRun.objects.order_by("-id").first()
    started = time.perf_counter()
    model_runs.error_analysis(run)
    print(f"error analysis alone (GET of a stored run): {time.perf_counter() - started:.2f} s")
    assert Prediction.objects.filter(model_run=run).count() == n


if __name__ == "__main__":
    main()
