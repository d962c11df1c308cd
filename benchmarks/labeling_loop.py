"""Labeling loop against a production-style server: gunicorn + PostgreSQL.

N simulated labelers (threads, token auth, one keep-alive HTTP connection each) repeat
``GET /api/v1/projects/{id}/next-item/`` then ``POST /api/v1/items/{id}/annotations/``
with an optional think time between the two (a person looks at the item). Reports
p50/p95/p99 per request type, errors and throughput, and checks the overlap invariants
in the database afterwards. Bounded: stops after ``--cycles`` per labeler or
``--seconds``, whichever comes first, and only talks to 127.0.0.1.

Usage (PostgreSQL must be running; the database is created/migrated if needed)::

    DATABASE_URL=postgres://postgres@127.0.0.1:55432/concord_bench SECRET_KEY=bench \\
      python benchmarks/labeling_loop.py --labelers 16 --items 2000 --cycles 40 --think-ms 0

Goal (issue 4): p95 <= 50 ms, zero errors, 16 concurrent labelers.

In-process mode (issue 14): ``--direct`` times the services themselves, one labeler,
``--cycles`` hand-out + submit cycles on a fresh project of each ``--sizes`` items of
which a third already carry one label (overlap 3), on the configured database (SQLite by
default, PostgreSQL with ``DATABASE_URL``)::

    CONCORD_SQLITE_PATH=/tmp/bench.sqlite3 python benchmarks/labeling_loop.py --direct \
      --sizes 2000 20000 200000 1000000 --cycles 200

Goal: hand-out + submit p95 <= 10 ms at every size (flat).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def server_env(port: int) -> dict:
    env = dict(os.environ)
    env.update(
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        CONCORD_STATIC_MANIFEST="0",
    )
    env.setdefault("SECRET_KEY", "benchmark-only-secret-key-not-for-production")
    return env


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start listening in time")


def setup_project(n_items: int, n_labelers: int, overlap: int) -> tuple[int, list[str]]:
    """Create a fresh project with text items and labelers with API tokens."""
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from labeling import services
    from labeling.models import Item, PayloadKind, Role

    user_model = get_user_model()
    stamp = time.strftime("%Y%m%d%H%M%S")
    project = services.create_project(
        name=f"bench {stamp}",
        classes=[{"key": k} for k in ("no_defect", "scratch", "dent", "crack")],
        overlap=overlap,
        guideline_text="Label the most severe visible defect.",
    )
    from django.db import connection, transaction

    from provenance import bulk

    # COPY on PostgreSQL: a million items in seconds. A new item's hand-out state is its
    # defaults (no labels, no holds, open).
    with transaction.atomic():
        for start in range(0, n_items, 100_000):
            bulk.insert_rows(
                Item,
                [
                    {
                        "project_id": project.pk,
                        "external_id": f"b{i:07d}",
                        "kind": PayloadKind.TEXT,
                        "text": f"item {i}",
                        "metadata": {},
                    }
                    for i in range(start, min(n_items, start + 100_000))
                ],
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_item")
    tokens = []
    for i in range(n_labelers):
        user = user_model.objects.create_user(username=f"bench{stamp}-{i}", password=None)
        services.set_membership(project=project, user=user, role=Role.LABELER)
        tokens.append(Token.objects.create(user=user).key)
    return project.pk, tokens


class Labeler(threading.Thread):
    def __init__(self, port, project_id, token, args, deadline, seed):
        super().__init__(daemon=True)
        self.port, self.project_id, self.token, self.args = port, project_id, token, args
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.latencies: dict[str, list[float]] = {"next": [], "submit": []}
        self.timeline: list[tuple[float, str, float]] = []  # (start, kind, seconds)
        self.errors: list[str] = []
        self.handed: list[int] = []
        self.conn = None

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - started
                closing = getattr(self.args, "new_connection_each_request", False)
                if closing or response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, payload, elapsed
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A server-closed keep-alive connection: reconnect once, not an error.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def run(self):
        try:
            if self.args.think_ms and not getattr(self.args, "new_connection_each_request", 0):
                # People do not start in the same millisecond: spread the first requests.
                time.sleep(self.rng.uniform(0, self.args.think_ms / 1000))
            for _ in range(self.args.cycles):
                if time.monotonic() > self.deadline:
                    break
                status, payload, elapsed = self.request(
                    "GET", f"/api/v1/projects/{self.project_id}/next-item/"
                )
                self.latencies["next"].append(elapsed)
                self.timeline.append((time.monotonic() - elapsed, "next", elapsed))
                if status == 204:
                    break
                if status != 200:
                    self.errors.append(f"next-item {status}: {payload[:200]!r}")
                    continue
                body = json.loads(payload)
                item_id = body["item"]["id"]
                self.handed.append(item_id)
                if self.args.think_ms:
                    time.sleep(self.rng.uniform(0.5, 1.5) * self.args.think_ms / 1000)
                value = self.rng.choice([c["key"] for c in body["classes"]])
                status, payload, elapsed = self.request(
                    "POST",
                    f"/api/v1/items/{item_id}/annotations/",
                    {"value": value, "time_spent_ms": 1000, "assignment": body["assignment"]["id"]},
                )
                self.latencies["submit"].append(elapsed)
                self.timeline.append((time.monotonic() - elapsed, "submit", elapsed))
                if status != 201:
                    self.errors.append(f"submit {status}: {payload[:200]!r}")
        except Exception as exc:  # counted as an error, never hidden
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if self.conn is not None:
                self.conn.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def check_invariants(project_id: int, overlap: int) -> dict:
    from labeling.models import Annotation

    per_item = Counter(
        Annotation.objects.filter(project_id=project_id, is_current=True).values_list(
            "item_id", flat=True
        )
    )
    return {
        "labeled_items": len(per_item),
        "annotations": sum(per_item.values()),
        "max_labels_per_item": max(per_item.values(), default=0),
        "over_overlap": sum(1 for n in per_item.values() if n > overlap),
    }


# --- In-process: the services at growing project sizes (issue 14) ------------------------
def direct_setup(n_items: int, overlap: int, stamp: str):
    """A project of ``n_items`` text items, a third of them (every third) labeled once by
    an earlier labeler, written in bulk (COPY on PostgreSQL) with the hand-out state those
    labels give; returns (project, the measured labeler)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling import handout, services
    from labeling.models import Annotation, AnnotationSource, Item, LabelerState, Role
    from provenance import bulk

    user_model = get_user_model()
    project = services.create_project(
        name=f"direct {n_items} {stamp}",
        classes=[{"key": k} for k in ("no_defect", "scratch", "dent", "crack")],
        overlap=overlap,
        guideline_text="Label the most severe visible defect.",
    )
    early = user_model.objects.create_user(username=f"early-{n_items}-{stamp}")
    labeler = user_model.objects.create_user(username=f"direct-{n_items}-{stamp}")
    for user in (early, labeler):
        services.set_membership(project=project, user=user, role=Role.LABELER)
    dent = project.classes.get(key="dent")
    step = 100_000
    with transaction.atomic():
        for start in range(0, n_items, step):
            stop = min(n_items, start + step)
            bulk.insert_rows(
                Item,
                [
                    {
                        "project_id": project.pk,
                        "external_id": f"d{i:07d}",
                        "kind": "text",
                        "text": f"item {i}",
                        "metadata": {},
                        "handout_labels": int(i % 3 == 0),
                        "handout_top": int(i % 3 == 0),
                        "handout_load": int(i % 3 == 0),
                    }
                    for i in range(start, stop)
                ],
            )
        ids = list(
            Item.objects.filter(project=project).order_by("pk").values_list("pk", "external_id")
        )
        labeled = [pk for pk, ext in ids if int(ext[1:]) % 3 == 0]
        for start in range(0, len(labeled), step):
            bulk.insert_rows(
                Annotation,
                [
                    {
                        "project_id": project.pk,
                        "item_id": pk,
                        "labeler_id": early.pk,
                        "label_class_id": dent.pk,
                        "source": AnnotationSource.IMPORT,
                        "is_current": True,
                        "created_at": project.created_at,
                    }
                    for pk in labeled[start : start + step]
                ],
            )
        LabelerState.objects.create(project=project, labeler=early, n_done=len(labeled))
    if n_items <= 20_000:
        # The bulk-written state is what the services would keep: checked, not assumed.
        assert handout.verify_project(project).ok, "benchmark setup differs from a recount"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_item; ANALYZE labeling_annotation;")
    return project, labeler


def explain_handout(project, labeler) -> dict:
    """How the database runs the hand-out statement now: its plan (PostgreSQL: EXPLAIN
    ANALYZE, with the server's execution time; SQLite: EXPLAIN QUERY PLAN)."""
    from django.db import connection

    from labeling import assignment

    sql, params = assignment._queue_query(project, labeler.pk, lock=False)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0][0]
            nodes, node = [], plan["Plan"]
            while node:
                nodes.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
                node = (node.get("Plans") or [None])[0]
            return {"nodes": nodes, "execution_ms": plan["Execution Time"]}
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return {"nodes": [row[-1] for row in cursor.fetchall()]}


def direct_run(args) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from labeling import assignment

    call_command("migrate", verbosity=0)
    stamp = time.strftime("%Y%m%d%H%M%S")
    out = {"database": connection.vendor, "cycles": args.cycles, "sizes": {}}
    rng = random.Random(1)
    for n_items in args.sizes:
        t0 = time.perf_counter()
        project, labeler = direct_setup(n_items, args.overlap, stamp)
        setup_s = time.perf_counter() - t0
        times: dict[str, list[float]] = {
            "next_item": [],
            "progress": [],
            "submit": [],
            "handout_submit": [],
            "cycle": [],
            "cycle_cpu": [],
        }
        for _ in range(args.cycles):
            cpu = time.process_time()
            a = time.perf_counter()
            handed = assignment.next_item_for(project, labeler)
            b = time.perf_counter()
            assignment.labeler_progress(project, labeler)
            c = time.perf_counter()
            assignment.submit_label(
                item=handed.item,
                labeler=labeler,
                value=rng.choice(["no_defect", "scratch", "dent", "crack"]),
                assignment_id=handed.pk,
            )
            d = time.perf_counter()
            times["next_item"].append(b - a)
            times["progress"].append(c - b)
            times["submit"].append(d - c)
            # The goal is on hand-out + submit; the progress count is apart.
            times["handout_submit"].append((b - a) + (d - c))
            times["cycle"].append(d - a)
            # This process's CPU time for the cycle (the Python side, and SQLite's work,
            # which runs in-process): what the cycle costs without waiting for a core on
            # a shared machine.
            times["cycle_cpu"].append(time.process_time() - cpu)
        out["sizes"][n_items] = {
            "setup_s": round(setup_s, 1),
            "plan": explain_handout(project, labeler),
            **{
                name: {
                    "median": round(statistics.median(v) * 1000, 2),
                    "p95": round(pct(v, 0.95), 2),
                    "max": round(max(v) * 1000, 2),
                }
                for name, v in times.items()
            },
        }
        print(json.dumps({n_items: out["sizes"][n_items]}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelers", type=int, default=16)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=40, help="next-item/submit per labeler")
    parser.add_argument("--seconds", type=float, default=240, help="hard time bound")
    parser.add_argument("--think-ms", type=float, default=0, help="mean pause before submit")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--port", type=int, default=58123)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--direct", action="store_true", help="time the services in-process")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[2000, 20000, 200000], help="with --direct"
    )
    args = parser.parse_args()
    if args.direct:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        result = direct_run(args)
        text = json.dumps(result, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        return

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database (see the docstring)")
    os.environ.update({k: v for k, v in server_env(args.port).items() if k not in os.environ})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    n_warm = args.labelers  # extra labelers whose cycles warm every worker up, unmeasured
    project_id, tokens = setup_project(args.items, args.labelers + n_warm, args.overlap)
    tokens, warm_tokens = tokens[: args.labelers], tokens[args.labelers :]

    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(args.threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    log = open(ROOT / "var" / "bench-gunicorn.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(cmd, cwd=ROOT, env=server_env(args.port), stdout=log, stderr=log)
    try:
        wait_port(args.port, server)
        # Warm every worker and thread (imports, URL modules, first database connections)
        # with a few unmeasured cycles by extra labelers, all at once.
        # A new connection per warm-up request, so every worker process (not only those
        # that happen to accept a keep-alive connection) loads its URL modules first.
        warm_args = argparse.Namespace(
            **{**vars(args), "cycles": 3, "think_ms": 0, "new_connection_each_request": True}
        )
        warmers = [
            Labeler(args.port, project_id, t, warm_args, time.monotonic() + 60, seed=1000 + i)
            for i, t in enumerate(warm_tokens)
        ]
        for w in warmers:
            w.start()
        for w in warmers:
            w.join(90)
        if any(w.errors for w in warmers):
            raise SystemExit(f"warm-up failed: {[w.errors for w in warmers]}")
        deadline = time.monotonic() + args.seconds
        team = [
            Labeler(args.port, project_id, t, args, deadline, seed=i) for i, t in enumerate(tokens)
        ]
        started = time.perf_counter()
        t0 = time.monotonic()
        for labeler in team:
            labeler.start()
        for labeler in team:
            labeler.join(args.seconds + 60)
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    nexts = [x for t in team for x in t.latencies["next"]]
    submits = [x for t in team for x in t.latencies["submit"]]
    both = nexts + submits
    errors = [e for t in team for e in t.errors]
    handed = [(i, n) for n, t in enumerate(team) for i in t.handed]
    result = {
        "labelers": args.labelers,
        "items": args.items,
        "overlap": args.overlap,
        "think_ms": args.think_ms,
        "gunicorn": f"{args.workers} workers x {args.threads} threads (gthread)",
        "requests": len(both),
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(both) / wall, 1) if wall else None,
        "cycles_per_s": round(len(submits) / wall, 1) if wall else None,
        "ms": {
            name: {
                "p50": round(pct(v, 0.50), 1),
                "p95": round(pct(v, 0.95), 1),
                "p99": round(pct(v, 0.99), 1),
                "mean": round(statistics.fmean(v) * 1000, 1) if v else None,
            }
            for name, v in (("next_item", nexts), ("submit", submits), ("all", both))
        },
        "slowest": [
            {"at_s": round(at - t0, 2), "kind": kind, "ms": round(sec * 1000, 1)}
            for at, kind, sec in sorted((x for t in team for x in t.timeline), key=lambda x: -x[2])[
                :5
            ]
        ],
        "handed_twice_to_same_labeler": len(handed) - len(set(handed)),
        "db": check_invariants(project_id, args.overlap),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
