"""Import N items with metadata as JSONL through the REST endpoint, and time it.

``POST /api/v1/projects/{id}/items/import/`` with ``Content-Type: application/x-ndjson``,
sent through Django's test client in this process: the full request path (middleware,
authentication, DRF view, parsing, validation, bulk inserts, events, commit) without a
socket, on the embedded default (SQLite in WAL mode) in a throwaway folder.
Then the same file again: every row becomes an update (the re-import path).

Usage::

    CONCORD_VAR_DIR=/tmp/concord-bench-import python benchmarks/import_items.py --items 100000

The folder named by CONCORD_VAR_DIR is created and its database deleted first; nothing
outside it is touched. Goal (issue 4): >= 5,000 items/s on a 2-core machine.
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


def make_rows(n: int, seed: int = 7) -> bytes:
    """JSONL rows shaped like the demo data: an image URL, factory metadata, some tags."""
    rng = random.Random(seed)
    factories, phones = ["shenzhen", "pune", "guadalajara"], ["p7", "p8", "p8-pro", "p9"]
    lines = []
    for k in range(n):
        row = {
            "external_id": f"img-{k:07d}",
            "image_url": f"https://images.example.org/batch-7/{k:07d}.jpg",
            "metadata": {
                "factory": rng.choice(factories),
                "line": rng.randint(1, 12),
                "camera": f"cam-{rng.randint(1, 40)}",
                "camera_settings": {"exposure_ms": rng.choice([4, 8, 16]), "iso": 200},
                "phone_model": rng.choice(phones),
                "captured_at": f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
                "device": f"rig-{rng.randint(1, 6)}",
            },
        }
        if k % 5 == 0:
            row["tags"] = rng.sample(["blurry", "dark", "glare", "reflection"], 2)
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()

    var_dir = os.environ.get("CONCORD_VAR_DIR")
    if not var_dir or not var_dir.startswith("/tmp/"):
        sys.exit("set CONCORD_VAR_DIR to a throwaway folder under /tmp/")
    Path(var_dir).mkdir(parents=True, exist_ok=True)
    for name in ("concord.sqlite3", "concord.sqlite3-wal", "concord.sqlite3-shm"):
        (Path(var_dir) / name).unlink(missing_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"  # no image-URL fetching is asked for anyway
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from labeling import services
    from labeling.models import Item
    from provenance.models import Event

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    manager = get_user_model().objects.create_user("bench-manager", password="x-bench-pw-1")
    project = services.create_project(
        name="Import benchmark",
        classes=[{"key": "ok"}, {"key": "scratch"}],
        created_by=manager,
    )
    body = make_rows(args.items)
    client = Client(HTTP_HOST="localhost")
    client.force_login(manager)
    url = f"/api/v1/projects/{project.pk}/items/import/"
    # A server answers many requests: load the URL configuration and views first.
    warm = client.get(f"/api/v1/projects/{project.pk}/items/", secure=True)
    if warm.status_code != 200:
        sys.exit(f"warm-up: HTTP {warm.status_code}")

    results = {}
    for label in ("create", "update"):
        started = time.perf_counter()
        response = client.post(url, data=body, content_type="application/x-ndjson", secure=True)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            sys.exit(f"{label}: HTTP {response.status_code}: {response.content[:500]!r}")
        result = response.json()
        results[label] = (elapsed, result)
        print(
            f"{label}: {args.items} rows, {len(body) / 1e6:.1f} MB in {elapsed:.2f} s = "
            f"{args.items / elapsed:,.0f} items/s "
            f"(created {result['n_created']}, updated {result['n_updated']})"
        )
    assert Item.objects.filter(project=project).count() == args.items
    assert Event.objects.filter(verb="item.imported").count() == args.items
    print(
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
        f"{Item.objects.count()} items, {Event.objects.count()} events"
    )


if __name__ == "__main__":
    main()
