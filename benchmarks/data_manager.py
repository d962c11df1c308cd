"""The data manager's list endpoint on 100,000 items: first page, filters and sorts.

Builds a throwaway SQLite database (the embedded default) under ``CONCORD_VAR_DIR``: one
project with N items carrying the demo's metadata keys, 3 current labels per item from
5 labelers (about one item in five with a dissenting label), a tag on every tenth item
and a succeeded agreement run with a majority consensus row per item. Then it times
``GET /api/v1/projects/{id}/data-manager/items/?...`` through Django's test client in
this process (middleware, session auth, DRF view, the selector, JSON rendering; no
socket), each query ``--repeat`` times after one warm-up, and prints the median and the
worst time per query.

Usage::

    CONCORD_VAR_DIR=/tmp/concord-bench-dm python benchmarks/data_manager.py --items 100000

Goal (issue 12): first page, a filter and a sort each under 300 ms on SQLite.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUERIES = [
    ("first page", ""),
    ("filter: metadata.factory", "metadata.factory=penang-b"),
    ("filter: two metadata keys", "metadata.factory=penang-b&metadata.camera=cam-7"),
    ("filter: disagreement", "disagreement=true"),
    ("filter: tag", "tag=blurry"),
    ("filter: labeler", "labeler=labeler3"),
    ("filter: class", "class=dent"),
    ("filter: status (dynamic overlap rule)", "status=complete"),
    ("sort: -external_id", "sort=-external_id"),
    ("sort: metadata.captured_at", "sort=metadata.captured_at"),
    ("sort: agreement (latest run)", "sort=agreement"),
    ("sort: n_labels", "sort=-n_labels"),
    ("filter + sort + page 40", "metadata.factory=penang-b&sort=-metadata.captured_at&page=40"),
]
# Timed again with the project switched to dynamic overlap (min 2, max 4): the status is
# then the dynamic rule on each item's kept label count and agreeing-label count.
DYNAMIC_QUERIES = [
    ("dynamic overlap: status complete", "status=complete"),
    ("dynamic overlap: status in_progress", "status=in_progress"),
    ("dynamic overlap: sort by status", "sort=status"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--reuse", action="store_true", help="time the queries on the database left by a run"
    )
    args = parser.parse_args()

    var = Path(os.environ.setdefault("CONCORD_VAR_DIR", "/tmp/concord-bench-dm"))
    if var.exists() and not args.reuse:
        shutil.rmtree(var)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CONCORD_STATIC_MANIFEST", "0")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from consistency.models import AgreementRun, Consensus, ConsensusStatus, RunStatus
    from labeling import handout, services
    from labeling.models import Annotation, Item, PayloadKind, Tag

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    User = get_user_model()
    if args.reuse and User.objects.filter(username="manager").exists():
        time_queries(Client, User.objects.get(username="manager"), args.repeat)
        return
    manager = User.objects.create_user("manager", password="x", is_staff=True)
    labelers = [User.objects.create_user(f"labeler{k}", password="x") for k in range(1, 6)]
    project = services.create_project(
        name="bench",
        task_type="classification",
        overlap=3,
        created_by=manager,
        classes=[{"key": "scratch"}, {"key": "dent"}, {"key": "no_defect"}],
    )
    classes = {c.key: c for c in project.classes.all()}
    keys = ["scratch", "dent", "no_defect"]

    t0 = time.perf_counter()
    rng = random.Random(12)
    items = [
        Item(
            project=project,
            external_id=f"img-{k:07d}",
            kind=PayloadKind.IMAGE_URL,
            image_url=f"https://images.example.org/{k:07d}.jpg",
            metadata={
                "factory": rng.choice(["shenzhen-a", "penang-b", "pune-c"]),
                "line": rng.randint(1, 12),
                "camera": f"cam-{rng.randint(1, 40)}",
                "camera_settings": {"exposure_ms": rng.choice([4, 8, 16]), "gain": 1.0},
                "phone_model": rng.choice(["p7", "p8", "p8-pro", "p9"]),
                "captured_at": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"
                f"T{rng.randint(0, 23):02d}:00:00Z",
                "device": f"rig-{rng.randint(1, 6)}",
            },
        )
        for k in range(args.items)
    ]
    Item.objects.bulk_create(items, batch_size=5000)
    ids = list(Item.objects.filter(project=project).order_by("id").values_list("pk", flat=True))
    blurry = Tag.objects.create(project=project, name="blurry")
    Item.tags.through.objects.bulk_create(
        [Item.tags.through(item_id=pk, tag_id=blurry.pk) for pk in ids[::10]], batch_size=5000
    )
    now = timezone.now()
    annotations, consensus = [], []
    run = AgreementRun.objects.create(
        project=project, status=RunStatus.SUCCEEDED, progress=1.0, finished_at=now
    )
    for n, pk in enumerate(ids):
        truth = keys[n % 3]
        chosen = rng.sample(labelers, 3)
        values = [truth, truth, truth if rng.random() > 0.2 else keys[(n + 1) % 3]]
        for labeler, value in zip(chosen, values, strict=True):
            annotations.append(
                Annotation(
                    project=project,
                    item_id=pk,
                    labeler=labeler,
                    label_class=classes[value],
                    created_at=now,
                )
            )
        agree = values.count(truth) / 3
        consensus.append(
            Consensus(
                run=run,
                item_id=pk,
                method="majority",
                label_class=classes[truth],
                support=agree,
                confidence=agree,
                entropy=0.0 if agree == 1 else 0.918,
                n_labels=3,
                status=ConsensusStatus.AGREED,
            )
        )
    Annotation.objects.bulk_create(annotations, batch_size=5000)
    Consensus.objects.bulk_create(consensus, batch_size=5000)
    # Labels written in bulk, as an import does: the kept per-item state follows them.
    handout.rebuild_project(project)
    print(
        f"setup: {args.items} items, {len(annotations)} labels, {len(consensus)} consensus rows"
        f" in {time.perf_counter() - t0:.1f} s"
    )

    time_queries(Client, manager, args.repeat)


def time_queries(Client, manager, repeat: int) -> None:
    """Time each of QUERIES ``repeat`` times (after one warm-up) and print a table."""
    from labeling.models import Project

    project = Project.objects.get(slug="bench")
    client = Client()
    client.force_login(manager)
    url = f"/api/v1/projects/{project.pk}/data-manager/items/"
    client.get(url, secure=True)  # warm-up: URL conf, first connection
    print(
        "\n| query | median ms | worst ms | median CPU ms | rows matched |"
        "\n|---|---:|---:|---:|---:|"
    )
    _time(client, url, QUERIES, repeat)
    # The status needs no stored field of the overlap settings (the target is computed
    # from the kept counts per query), so switching the flag is a faithful setup; it is
    # switched back so that a --reuse run times the same project.
    Project.objects.filter(pk=project.pk).update(dynamic_overlap=True, min_overlap=2, max_overlap=4)
    try:
        _time(client, url, DYNAMIC_QUERIES, repeat)
    finally:
        Project.objects.filter(pk=project.pk).update(dynamic_overlap=False)


def _time(client, url: str, queries: list[tuple[str, str]], repeat: int) -> None:
    for name, qs in queries:
        times, cpu = [], []
        count = None
        for _ in range(repeat + 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            response = client.get(f"{url}?{qs}" if qs else url, secure=True)
            times.append((time.perf_counter() - start) * 1000)
            # SQLite runs in this process: its CPU time is the work itself, apart from
            # waiting for a core on a shared machine.
            cpu.append((time.process_time() - start_cpu) * 1000)
            assert response.status_code == 200, response.content[:300]
            count = response.json()["count"]
        times, cpu = times[1:], cpu[1:]  # the first of each query warms SQLite's cache
        print(
            f"| {name} `{qs or '(none)'}` | {statistics.median(times):.0f} | "
            f"{max(times):.0f} | {statistics.median(cpu):.0f} | {count} |"
        )


if __name__ == "__main__":
    main()
