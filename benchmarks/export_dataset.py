"""Export a 1,000,000-row dataset version through a production-style server.

What it does:
1. a throwaway SQLite database under ``CONCORD_VAR_DIR`` (default ``/tmp/bench-export``):
   ``migrate``, one project, a published dataset version whose rows are inserted directly
   in bulk (canonical JSON lines, as the build writes them, with their content hash), and
   a read-only pipeline token;
2. ``gunicorn`` (DEBUG=0, SECRET_KEY set, ALLOWED_HOSTS=127.0.0.1, SECURE_SSL_REDIRECT=0)
   with one worker;
3. pulls ``/api/v1/datasets/{id}/export/`` as JSONL, CSV and Parquet with the token
   (``requests``, streamed, bytes discarded), and reads the worker's peak RSS
   (``VmHWM`` in ``/proc/<worker pid>/status``) after each format.

Usage::

    /tmp/venvprobe/bin/python benchmarks/export_dataset.py --rows 1000000

Goals: >= 200,000 rows/s for JSONL; the server's peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FACTORIES = ["A", "B", "C"]
PHONES = ["Pixel 8", "iPhone 15", "Galaxy S24", "Moto G"]
LABELS = ["no_defect", "scratch", "dent", "crack"]
SPLITS = [("train", 0.8), ("dev", 0.1), ("test", 0.1)]


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def setup(var_dir: pathlib.Path, n_rows: int) -> dict:
    """Create the database, the version and the token; returns ids and the secret."""
    os.environ["CONCORD_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    from datasets import services
    from datasets.models import DatasetStatus, DatasetVersion
    from labeling import services as labeling_services

    manager = labeling_services.create_user(username="bench-manager", password="bench-pw-123")
    project = labeling_services.create_project(
        name="Export bench",
        classes=[{"key": k} for k in LABELS],
        created_by=manager,
    )
    params = {
        "agreement_run": None,
        "benchmark": True,
        "splits": dict(SPLITS),
        "seed": 0,
    }
    columns = [{"name": n, "type": t} for n, t in services.BASE_COLUMNS] + [
        {"name": f"metadata.{k}", "type": t, "key": k}
        for k, t in [
            ("camera", "string"),
            ("captured_at", "string"),
            ("factory", "string"),
            ("line", "int"),
            ("phone_model", "string"),
        ]
    ]
    digest = hashlib.sha256(canonical(params).encode() + b"\n")
    split_counts = {name: 0 for name, _ in SPLITS}

    with transaction.atomic():
        version = DatasetVersion.objects.create(
            project=project, status=DatasetStatus.BUILDING, params=params, columns=columns
        )
    started = time.perf_counter()
    batch = []
    insert = (
        "INSERT INTO provenance_datasetrow "
        "(version_id, position, external_id, split, label, item_id_ref, image_name, line) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for i in range(n_rows):
            external_id = f"phone-{i:07d}"
            u = (i * 2654435761) % 1000
            split = "train" if u < 800 else ("dev" if u < 900 else "test")
            label = LABELS[(i * 7) % 4]
            record = {
                "external_id": external_id,
                "item_id": i + 1,
                "label": label,
                "split": split,
                "confidence": round(0.5 + (u % 500) / 1000, 6),
                "agreement": round(2 / 3 if i % 5 else 1.0, 6),
                "n_labels": 3,
                "labelers": ["alice", "bob", "carol"],
                "guideline_versions": [1 + i % 2],
                "status": "agreed",
                "resolution": None,
                "source_batch": 1 + i // 100_000,
                "image_file": None,
                "image_url": f"https://img.example.com/{external_id}.jpg",
                "text": None,
                "metadata": {
                    "camera": f"cam-{i % 12}",
                    "captured_at": f"2026-11-{1 + i % 28:02d}T08:00:00Z",
                    "factory": FACTORIES[i % 3],
                    "line": i % 8,
                    "phone_model": PHONES[i % 4],
                },
            }
            line = canonical(record)
            digest.update(line.encode() + b"\n")
            split_counts[split] += 1
            batch.append((version.pk, i, external_id, split, label, i + 1, "", line))
            if len(batch) == 20_000:
                cursor.executemany(insert, batch)
                batch = []
        if batch:
            cursor.executemany(insert, batch)
    insert_seconds = time.perf_counter() - started
    with transaction.atomic():
        version.status = DatasetStatus.SUCCEEDED
        version.row_count = n_rows
        version.split_counts = split_counts
        version.content_hash = digest.hexdigest()
        version.save()
    _, secret = services.create_pipeline_token(project=project, name="bench", created_by=manager)
    return {
        "version": version.pk,
        "secret": secret,
        "split_counts": split_counts,
        "insert_seconds": round(insert_seconds, 1),
        "db_bytes": pathlib.Path(connection.settings_dict["NAME"]).stat().st_size,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def status_kb(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("the server did not come up")


def pull(base: str, version: int, secret: str, fmt: str, split: str | None, sink: str) -> dict:
    """One export with curl (a C client, so the client takes little of the CPU the server
    needs on a small machine). ``sink``: ``null`` discards the bytes (throughput runs),
    ``sha256`` pipes them through ``sha256sum`` (byte-identity runs)."""
    url = f"{base}/api/v1/datasets/{version}/export/?format={fmt}" + (
        f"&split={split}" if split else ""
    )
    curl = [
        "curl",
        "-sS",
        "--fail",
        "-H",
        f"Authorization: Bearer {secret}",
        "-D",
        "/dev/stderr",
        "-o",
        "/dev/null" if sink == "null" else "-",
        "-w",
        "%{size_download} %{time_total}",
        url,
    ]
    started = time.perf_counter()
    if sink == "null":
        out = subprocess.run(curl, capture_output=True, text=True, check=True)
        size, _ = out.stdout.split()
        digest = None
    else:
        curl[curl.index("-w") : curl.index("-w") + 2] = []
        proc = subprocess.Popen(curl, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        hashed = subprocess.run(
            ["sha256sum"], stdin=proc.stdout, capture_output=True, text=True, check=True
        )
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        proc.wait()
        digest = hashed.stdout.split()[0]
        out = subprocess.CompletedProcess(curl, 0, "", stderr)
        size = None
    seconds = time.perf_counter() - started
    etag = next(
        (
            line.split(":", 1)[1].strip()
            for line in out.stderr.splitlines()
            if line.lower().startswith("etag:")
        ),
        None,
    )
    return {
        "format": fmt,
        "split": split or "all",
        "sink": sink,
        "seconds": round(seconds, 2),
        "bytes": int(size) if size else None,
        "sha256": digest,
        "etag": etag,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--var-dir", default=os.environ.get("CONCORD_VAR_DIR", "/tmp/bench-export"))
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing bench database")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    args = parser.parse_args()
    var_dir = pathlib.Path(args.var_dir)
    info_path = var_dir / "bench-info.json"

    if not args.reuse:
        shutil.rmtree(var_dir, ignore_errors=True)
        var_dir.mkdir(parents=True)
        env = dict(os.environ, CONCORD_VAR_DIR=str(var_dir), DEBUG="0", SECRET_KEY="bench")
        out = subprocess.run(
            [sys.executable, __file__, "--setup-worker", str(args.rows), str(var_dir)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        info_path.write_text(out.stdout.strip().splitlines()[-1])
    info = json.loads(info_path.read_text())
    print(json.dumps({"setup": {k: v for k, v in info.items() if k != "secret"}}), flush=True)
    if args.setup_only:
        return

    port = free_port()
    env = dict(
        os.environ,
        CONCORD_VAR_DIR=str(var_dir),
        DEBUG="0",
        SECRET_KEY="benchmark-secret-key-not-for-production",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
    )
    server_cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        args.worker_class,
        "--threads",
        "2",
        "--timeout",
        "120",
    ]
    server = subprocess.Popen(server_cmd, env=env, cwd=ROOT, start_new_session=False)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        wait_until_up(f"{base}/api/v1/datasets/0/")
        workers = children(server.pid)
        worker = workers[0]
        baseline_kb = status_kb(worker, "VmHWM")
        plan = [
            ("jsonl", None, "null"),
            ("jsonl", None, "null"),
            ("jsonl", "train", "null"),
            ("csv", None, "null"),
            ("parquet", None, "null"),
            ("jsonl", None, "sha256"),
            ("jsonl", None, "sha256"),
            ("parquet", "test", "sha256"),
            ("parquet", "test", "sha256"),
        ]
        for fmt, split, sink in plan:
            record = pull(base, info["version"], info["secret"], fmt, split, sink)
            rows = info["split_counts"][split] if split else sum(info["split_counts"].values())
            record["rows"] = rows
            record["rows_per_s"] = round(rows / record["seconds"])
            record["worker_peak_rss_mb"] = round(status_kb(worker, "VmHWM") / 1024, 1)
            record["worker_rss_after_mb"] = round(status_kb(worker, "VmRSS") / 1024, 1)
            results.append(record)
            print(json.dumps(record), flush=True)
        hashes = [r["sha256"] for r in results if r["sha256"]]
        print(
            json.dumps(
                {
                    "worker_rss_before_mb": round(baseline_kb / 1024, 1),
                    "jsonl_reexport_byte_identical": hashes[0] == hashes[1],
                    "parquet_reexport_byte_identical": hashes[2] == hashes[3],
                    "worker_class": args.worker_class,
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            ),
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--setup-worker":
        print(json.dumps(setup(pathlib.Path(sys.argv[3]), int(sys.argv[2]))))
    else:
        main()
