"""Agreement run end to end through a real Celery worker, against just reading the rows.

Synthetic data (deterministic, seed 0): ``--items`` items (default 200,000) x 5 labelers
drawn from a pool of 50, 6 classes of which classes 1 and 2 are confusable, 3 metadata
keys (factory, camera, phone_model). Stored in a throwaway SQLite database under
``$CONCORD_VAR_DIR`` (default /tmp/bench-agree), or with ``DATABASE_URL`` in PostgreSQL
(flushed, then loaded by ``COPY``: :func:`build_pg_copy`), then:

(a) ``read``: the time to read those rows with the run's own scan query
    (:func:`consistency.scan.scan_annotations`), best of 3, warm cache;
(b) ``run``: from ``start_agreement_run`` (commit → enqueue) to ``succeeded``, executed
    by ``--workers`` separate ``celery worker`` processes (prefork, ``--concurrency``
    each): every metric, HLP, consensus by majority and Dawid-Skene (both stored), 3
    slice keys, 1000 bootstrap samples. Each worker's memory (its process tree) is
    sampled from /proc every 0.2 s and reported per phase (:class:`RssSampler`).

Usage::

    CONCORD_VAR_DIR=/tmp/bench-agree /tmp/venvprobe/bin/python benchmarks/agreement_run.py
    ... --items 20000            # a quick look
    ... --reuse                  # keep the database of an earlier call
    ... --parallel-workers 2     # let the run split into chunks for 2 worker processes
    DATABASE_URL=postgres://... SECRET_KEY=... ... # the same on PostgreSQL (flushed first)
    # 10M labels on PostgreSQL + Redis, two worker processes (RESULTS-agreement.md)
    DATABASE_URL=... REDIS_URL=... ... --items 2000000 --workers 2 --concurrency 1 \
        --parallel-workers 2 --flags-wait 0 --profile-chunks 2,8,32
"""

from __future__ import annotations

import argparse
import contextlib
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
FACTORIES = ("north", "south", "east")
CAMERAS = tuple(f"cam-{i}" for i in range(1, 9))
MODELS = ("Alpha", "Beta", "Gamma", "Delta", "Epsilon")


def synthetic(n_items: int) -> dict:
    """The benchmark's labels and item metadata as numpy arrays (seed 0; the same draws
    in the same order whichever database they go to)."""
    import numpy as np

    rng = np.random.default_rng(0)
    f_idx = rng.integers(0, len(FACTORIES), n_items)
    c_idx = rng.integers(0, len(CAMERAS), n_items)
    m_idx = rng.integers(0, len(MODELS), n_items)
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
    return {
        "factory": f_idx,
        "camera": c_idx,
        "phone_model": m_idx,
        "items": items,
        "labelers": labelers,
        "value": value,
    }


def _project(n_items: int):
    """Migrate, then the project, its 6 classes, its guideline and the 50 labelers."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeling import services
    from labeling.models import LabelClass

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
    return project, guideline_id, [u.pk for u in users], class_ids


def build(n_items: int) -> int:
    """Create the database and the synthetic project; return the project id."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return build_pg_copy(n_items)
    import numpy as np
    from django.db import transaction

    from labeling.models import Annotation, Item, PayloadKind

    project, guideline_id, user_pks, class_ids = _project(n_items)
    data = synthetic(n_items)
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
                        "factory": FACTORIES[data["factory"][i]],
                        "camera": CAMERAS[data["camera"][i]],
                        "phone_model": MODELS[data["phone_model"][i]],
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
    items, labelers, value = data["items"], data["labelers"], data["value"]
    user_ids = np.asarray(user_pks)
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
    print(
        f"built {n_items} items, {items.size} annotations in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return project.pk


def _pg_columns(table: str) -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            [table],
        )
        return dict(cursor.fetchall())


def _pg_drop_secondary(table: str) -> list[str]:
    """Drop the table's foreign-key and unique constraints and every index but the primary
    key; return the statements that recreate them exactly (indexes first)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
            "AND NOT i.indisprimary AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    return [d for _, d in indexes] + [
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{n}" {d}' for n, d in constraints
    ]


def build_pg_copy(n_items: int) -> int:
    """PostgreSQL: the same project and labels as :func:`build`, loaded with ``COPY FROM
    STDIN`` (items as text, annotations as binary built by numpy) into the tables with
    their secondary indexes and foreign keys dropped, which are then recreated from their
    own definitions (``pg_get_indexdef`` / ``pg_get_constraintdef``: the schema ends
    exactly as migrated). Each item carries its hand-out state as the app keeps it (5
    current labels, the largest group of equal labels, no holds, closed:
    ``labeling.handout.item_state`` of such an item) and each labeler's ``n_done`` is
    recounted (``handout.rebuild_labeler_counts``), so ``verify_handout_state`` finds
    nothing to repair."""
    import struct

    import numpy as np
    from django.db import connection

    from labeling import handout
    from labeling.models import Annotation, Item

    project, guideline_id, user_pks, class_ids = _project(n_items)
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    data = synthetic(n_items)
    items, labelers, value = data["items"], data["labelers"], data["value"]
    print(f"  generated {items.size} labels in {time.perf_counter() - t0:.1f}s", flush=True)

    # Hand-out state: every item has PER_ITEM current labels (distinct labelers, no
    # checks, no holds); top = the largest group of equal classes. Openness from the
    # app's own rule for each possible top.
    per_item = value.reshape(n_items, PER_ITEM)
    top = np.zeros(n_items, dtype=np.int64)
    for c in range(N_CLASSES):
        top = np.maximum(top, (per_item == c).sum(axis=1))
    is_open = {}
    for t in range(1, PER_ITEM + 1):
        labels = [(k, ("c", 0 if k < t else k)) for k in range(PER_ITEM)]
        state = handout.item_state(
            project, is_check=False, labels=labels, holds=[], check_labelers=set()
        )
        assert state.labels == PER_ITEM and state.top == t and state.load == PER_ITEM
        is_open[t] = "t" if state.open else "f"

    item_table = Item._meta.db_table
    ann_table = Annotation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    t0 = time.perf_counter()
    recreate = _pg_drop_secondary(item_table) + _pg_drop_secondary(ann_table)
    print(f"  dropped {len(recreate)} indexes/constraints", flush=True)

    # Items: text COPY. Every NOT NULL column the ORM would fill (Django sets no
    # database defaults), with the model's defaults.
    meta = {
        (f, c, m): json.dumps(
            {"factory": FACTORIES[f], "camera": CAMERAS[c], "phone_model": MODELS[m]}
        )
        for f in range(len(FACTORIES))
        for c in range(len(CAMERAS))
        for m in range(len(MODELS))
    }
    now = "2024-03-04 10:00:00+00"
    cols = (
        "project_id, external_id, kind, image, image_url, text, audio_url, metadata, "
        "stats_status, stats_error, perceptual_hash, thumbnail, content_hash, created_at, "
        "updated_at, handout_labels, handout_top, handout_holds, handout_load, handout_open, "
        "is_check"
    )
    head = f"{project.pk}\t"
    mid = "\ttext\t\t\t\t\t"
    tail_a = f"\tn/a\t\t\t\t\t{now}\t{now}\t{PER_ITEM}\t"
    f_idx, c_idx, m_idx = (
        data["factory"].tolist(),
        data["camera"].tolist(),
        data["phone_model"].tolist(),
    )
    tops = top.tolist()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {item_table} ({cols}) FROM STDIN") as copy:
            step = 200_000
            for lo in range(0, n_items, step):
                lines = [
                    f"{head}item-{i:07d}{mid}{meta[(f_idx[i], c_idx[i], m_idx[i])]}{tail_a}"
                    f"{tops[i]}\t0\t{PER_ITEM}\t{is_open[tops[i]]}\tf\n"
                    for i in range(lo, min(lo + step, n_items))
                ]
                copy.write("".join(lines).encode())
        cursor.execute(
            f"SELECT id FROM {item_table} WHERE project_id = %s ORDER BY id", [project.pk]
        )
        item_ids = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1)
    print(f"  copied {n_items} items in {time.perf_counter() - t0:.1f}s", flush=True)

    # Annotations: binary COPY, one numpy record per row (fixed layout: every row has
    # the same column widths), written in blocks.
    t0 = time.perf_counter()
    types = _pg_columns(ann_table)
    width = {"bigint": ">i8", "integer": ">i4"}
    layout = [("n_fields", ">i2")]
    fixed: dict[str, object] = {}
    spec = [
        ("project_id", types["project_id"], project.pk),
        ("item_id", types["item_id"], None),
        ("labeler_id", types["labeler_id"], None),
        ("label_class_id", types["label_class_id"], None),
        ("guideline_id", types["guideline_id"], guideline_id),
        ("value_text", "text", b""),
        ("comment", "text", b""),
        ("source", "text", b"import"),
        ("is_current", "boolean", True),
        # timestamptz: microseconds since 2000-01-01 00:00 UTC
        ("created_at", "timestamptz", (1709546400 - 946684800) * 1_000_000),
    ]
    for name, kind, const in spec:
        layout.append((f"{name}_len", ">i4"))
        if kind in width:
            layout.append((name, width[kind]))
        elif kind == "boolean":
            layout.append((name, "u1"))
        elif kind == "timestamptz":
            layout.append((name, ">i8"))
        elif const:
            layout.append((name, f"S{len(const)}"))
        fixed[name] = const
    dtype = np.dtype(layout)
    lens = {"bigint": 8, "integer": 4, "boolean": 1, "timestamptz": 8}
    user_ids = np.asarray(user_pks, dtype=np.int64)
    class_arr = np.asarray(class_ids, dtype=np.int64)
    names = ", ".join(name for name, _, _ in spec)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {ann_table} ({names}) FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            step = 1_000_000
            for lo in range(0, items.size, step):
                hi = min(lo + step, items.size)
                rec = np.zeros(hi - lo, dtype=dtype)
                rec["n_fields"] = len(spec)
                for name, kind, const in spec:
                    rec[f"{name}_len"] = lens[kind] if kind in lens else len(const)
                    if kind == "text" and not const:
                        continue
                    if const is not None:
                        rec[name] = const
                rec["item_id"] = item_ids[items[lo:hi]]
                rec["labeler_id"] = user_ids[labelers[lo:hi]]
                rec["label_class_id"] = class_arr[value[lo:hi]]
                copy.write(rec.tobytes())
            copy.write(struct.pack(">h", -1))
    print(f"  copied {items.size} annotations in {time.perf_counter() - t0:.1f}s", flush=True)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in recreate:
            cursor.execute(statement)
    print(f"  recreated indexes and constraints in {time.perf_counter() - t0:.1f}s", flush=True)
    t0 = time.perf_counter()
    handout.rebuild_labeler_counts(project)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # the visibility map: index-only scans
    print(f"  labeler counts, VACUUM ANALYZE in {time.perf_counter() - t0:.1f}s", flush=True)
    print(
        f"built {n_items} items, {items.size} annotations in {time.perf_counter() - t_all:.1f}s"
        " (COPY)",
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


def start_worker(concurrency: int, log_path: Path, name: str = "bench") -> subprocess.Popen:
    """A ``celery worker`` process (prefork) in a session of its own, so that it and its
    pool children can be stopped together."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        *(() if os.environ.get("REDIS_URL") else ("--without-gossip", "--without-mingle")),
        "--without-heartbeat",
        "--hostname",
        f"{name}-{os.getpid()}@localhost",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b" ready." in log_path.read_bytes():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"worker exited: see {log_path}")
        time.sleep(0.1)
    raise SystemExit(f"worker not ready after 60s: see {log_path}")


def stop_worker(proc: subprocess.Popen, wait: float) -> None:
    """Warm shutdown (SIGTERM: the worker finishes its current task) for up to ``wait``
    seconds, then SIGKILL to the worker's whole process group (pool children too)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(wait, 0.01))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _status_kb(pid: int, field: str, name: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Every ``interval`` seconds, VmRSS of each worker's process tree (main process and
    pool children) from /proc: the sum over the tree and the largest single process, and
    the tree's PSS (``smaps_rollup``: pages shared by the forked pool child and its parent
    counted once, so the sum is not inflated by the copy-on-write imports).
    ``samples``: (seconds since start, worker index, RSS sum kB, RSS max kB, PSS sum kB)."""

    def __init__(self, pids: list[int], interval: float = 0.2):
        import threading

        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, int, int, int, int]] = []
        self.hwm: dict[int, dict[int, int]] = {i: {} for i in range(len(pids))}
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter() - self.t0
            for index, pid in enumerate(self.pids):
                rss, pss = [], []
                for p in _proc_tree(pid):
                    rss.append(_status_kb(p, "VmRSS:"))
                    pss.append(_status_kb(p, "Pss:", "smaps_rollup"))
                    hwm = _status_kb(p, "VmHWM:")
                    if hwm:
                        self.hwm[index][p] = hwm  # the kernel's own peak, per process
                if rss:
                    self.samples.append((t, index, sum(rss), max(rss), sum(pss)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peaks(self, t_from: float = 0.0, t_to: float = float("inf")) -> dict:
        """Per worker: the peak sum and the peak single process (MB) within a window."""
        out = {}
        for index in range(len(self.pids)):
            sel = [s for s in self.samples if s[1] == index and t_from <= s[0] <= t_to]
            out[index] = {
                "sum_mb": round(max((s[2] for s in sel), default=0) / 1024, 1),
                "max_process_mb": round(max((s[3] for s in sel), default=0) / 1024, 1),
                "pss_sum_mb": round(max((s[4] for s in sel), default=0) / 1024, 1),
            }
        return out


def measure_run(
    project_id: int, params: dict, timeout: float = 3600, sampler: RssSampler | None = None
) -> dict:
    from django.db import transaction

    from consistency import runs
    from consistency.models import AgreementRun, AgreementRunChunk
    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    clock = sampler.t0 if sampler else time.perf_counter()
    t0 = time.perf_counter()
    with transaction.atomic():
        run = runs.start_agreement_run(project=project, params=params)
    # Phase changes of the run and state changes of its chunks, as this loop saw them
    # (seconds on the sampler's clock).
    events: list[tuple[float, str]] = []
    phase = None
    chunk_state: dict[int, str] = {}
    chunk_times: dict[int, dict] = {}
    while time.perf_counter() - t0 < timeout:
        now = time.perf_counter() - clock
        status, new_phase = (
            AgreementRun.objects.filter(pk=run.pk).values_list("status", "phase").get()
        )
        if new_phase != phase:
            events.append((round(now, 2), f"phase={new_phase or status}"))
            phase = new_phase
        if new_phase in ("chunks", "final"):
            for index, state, n in AgreementRunChunk.objects.filter(run_id=run.pk).values_list(
                "index", "state", "n_annotations"
            ):
                if chunk_state.get(index) != state:
                    chunk_state[index] = state
                    entry = chunk_times.setdefault(index, {})
                    entry[state] = round(now, 2)
                    entry["n_annotations"] = n
        if status in ("succeeded", "failed"):
            events.append((round(now, 2), status))
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
        "events": events,
        "chunks_seen": chunk_times,
        "start_s": round(t0 - clock, 2),
    }


def phase_windows(run: dict) -> dict[str, tuple[float, float]]:
    """Time windows (sampler clock) of the run's phases: chunks from the polled phase
    changes; the final stage's merge, metrics, slices, consensus and store laid end to
    end from ``AgreementRun.timings`` after the phase turned ``final``."""
    events = run["events"]
    start = run["start_s"]
    t_chunks = next((t for t, e in events if e == "phase=chunks"), None)
    t_final = next((t for t, e in events if e == "phase=final"), None)
    t_end = next((t for t, e in events if e in ("succeeded", "failed")), events[-1][0])
    out = {"plan": (start, t_chunks if t_chunks is not None else t_end)}
    timings = run["timings"] or {}
    if t_chunks is not None:
        out["chunks (scan + stats)"] = (t_chunks, t_final if t_final is not None else t_end)
    t = t_final if t_final is not None else (t_chunks if t_chunks is not None else start)
    for name in ("merge_s", "scan_s", "metrics_s", "slices_s", "consensus_s", "store_consensus_s"):
        if name in timings:
            out[name[:-2]] = (t, t + timings[name])
            t += timings[name]
    out["whole run"] = (start, t_end)
    return out


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


def report_memory(run: dict, sampler, t_done: float, hwm_at_success: dict, log: str) -> None:
    """Peak memory per worker: over the run (until succeeded), per phase window, and after
    success (flag generation, until the workers were stopped)."""

    def cells(peaks: dict) -> str:
        return "  ".join(
            f"w{i}: {p['sum_mb']:5.0f} / {p['max_process_mb']:5.0f} / {p['pss_sum_mb']:5.0f}"
            for i, p in peaks.items()
        )

    print(
        "peak memory per worker, MB (RSS sum over its process tree / RSS of its largest "
        f"process / PSS sum), {len(sampler.samples)} samples every {sampler.interval}s:",
        flush=True,
    )
    for name, (a, b) in phase_windows(run).items():
        print(f"  {name:<22} [{a:7.1f}s - {b:7.1f}s]  {cells(sampler.peaks(a, b))}", flush=True)
    after = sampler.peaks(t_done, float("inf"))
    print(f"  {'after success (flags)':<22} [{t_done:7.1f}s -      ]  {cells(after)}", flush=True)
    hwm = "  ".join(f"w{i}: {kb / 1024:.0f}" for i, kb in hwm_at_success.items())
    print(f"  VmHWM (kernel peak of the largest process) at success: {hwm}", flush=True)
    run["peak_mem_mb"] = sampler.peaks(0, t_done)
    run["peak_mem_mb_after_success"] = after
    run["vmhwm_mb_at_success"] = {i: round(kb / 1024, 1) for i, kb in hwm_at_success.items()}
    if log:
        with open(log, "w") as fh:
            fh.write("t_s,worker,rss_sum_kb,rss_max_kb,pss_sum_kb\n")
            for t, i, total, largest, pss in sampler.samples:
                fh.write(f"{t:.2f},{i},{total},{largest},{pss}\n")


def profile_chunks(project_id: int, counts: list[int]) -> list[dict]:
    """In this process, the chunked path's own functions for ``k`` chunks of equal item
    count, each timed apart: the plan (labelers ``GROUP BY`` + item-id ranges), per chunk
    the scan alone and the scan + statistics (``chunk_stats``) and its serialization, then
    deserializing every chunk and ``merge_chunks``. Measures the per-chunk cost and how
    the merge grows with the number of chunks, for the estimate with more workers."""
    import numpy as np

    from consistency import runs
    from consistency.chunks import (
        chunk_from_bytes,
        chunk_stats,
        chunk_to_bytes,
        merge_chunks,
        merge_in_order,
    )
    from consistency.class_map import class_map
    from consistency.scan import scan_annotations
    from labeling.models import Item, Project

    project = Project.objects.get(pk=project_id)
    level = project.level
    classes = class_map(project, level)
    n_items = Item.objects.filter(project=project).count()
    out = []
    for k in counts:
        t0 = time.perf_counter()
        labeler_ids, _ = runs._labelers_and_version(project.pk)
        labeler_ids = np.asarray(labeler_ids, dtype=np.int64)
        ranges = runs._item_ranges(project, -(-n_items // k))
        plan_s = time.perf_counter() - t0
        per, payloads = [], []
        for index, first, last in ranges:
            if index == 0:
                t0 = time.perf_counter()
                scan_annotations(project.pk, first_item_id=first, last_item_id=last)
                scan_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            chunk = chunk_stats(project, level, classes, labeler_ids, first, last)
            t1 = time.perf_counter()
            payload = chunk_to_bytes(chunk)
            t2 = time.perf_counter()
            per.append(
                {
                    "labels": chunk.stats.n_annotations,
                    "scan_stats_s": round(t1 - t0, 3),
                    "serialize_s": round(t2 - t1, 3),
                    "mb": round(len(payload) / 2**20, 1),
                }
            )
            payloads.append(payload)
            del chunk
        labels = sum(c["labels"] for c in per)
        # As finalize_agreement_run merges a categorical run: decode one chunk at a time
        # into the preallocated merged arrays (merge_in_order).
        t0 = time.perf_counter()
        merged = merge_in_order((chunk_from_bytes(p) for p in payloads), labels)
        t1 = time.perf_counter()
        del merged
        # The pairwise tree merge (merge_chunks: every chunk decoded first), for comparison.
        t2 = time.perf_counter()
        chunks = [chunk_from_bytes(p) for p in payloads]
        t3 = time.perf_counter()
        merged = merge_chunks(chunks)
        t4 = time.perf_counter()
        entry = {
            "chunks": len(ranges),
            "labels": labels,
            "plan_s": round(plan_s, 3),
            "chunk0_scan_s": round(scan_s, 3),
            "scan_stats_s_total": round(sum(c["scan_stats_s"] for c in per), 3),
            "scan_stats_s_per_mlabels": round(
                sum(c["scan_stats_s"] for c in per) / (labels / 1e6), 3
            ),
            "serialize_s_total": round(sum(c["serialize_s"] for c in per), 3),
            "payload_mb_total": round(sum(c["mb"] for c in per), 1),
            "merge_in_order_s": round(t1 - t0, 3),
            "deserialize_s": round(t3 - t2, 3),
            "merge_tree_s": round(t4 - t3, 3),
            "per_chunk": per if len(per) <= 8 else per[:2] + per[-1:],
        }
        assert merged.stats.n_annotations == labels
        del chunks, merged, payloads
        print(json.dumps(entry), flush=True)
        out.append(entry)
    return out


def _loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument(
        "--workers", type=int, default=1, help="separate celery worker processes (default 1)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="prefork pool size of each worker"
    )
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
    parser.add_argument(
        "--flags-wait",
        type=float,
        default=30,
        help="after success, seconds the workers may go on (flag generation) before they are "
        "killed; their memory is sampled meanwhile (default 30)",
    )
    parser.add_argument(
        "--profile-chunks",
        default="",
        help="after the run, in this process: chunk costs and merge for these chunk counts "
        "(comma-separated, e.g. 2,8,32)",
    )
    parser.add_argument("--rss-log", default="", help="write the RSS samples (CSV) here")
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
    print(f"load average (1, 5, 15 min) before: {_loadavg()}", flush=True)
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
        workers = [
            start_worker(args.concurrency, var / f"bench-worker{i}.log", name=f"bench{i}")
            for i in range(args.workers)
        ]
        sampler = RssSampler([w.pid for w in workers])
        try:
            with sampler:
                run = measure_run(project_id, params, sampler=sampler)
                t_done = time.perf_counter() - sampler.t0
                hwm_at_success = {i: max(h.values(), default=0) for i, h in sampler.hwm.items()}
                for w in workers:
                    stop_worker(w, args.flags_wait)
        finally:
            for w in workers:
                stop_worker(w, 0)
        report_memory(run, sampler, t_done, hwm_at_success, args.rss_log)
    record = {
        "items": args.items,
        "annotations": run["n_annotations"],
        "read_s": round(read_s, 2),
        "run_s": run["seconds"],
        "ratio": round(run["seconds"] / read_s, 2),
        **{k: v for k, v in run.items() if k != "seconds"},
    }
    where = "in this process" if args.in_process else f"through {args.workers} worker(s)"
    print(f"(b) run {where}: {run['seconds']:.2f}s ({run['status']})", flush=True)
    print(f"load average (1, 5, 15 min) after: {_loadavg()}", flush=True)
    print(json.dumps(record, indent=1, default=str))
    if args.profile_chunks:
        profile_chunks(project_id, [int(k) for k in args.profile_chunks.split(",")])


if __name__ == "__main__":
    main()
