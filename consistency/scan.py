"""Read a project's current annotations as numpy columns, without model instances.

The agreement core needs four integers per label (item, labeler, class, guideline) and,
for rating or transcription projects, a number or a text. Building a Django model
instance per row costs ~20 µs; a million labels would spend most of a run in the ORM.
So the scan runs one raw SELECT over the partial index ``annotation_current_scan`` and
turns each ``fetchmany`` batch into numpy arrays at once. On PostgreSQL the numeric
columns are streamed with ``COPY ... TO STDOUT`` (CSV) and parsed by pandas in C.

Nothing here knows about metrics: :mod:`consistency.chunks` maps the raw ids to codes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection

from labeling.models import Annotation, Item

FETCH_BATCH = 100_000


@dataclass(frozen=True, eq=False)
class LabelColumns:
    """Current annotations of a project (or of an item-id range), one entry per label.

    Attributes
    ----------
    item, labeler : ndarray of int64, shape (N,)
        Item and labeler (user) primary keys.
    label_class : ndarray of int64, shape (N,)
        LabelClass primary key as stored (before merges), -1 for none.
    guideline : ndarray of int64, shape (N,)
        Guideline primary key, -1 for none.
    number : ndarray of float64, shape (N,) or None
        ``value_number`` (NaN for none); only when asked for.
    text : list of str, length N, or None
        ``value_text``; only when asked for.
    time : ndarray of float64, shape (N,) or None
        ``created_at`` in seconds since the Unix epoch (UTC, microseconds kept); only when
        asked for.
    """

    item: np.ndarray
    labeler: np.ndarray
    label_class: np.ndarray
    guideline: np.ndarray
    number: np.ndarray | None = None
    text: list | None = None
    time: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.item.size)


def _epoch_sql() -> str:
    """``created_at`` as seconds since the epoch (float, microseconds kept). SQLite stores
    the ORM's UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]``: whole seconds by ``strftime`` of
    the first 19 characters, the fraction read from the text. SQLite's date functions
    round to milliseconds, so ``strftime('%s')`` of the full text would carry a fraction
    of .9995 or more into the next second."""
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM created_at)::float8"
    return (
        "CAST(strftime('%%s', substr(created_at, 1, 19)) AS REAL)"
        " + COALESCE(CAST(NULLIF(substr(created_at, 20, 7), '') AS REAL), 0.0)"
    )


def _sql(with_number: bool, with_text: bool, item_range: bool, with_time: bool = False) -> str:
    table = connection.ops.quote_name(Annotation._meta.db_table)
    cols = [
        "item_id",
        "labeler_id",
        "COALESCE(label_class_id, -1)",
        "COALESCE(guideline_id, -1)",
    ]
    if with_number:
        cols.append("value_number")
    if with_time:
        cols.append(_epoch_sql())
    if with_text:
        cols.append("value_text")
    where = "project_id = %s AND is_current"
    if item_range:
        where += " AND item_id >= %s AND item_id <= %s"
    return f"SELECT {', '.join(cols)} FROM {table} WHERE {where}"  # noqa: S608 (no user input)


def scan_annotations(
    project_id: int,
    *,
    first_item_id: int | None = None,
    last_item_id: int | None = None,
    with_number: bool = False,
    with_text: bool = False,
    with_time: bool = False,
) -> LabelColumns:
    """Current annotations of ``project_id`` as columns (see :class:`LabelColumns`).

    ``first_item_id`` / ``last_item_id`` (inclusive) restrict the scan to an item-id range,
    which is how a chunked run splits the work. Row order is whatever the database
    returns; the core sorts by (item, labeler) itself.
    """
    item_range = first_item_id is not None or last_item_id is not None
    params: list = [project_id]
    if item_range:
        params += [
            first_item_id if first_item_id is not None else -(2**62),
            last_item_id if last_item_id is not None else 2**62,
        ]
    sql = _sql(with_number, with_text, item_range, with_time)
    if connection.vendor == "postgresql" and not with_text:
        return _scan_copy(sql, params, with_number, with_time)
    return _scan_fetch(sql, params, with_number, with_text, with_time)


def _scan_fetch(
    sql: str, params: list, with_number: bool, with_text: bool, with_time: bool = False
) -> LabelColumns:
    ints: list[np.ndarray] = []
    numbers: list[np.ndarray] = []
    times: list[np.ndarray] = []
    texts: list = []
    time_at = 4 + int(with_number)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(FETCH_BATCH)
            if not rows:
                break
            if not with_number and not with_text and not with_time:
                ints.append(np.array(rows, dtype=np.int64).reshape(-1, 4))
                continue
            ints.append(np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4))
            if with_number:
                # None becomes NaN under dtype=float64.
                numbers.append(np.array([r[4] for r in rows], dtype=np.float64))
            if with_time:
                times.append(np.array([r[time_at] for r in rows], dtype=np.float64))
            if with_text:
                texts.extend(r[-1] or "" for r in rows)
    block = np.concatenate(ints) if ints else np.zeros((0, 4), dtype=np.int64)
    return LabelColumns(
        item=np.ascontiguousarray(block[:, 0]),
        labeler=np.ascontiguousarray(block[:, 1]),
        label_class=np.ascontiguousarray(block[:, 2]),
        guideline=np.ascontiguousarray(block[:, 3]),
        number=(np.concatenate(numbers) if numbers else np.zeros(0)) if with_number else None,
        text=texts if with_text else None,
        time=(np.concatenate(times) if times else np.zeros(0)) if with_time else None,
    )


def _scan_copy(sql: str, params: list, with_number: bool, with_time: bool = False) -> LabelColumns:
    """PostgreSQL: ``COPY (query) TO STDOUT`` as CSV, parsed by pandas (no per-row Python)."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        query = raw.mogrify(sql, params) if hasattr(raw, "mogrify") else sql
        with raw.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    names = ["item", "labeler", "label_class", "guideline"]
    names += (["number"] if with_number else []) + (["time"] if with_time else [])
    if buffer.getbuffer().nbytes == 0:
        frame = pd.DataFrame({n: np.zeros(0) for n in names})
    else:
        dtypes = dict.fromkeys(names[:4], np.int64)
        dtypes.update(dict.fromkeys(names[4:], np.float64))
        # The exact float parser for times, so a time reads back to its microsecond.
        precision = {"float_precision": "round_trip"} if with_time else {}
        frame = pd.read_csv(buffer, header=None, names=names, dtype=dtypes, **precision)
    return LabelColumns(
        item=frame["item"].to_numpy(np.int64),
        labeler=frame["labeler"].to_numpy(np.int64),
        label_class=frame["label_class"].to_numpy(np.int64),
        guideline=frame["guideline"].to_numpy(np.int64),
        number=frame["number"].to_numpy(np.float64) if with_number else None,
        time=frame["time"].to_numpy(np.float64) if with_time else None,
    )


# The open upper end of the last item-id range (an item created later still falls in it).
OPEN_END = 2**62


def item_id_ranges(project_id: int, items_per_range: int) -> list[tuple[int, int]]:
    """Inclusive item-id ranges ``[(first, last), ...]`` covering the project's items in
    id order, ``items_per_range`` items each (the last may hold fewer); the outer ends are
    open (0 and ``OPEN_END``) so that an item created meanwhile still falls in a range.
    The database returns only each range's first id: no list of every item id."""
    table = connection.ops.quote_name(Item._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n "  # noqa: S608
            f"FROM {table} WHERE project_id = %s) AS numbered "
            "WHERE (n - 1) %% %s = 0 ORDER BY id",
            [project_id, max(int(items_per_range), 1)],
        )
        starts = [row[0] for row in cursor.fetchall()]
    if not starts:
        return []
    ranges = [(first, nxt - 1) for first, nxt in zip(starts, starts[1:], strict=False)]
    ranges.append((starts[-1], OPEN_END))
    ranges[0] = (0, ranges[0][1])
    return ranges
