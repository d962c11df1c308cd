"""Consensus per item: computed by each method, SME decisions on top, stored as rows.

:func:`consensus_part` computes every requested method's consensus from a run's
statistics (:class:`ConsensusBlock`, aligned columns) and replaces the run's
:class:`~consistency.models.Consensus` rows.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from consistency.chunks import ChunkStats
from consistency.class_map import ClassMap
from consistency.jobs import Superseded, release_freed_memory
from consistency.metrics import AgreementStats, dawid_skene, majority_consensus
from consistency.models import AgreementRun, Consensus, ConsensusStatus, RunStatus
from labeling import selectors as labeling_selectors
from labeling.models import Project


@dataclass
class ConsensusBlock:
    """One method's consensus for every item of a run, as aligned columns (shape (I,))."""

    method: str
    item_ids: np.ndarray
    class_ids: np.ndarray  # -1: no label (disputed)
    support: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    n_labels: np.ndarray
    status: np.ndarray  # int8 codes into STATUSES (a byte per item, not a str object)


# The stored status of each code of ConsensusBlock.status.
STATUSES: tuple[str, ...] = tuple(ConsensusStatus.values)
_CODE = {name: code for code, name in enumerate(STATUSES)}

CONSENSUS_INSERT_BATCH = 100_000
# Rows per binary COPY record array: a batch is ~110 bytes a row, so the store holds
# ~25 MB of rows at a time whatever the run's size.
CONSENSUS_COPY_BATCH = 250_000


def sme_overrides(project: Project) -> dict[int, int]:
    """``{item_id: label_class_id}`` decided by an SME (already mapped through merges);
    they override every consensus method."""
    return labeling_selectors.sme_overrides(project)


def consensus_part(run, chunk: ChunkStats, classes: ClassMap) -> tuple[dict, dict]:
    """Consensus by each method, stored as Consensus rows: (summary, timings)."""
    stats = chunk.stats
    categorical = run.params["level"] in ("nominal", "ordinal")
    t0 = time.perf_counter()
    summary, blocks = (
        ({}, []) if stats.n_annotations == 0 else _consensus(run, stats, classes, categorical)
    )
    timings = {"consensus_s": round(time.perf_counter() - t0, 3)}
    release_freed_memory()  # Dawid-Skene's temporaries, before the rows are built
    t0 = time.perf_counter()
    _store_consensus(run, blocks)
    timings["store_consensus_s"] = round(time.perf_counter() - t0, 3)
    return summary, timings


def _consensus(run, stats: AgreementStats, classes: ClassMap, categorical: bool):
    """Consensus rows (unsaved) and a summary per method."""
    project, methods = run.project, run.params["consensus"]
    overrides = sme_overrides(project)
    threshold = float((project.flag_thresholds or {}).get("item_majority_share_below", 0.67))
    summary: dict = {"methods": {}, "sme_overrides": len(overrides), "reasons": {}}
    rows: list[ConsensusBlock] = []
    if not categorical:
        summary["reasons"]["methods"] = (
            "consensus labels are computed for class labels; "
            f"this run is at the {stats.level} level"
        )
        return summary, rows
    k = len(classes.keys)
    ids = np.asarray(classes.ids, dtype=np.int64)
    maj = majority_consensus(stats.item, stats.value, n_classes=k)
    item_ids = maj["item"].to_numpy(np.int64)
    n_labels = maj["n_labels"].to_numpy(np.int64)
    entropy = maj["entropy"].to_numpy(np.float64)
    override_code = {
        int(i): classes.code_of[c] for i, c in overrides.items() if c in classes.code_of
    }

    def status_for(codes: np.ndarray, disputed: np.ndarray) -> np.ndarray:
        border = np.zeros(codes.size, dtype=bool)
        ok = codes >= 0
        border[ok] = classes.borderline[codes[ok]]
        status = np.full(codes.size, _CODE[ConsensusStatus.AGREED], dtype=np.int8)
        status[border] = _CODE[ConsensusStatus.BORDERLINE]
        status[disputed] = _CODE[ConsensusStatus.DISPUTED]
        return status

    def build(method, codes, support, confidence, status):
        codes = codes.copy()
        confidence = confidence.copy()
        if override_code:
            pos = np.searchsorted(item_ids, np.fromiter(override_code, dtype=np.int64))
            found = (pos < item_ids.size) & (
                item_ids[np.minimum(pos, item_ids.size - 1)]
                == np.fromiter(override_code, dtype=np.int64)
            )
            for p, code in zip(
                pos[found], np.array(list(override_code.values()))[found], strict=True
            ):
                codes[p], status[p], confidence[p] = code, _CODE[ConsensusStatus.RESOLVED], 1.0
        counts = np.bincount(status, minlength=len(STATUSES))
        summary["methods"][method] = {
            "n_items": int(item_ids.size),
            **{name: int(counts[code]) for code, name in enumerate(STATUSES)},
        }
        rows.append(
            ConsensusBlock(
                method=method,
                item_ids=item_ids,
                class_ids=np.where(codes >= 0, ids[np.maximum(codes, 0)], -1),
                support=np.asarray(support, dtype=np.float64),
                confidence=confidence,
                entropy=entropy,
                n_labels=n_labels,
                status=status,
            )
        )

    if "majority" in methods:
        label = maj["label"].to_numpy(dtype=np.float64, na_value=np.nan)
        disputed = np.isnan(label)
        codes = np.where(disputed, -1, np.nan_to_num(label, nan=-1)).astype(np.int64)
        support = maj["support"].to_numpy(np.float64)
        build("majority", codes, support, support, status_for(codes, disputed))
        summary["methods"]["majority"]["definition"] = (
            "most frequent class; a tie at the top is disputed, never broken"
        )
    if "dawid_skene" in methods:
        ds = dawid_skene(stats.item, stats.labeler, stats.value, n_classes=k)
        if not np.array_equal(ds.items_, item_ids):
            raise RuntimeError("internal: Dawid-Skene items differ from the majority items")
        codes = ds.labels_.astype(np.int64)
        support = _item_entropy_support(stats, codes, item_ids)
        confidence = ds.confidence_.astype(np.float64)
        build("dawid_skene", codes, support, confidence, status_for(codes, confidence < threshold))
        summary["methods"]["dawid_skene"].update(
            {
                "n_iter": int(ds.n_iter_),
                "converged": bool(ds.converged_),
                "definition": (
                    "Dawid-Skene EM over per-labeler confusion matrices; disputed when the "
                    f"posterior of the most probable class is below {threshold:g} "
                    "(project threshold item_majority_share_below)"
                ),
                "priors": {
                    key: round(float(p), 6) for key, p in zip(classes.keys, ds.priors_, strict=True)
                },
            }
        )
    return summary, rows


def _item_entropy_support(stats: AgreementStats, labels: np.ndarray, item_ids: np.ndarray):
    """Per item (sorted ids): share of labels equal to ``labels`` (shape (I,))."""
    pos = np.searchsorted(item_ids, stats.item)
    m = np.bincount(pos, minlength=item_ids.size)
    hit = stats.value == labels[pos]
    return np.bincount(pos, weights=hit, minlength=item_ids.size) / np.maximum(m, 1)


def _store_consensus(run: AgreementRun, blocks: Sequence[ConsensusBlock]) -> None:
    """Replace the run's Consensus rows.

    Not ``bulk_create``: a million-label project has 400,000 consensus rows (two
    methods), and building that many model instances took ~30 s of a ~100 s benchmark
    run. On SQLite >= 3.38 each block is one ``INSERT ... SELECT`` over ``json_each`` of
    a single JSON parameter (the rows are parsed in C, ~40% faster than binding them one
    by one); elsewhere a plain ``executemany``.
    """
    table = connection.ops.quote_name(Consensus._meta.db_table)
    columns_sql = (
        f"INSERT INTO {table} (run_id, item_id, method, label_class_id, value_text, "  # noqa: S608
        "support, confidence, entropy, n_labels, status) "
    )
    use_json = connection.vendor == "sqlite" and _sqlite_has_json_arrows()
    with transaction.atomic():
        # Only the execution that holds the run writes its rows (consistency.jobs): the
        # row lock (SQLite: the write lock of this transaction) orders it against the
        # reaper, so a run given up for dead never mixes its rows with a newer attempt's.
        held = AgreementRun.objects.select_for_update().filter(
            pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts
        )
        if not held.exists():
            raise Superseded(f"agreement run {run.pk} attempt {run.attempts}")
        # Replace, never add: a run executed again stores its consensus once.
        Consensus.objects.filter(run=run).delete()
        if connection.vendor == "postgresql":
            for b in blocks:
                _copy_block(table, run.pk, b)
            return
        with connection.cursor() as cursor:
            for b in blocks:
                class_ids = b.class_ids.astype(object)
                class_ids[b.class_ids < 0] = None
                columns = (
                    b.item_ids.tolist(),
                    class_ids.tolist(),
                    b.support.tolist(),
                    b.confidence.tolist(),
                    b.entropy.tolist(),
                    b.n_labels.tolist(),
                    [STATUSES[c] for c in b.status.tolist()],
                )
                rows = list(zip(*columns, strict=True))
                for lo in range(0, len(rows), CONSENSUS_INSERT_BATCH):
                    batch = rows[lo : lo + CONSENSUS_INSERT_BATCH]
                    if use_json:
                        cursor.execute(
                            columns_sql + "SELECT %s, r.value->>0, %s, r.value->>1, '', "
                            "r.value->>2, r.value->>3, r.value->>4, r.value->>5, r.value->>6 "
                            "FROM json_each(%s) AS r",
                            [run.pk, b.method, json.dumps(batch, allow_nan=False)],
                        )
                    else:
                        cursor.executemany(
                            columns_sql + "VALUES (%s, %s, %s, %s, '', %s, %s, %s, %s, %s)",
                            [(run.pk, r[0], b.method, *r[1:]) for r in batch],
                        )


_COPY_COLUMNS = (
    "run_id",
    "item_id",
    "method",
    "label_class_id",
    "value_text",
    "support",
    "confidence",
    "entropy",
    "n_labels",
    "status",
)


def _copy_block(table: str, run_id: int, b: ConsensusBlock) -> None:
    """One method's rows through one binary ``COPY FROM STDIN``, built by numpy.

    The binary format carries each value with its byte length, so rows sharing a status
    (and a null or set class) have one fixed layout: each such group is written as numpy
    record arrays (big-endian) of up to ``CONSENSUS_COPY_BATCH`` rows, with no per-row
    Python and no float formatting; floats travel as their 8 bytes, so the stored numbers
    are the computed ones.
    """
    n = b.item_ids.size
    if n == 0:
        return
    for name in ("support", "confidence", "entropy"):
        if not np.isfinite(getattr(b, name)).all():
            raise ValueError(f"internal: a consensus {name} is not a finite number")
    no_class = b.class_ids < 0
    method = b.method.encode()
    sql = f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN WITH (FORMAT binary)"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(sql) as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            # Statuses in name order, as before: the same byte stream. Each group is
            # written in batches as it is built, so at most one batch of rows is held.
            for name in sorted(STATUSES):
                in_status = b.status == _CODE[name]
                for null_class in (False, True):
                    rows = np.flatnonzero(in_status & (no_class == null_class))
                    for lo in range(0, rows.size, CONSENSUS_COPY_BATCH):
                        sel = rows[lo : lo + CONSENSUS_COPY_BATCH]
                        copy.write(_copy_records(run_id, method, name, null_class, b, sel))
            copy.write(struct.pack(">h", -1))


def _copy_records(
    run_id: int, method: bytes, status: str, null_class: bool, b: ConsensusBlock, sel
) -> bytes:
    """The binary COPY tuples of rows ``sel`` of ``b`` (one status, class null or not)."""
    text = status.encode()
    layout = [
        ("n_fields", ">i2"),
        ("run_len", ">i4"),
        ("run", ">i8"),
        ("item_len", ">i4"),
        ("item", ">i8"),
        ("method_len", ">i4"),
        ("method", f"S{len(method)}"),
        ("class_len", ">i4"),
    ]
    layout += [] if null_class else [("class", ">i8")]
    layout += [
        ("text_len", ">i4"),
        ("support_len", ">i4"),
        ("support", ">f8"),
        ("confidence_len", ">i4"),
        ("confidence", ">f8"),
        ("entropy_len", ">i4"),
        ("entropy", ">f8"),
        ("n_len", ">i4"),
        ("n", ">i4"),
        ("status_len", ">i4"),
        ("status", f"S{len(text)}"),
    ]
    rec = np.empty(sel.size, dtype=layout)
    rec["n_fields"] = len(_COPY_COLUMNS)
    rec["run_len"], rec["run"] = 8, run_id
    rec["item_len"], rec["item"] = 8, b.item_ids[sel]
    rec["method_len"], rec["method"] = len(method), method
    rec["class_len"] = -1 if null_class else 8  # -1: NULL
    if not null_class:
        rec["class"] = b.class_ids[sel]
    rec["text_len"] = 0  # value_text: ""
    for name in ("support", "confidence", "entropy"):
        rec[f"{name}_len"], rec[name] = 8, getattr(b, name)[sel]
    rec["n_len"], rec["n"] = 4, b.n_labels[sel]
    rec["status_len"], rec["status"] = len(text), text
    return rec.tobytes()


def _sqlite_has_json_arrows() -> bool:
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 38, 0)
