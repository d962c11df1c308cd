"""Soak (issue 13, item 7): many labelers for a long time against the production stack.

Starts, all on loopback and all thrown away at the end:

* a PostgreSQL 15 cluster (``initdb`` as the unprivileged user ``--pg-user``, created
  with ``useradd`` when missing, because PostgreSQL refuses to run as root),
* a ``redis-server`` (Celery broker, result store is the database, shared cache),
* gunicorn (``gthread``) serving ``config.wsgi``,
* one Celery worker (prefork),

then runs, for ``--duration`` seconds:

* ``--labelers`` simulated labelers (threads, token auth, one keep-alive connection
  each): ``GET /projects/{id}/next-item/``, a think time, ``POST /items/{id}/annotations/``;
* a manager who, over and over, starts an agreement run and polls it to the end, then
  requests a dataset version of that run, polls it, and exports it (JSONL, streamed),
  checking that the export has the row count the version claims.

Pass/fail: zero errors (any non-2xx answer where a 2xx is due, any exception, any run or
build that does not succeed), and the count check at the end: every annotation a
labeler was told was created (201 with its id) is in the database, exactly once, and the
database holds no annotation of these labelers that nobody was told about; no labeler
has two current labels on one item; no item has more current labels than its overlap.

Usage (as root or as a user who may run PostgreSQL; everything lives under ``--work``)::

    python benchmarks/soak.py --duration 600 --labelers 32 --json benchmarks/soak.json

Exit status 0 when the soak passed, 1 otherwise. Results: ``benchmarks/RESULTS-soak.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
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
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


# --- Services ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on {port} in time")


def as_pg_user(user: str, cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["su", user, "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]


def start_postgres(work: Path, user: str, port: int) -> Path:
    """A fresh cluster in ``work/pgdata`` listening on 127.0.0.1:``port``; returns its
    data directory. fsync stays on: the soak measures a durable database."""
    if os.geteuid() == 0:
        exists = subprocess.run(["id", user], check=False, capture_output=True).returncode == 0
        if not exists:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user],
                check=False,  # a concurrent creator is fine; `id` below is the check
            )
        subprocess.run(["id", user], check=True, capture_output=True)
        shutil.chown(work, user)
    data = work / "pgdata"
    subprocess.run(
        as_pg_user(
            user,
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        as_pg_user(
            user,
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(work / "pg.log"),
                "-w",
                "-o",
                options,
                "start",
            ],
        ),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "concord_soak",
        ],
        check=True,
    )
    return data


def stop_postgres(data: Path, user: str) -> None:
    subprocess.run(
        as_pg_user(user, [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
        check=False,
        capture_output=True,
    )


def service_env(args, port: int, database_url: str, redis_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        CONCORD_STATIC_MANIFEST="0",
        CONCORD_VAR_DIR=str(args.work / "var"),
        CONCORD_QUEUE="soak",
        CELERY_TASK_ALWAYS_EAGER="0",
        SECRET_KEY="soak-benchmark-only-secret-key-not-for-production",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


# --- Data --------------------------------------------------------------------------------
def setup_project(args) -> dict:
    """Migrate, then a project of ``--items`` text items, the labelers and a manager, each
    with an API token."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from labeling import services
    from labeling.models import Item, PayloadKind, Role

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    users = get_user_model()
    manager = users.objects.create_user(username="soak-manager", password=None, is_staff=True)
    project = services.create_project(
        name="soak",
        classes=[{"key": k} for k in ("no_defect", "scratch", "dent", "crack")],
        overlap=args.overlap,
        created_by=manager,
        guideline_text="Label the most severe visible defect.",
    )
    Item.objects.bulk_create(
        Item(
            project=project,
            external_id=f"s{i:06d}",
            kind=PayloadKind.TEXT,
            text=f"item {i}",
            metadata={"factory": "ABC"[i % 3], "line": i % 4},
        )
        for i in range(args.items)
    )
    labelers = []
    for i in range(args.labelers):
        user = users.objects.create_user(username=f"soak-labeler-{i:02d}", password=None)
        services.set_membership(project=project, user=user, role=Role.LABELER)
        labelers.append((user.pk, Token.objects.create(user=user).key))
    return {
        "project": project.pk,
        "labelers": labelers,
        "manager": Token.objects.create(user=manager).key,
    }


# --- Clients -----------------------------------------------------------------------------
class Client:
    """One keep-alive connection with a token; ``request`` returns (status, body, seconds)."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None, *, raw: bool = False):
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - started
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                if raw:
                    return response.status, payload, elapsed, response
                return response.status, payload, elapsed
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before this request was
                # read: reconnect once. A second failure is an error.
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Labeler(threading.Thread):
    def __init__(self, port, project_id, labeler_id, token, args, deadline, seed):
        super().__init__(daemon=True)
        self.client = Client(port, token)
        self.project_id, self.labeler_id, self.args, self.deadline = (
            project_id,
            labeler_id,
            args,
            deadline,
        )
        self.rng = random.Random(seed)
        self.latencies: dict[str, list[float]] = {"next": [], "submit": []}
        self.errors: list[str] = []
        self.created: list[tuple[int, int]] = []  # (annotation id, item id) answered 201

    def run(self):
        try:
            # People do not start in the same millisecond.
            time.sleep(self.rng.uniform(0, self.args.think_ms / 1000))
            while time.monotonic() < self.deadline:
                status, payload, elapsed = self.client.request(
                    "GET", f"/api/v1/projects/{self.project_id}/next-item/"
                )
                self.latencies["next"].append(elapsed)
                if status == 204:
                    self.errors.append("next-item 204: the project ran out of items")
                    break
                if status != 200:
                    self.errors.append(f"next-item {status}: {payload[:200]!r}")
                    time.sleep(1)
                    continue
                body = json.loads(payload)
                time.sleep(self.rng.uniform(0.5, 1.5) * self.args.think_ms / 1000)
                value = self.rng.choice([c["key"] for c in body["classes"]])
                item_id = body["item"]["id"]
                status, payload, elapsed = self.client.request(
                    "POST",
                    f"/api/v1/items/{item_id}/annotations/",
                    {
                        "value": value,
                        "time_spent_ms": self.rng.randint(500, 5000),
                        "assignment": body["assignment"]["id"],
                    },
                )
                self.latencies["submit"].append(elapsed)
                if status != 201:
                    self.errors.append(f"submit {status}: {payload[:200]!r}")
                    continue
                created = json.loads(payload)
                self.created.append((created["id"], created["item"]))
        except Exception as exc:  # counted as an error, never hidden
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.client.close()


class Manager(threading.Thread):
    """Agreement run → dataset version of that run → JSONL export, again and again."""

    def __init__(self, port, project_id, token, deadline, poll_s=1.0):
        super().__init__(daemon=True)
        self.client = Client(port, token)
        self.project_id, self.deadline, self.poll_s = project_id, deadline, poll_s
        self.errors: list[str] = []
        self.latencies: dict[str, list[float]] = {"poll": [], "start": []}
        self.runs: list[dict] = []
        self.datasets: list[dict] = []
        self.exports: list[dict] = []

    def _poll(self, path: str, done: set[str], timeout: float) -> tuple[dict, float]:
        started = time.monotonic()
        while True:
            status, payload, elapsed = self.client.request("GET", path)
            self.latencies["poll"].append(elapsed)
            if status != 200:
                raise RuntimeError(f"GET {path} {status}: {payload[:200]!r}")
            body = json.loads(payload)
            if body["status"] in done:
                return body, time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{path} still {body['status']} after {timeout:.0f} s")
            time.sleep(self.poll_s)

    def run(self):
        try:
            while time.monotonic() < self.deadline:
                status, payload, elapsed = self.client.request(
                    "POST", f"/api/v1/projects/{self.project_id}/agreement-runs/", {}
                )
                self.latencies["start"].append(elapsed)
                if status != 202:
                    self.errors.append(f"start run {status}: {payload[:200]!r}")
                    time.sleep(5)
                    continue
                run_id = json.loads(payload)["id"]
                run, seconds = self._poll(
                    f"/api/v1/agreement-runs/{run_id}/", {"succeeded", "failed"}, 600
                )
                n = (run.get("results") or {}).get("overall", {}).get("n_annotations")
                self.runs.append(
                    {
                        "id": run_id,
                        "status": run["status"],
                        "s": round(seconds, 1),
                        "n_annotations": n,
                    }
                )
                if run["status"] != "succeeded":
                    self.errors.append(f"agreement run {run_id} {run['status']}: {run['error']}")
                    continue
                status, payload, elapsed = self.client.request(
                    "POST",
                    f"/api/v1/projects/{self.project_id}/datasets/",
                    {
                        "agreement_run": run_id,
                        "include_unresolved": True,
                        "splits": {"train": 0.8, "test": 0.2},
                        "seed": len(self.datasets),
                    },
                )
                self.latencies["start"].append(elapsed)
                if status != 202:
                    self.errors.append(f"request dataset {status}: {payload[:200]!r}")
                    continue
                dataset_id = json.loads(payload)["id"]
                version, seconds = self._poll(
                    f"/api/v1/datasets/{dataset_id}/", {"succeeded", "failed"}, 600
                )
                self.datasets.append(
                    {
                        "id": dataset_id,
                        "status": version["status"],
                        "s": round(seconds, 1),
                        "rows": version["row_count"],
                    }
                )
                if version["status"] != "succeeded":
                    self.errors.append(f"dataset {dataset_id} failed: {version['error']}")
                    continue
                started = time.perf_counter()
                status, payload, _, response = self.client.request(
                    "GET", f"/api/v1/datasets/{dataset_id}/export/?format=jsonl", raw=True
                )
                seconds = time.perf_counter() - started
                lines = payload.count(b"\n")
                self.exports.append(
                    {
                        "dataset": dataset_id,
                        "status": status,
                        "lines": lines,
                        "bytes": len(payload),
                        "s": round(seconds, 2),
                    }
                )
                if status != 200:
                    self.errors.append(f"export {dataset_id} {status}: {payload[:200]!r}")
                elif lines != version["row_count"] or response.getheader("X-Row-Count") != str(
                    version["row_count"]
                ):
                    self.errors.append(
                        f"export {dataset_id}: {lines} lines, version says {version['row_count']}"
                    )
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.client.close()


def warm_up(port: int, world: dict, n: int) -> None:
    """Unmeasured: ``n`` concurrent reads on fresh connections, so every gunicorn worker
    has loaded its URL modules and opened its database connection before the clock runs
    (the first request of a worker takes seconds on a loaded machine)."""
    path = f"/api/v1/projects/{world['project']}/"
    failures = []

    def one():
        client = Client(port, world["manager"])
        try:
            status, payload, _ = client.request("GET", path)
            if status != 200:
                failures.append(f"{status}: {payload[:200]!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if failures:
        raise SystemExit(f"warm-up failed: {failures[:3]}")


# --- Checks and report ---------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) in milliseconds; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 1)


def count_check(
    project_id: int, labeler_ids: list[int], created: list[tuple[int, int, int]], overlap: int
) -> dict:
    """Labels lost, duplicated or unexplained: what the labelers were told (201 with an
    id) against what the database holds. ``created`` is (annotation id, item id, labeler
    id) per 201."""
    from django.db import connection

    from labeling.models import Annotation

    connection.close()  # a fresh connection: the rows as committed, not a cached view
    stored = {
        pk: (item, labeler, current)
        for pk, item, labeler, current in Annotation.objects.filter(
            project_id=project_id, labeler_id__in=labeler_ids
        ).values_list("pk", "item_id", "labeler_id", "is_current")
    }
    told = Counter(pk for pk, _, _ in created)
    current_pairs = Counter((item, labeler) for item, labeler, cur in stored.values() if cur)
    per_item = Counter(item for item, _, cur in stored.values() if cur)
    return {
        "annotations_acknowledged": len(created),
        "annotations_in_database": len(stored),
        "acknowledged_twice": sum(1 for n in told.values() if n > 1),
        "lost": sum(1 for pk in told if pk not in stored),
        "wrong_item_or_labeler": sum(
            1 for pk, item, labeler in created if pk in stored and stored[pk][:2] != (item, labeler)
        ),
        "unacknowledged_in_database": sum(1 for pk in stored if pk not in told),
        "labeler_with_two_current_labels_on_an_item": sum(
            1 for n in current_pairs.values() if n > 1
        ),
        "items_over_overlap": sum(1 for n in per_item.values() if n > overlap),
        "labeled_items": len(per_item),
    }


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of soak")
    parser.add_argument("--labelers", type=int, default=32)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--think-ms", type=float, default=1000, help="mean pause before submit")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--pg-user", default="concordci")
    parser.add_argument("--work", type=Path, default=Path("/tmp/apitruth/soak"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    (args.work / "var").mkdir()
    pg_port, redis_port, web_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    logs = []
    pgdata = None
    try:
        pgdata = start_postgres(args.work, args.pg_user, pg_port)
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        procs.append(redis)
        wait_port(redis_port, redis, "redis-server")
        database_url = f"postgres://postgres@127.0.0.1:{pg_port}/concord_soak"
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = service_env(args, web_port, database_url, redis_url)
        os.environ.update(env)
        world = setup_project(args)

        def start(name, cmd):
            log = open(args.work / f"{name}.log", "wb")  # noqa: SIM115 - closed at the end
            logs.append(log)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
            procs.append(proc)
            return proc

        web = start(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(args.threads),
                "--keep-alive",
                "30",
                "--timeout",
                "120",
                "--log-level",
                "warning",
            ],
        )
        worker = start(
            "celery",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(args.celery_concurrency),
                "--loglevel",
                "WARNING",
                "--hostname",
                f"soak-{os.getpid()}@localhost",
            ],
        )
        wait_port(web_port, web, "gunicorn")
        warm_up(web_port, world, args.workers * args.threads * 3)
        load_before = os.getloadavg()
        deadline = time.monotonic() + args.duration
        team = [
            Labeler(web_port, world["project"], uid, token, args, deadline, seed=i)
            for i, (uid, token) in enumerate(world["labelers"])
        ]
        manager = Manager(web_port, world["project"], world["manager"], deadline)
        started = time.perf_counter()
        for thread in [*team, manager]:
            thread.start()
        load_samples = []
        while any(t.is_alive() for t in team) and time.monotonic() < deadline + 5:
            time.sleep(10)
            load_samples.append(os.getloadavg()[0])
        for labeler in team:
            labeler.join(180)
        # The manager finishes the cycle it is in (a run, a build, an export).
        manager.join(900)
        wall = time.perf_counter() - started
        if worker.poll() is not None or web.poll() is not None:
            raise SystemExit(
                f"gunicorn or the worker died during the soak: see the logs in {args.work}"
            )
        created = [(pk, item, t.labeler_id) for t in team for pk, item in t.created]
        counts = count_check(
            world["project"], [uid for uid, _ in world["labelers"]], created, args.overlap
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        if pgdata is not None:
            stop_postgres(pgdata, args.pg_user)

    nexts = [x for t in team for x in t.latencies["next"]]
    submits = [x for t in team for x in t.latencies["submit"]]
    labeler_requests = nexts + submits
    errors = [e for t in team for e in t.errors] + manager.errors
    integrity_failures = {
        k: v
        for k, v in counts.items()
        if k
        in (
            "acknowledged_twice",
            "lost",
            "wrong_item_or_labeler",
            "unacknowledged_in_database",
            "labeler_with_two_current_labels_on_an_item",
            "items_over_overlap",
        )
        and v
    }
    if counts["annotations_acknowledged"] != counts["annotations_in_database"]:
        integrity_failures["acknowledged_vs_stored"] = [
            counts["annotations_acknowledged"],
            counts["annotations_in_database"],
        ]
    result = {
        "passed": not errors and not integrity_failures and bool(manager.runs),
        "command": "python benchmarks/soak.py " + " ".join(sys.argv[1:]),
        "duration_s": args.duration,
        "wall_s": round(wall, 1),
        "labelers": args.labelers,
        "think_ms": args.think_ms,
        "items": args.items,
        "overlap": args.overlap,
        "stack": f"gunicorn {args.workers} workers x {args.threads} threads (gthread), "
        f"PostgreSQL 15, Redis, 1 Celery worker (prefork x {args.celery_concurrency})",
        "cpus": os.cpu_count(),
        "load_average_1min": {
            "before": round(load_before[0], 2),
            "during_mean": round(statistics.fmean(load_samples), 2) if load_samples else None,
            "during_max": round(max(load_samples), 2) if load_samples else None,
        },
        "labeler_requests": len(labeler_requests),
        "labeler_rps": round(len(labeler_requests) / wall, 1) if wall else None,
        "labels_per_s": round(len(submits) / wall, 2) if wall else None,
        "errors": len(errors),
        "error_samples": errors[:10],
        "ms": {
            name: {
                "p50": pct(v, 0.50),
                "p95": pct(v, 0.95),
                "p99": pct(v, 0.99),
                "max": pct(v, 1.0),
                "n": len(v),
            }
            for name, v in (
                ("next_item", nexts),
                ("submit", submits),
                ("labeler_all", labeler_requests),
                ("manager_poll", manager.latencies["poll"]),
            )
        },
        "agreement_runs": manager.runs,
        "dataset_versions": manager.datasets,
        "exports": manager.exports,
        "count_check": counts,
        "integrity_failures": integrity_failures,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
