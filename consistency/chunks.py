"""Chunk statistics: the sufficient statistics of one item-id range of a run.

A chunked run computes one :class:`ChunkStats` per item-id range (in parallel workers),
stores it as bytes (:func:`chunk_to_bytes`), and merges them (:func:`merge_chunks`) into
exactly the statistics a single pass over all items would give.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from consistency.class_map import ClassMap
from consistency.metrics import AgreementStats
from consistency.metrics.alpha import CATEGORICAL_LEVELS, _sum_sparse
from consistency.scan import scan_annotations
from labeling.models import Project


@dataclass
class ChunkStats:
    """Sufficient statistics of one item range plus the per-label guideline column.

    ``guideline`` is aligned with ``stats.item`` (labels sorted by item, then labeler);
    a run sets it to None once the slices have read it, before consensus.
    """

    stats: AgreementStats
    guideline: np.ndarray | None
    n_dropped: int = 0
    n_late_labelers: int = 0
    # What the scan saw (filled by chunk_stats, not serialized): the labeler ids that code
    # ``stats.labeler`` and the number of current labels read, usable or not.
    labeler_ids: np.ndarray | None = None
    n_scanned: int = 0


def chunk_stats(
    project: Project,
    level: str,
    classes: ClassMap,
    labeler_ids: np.ndarray | None,
    first_item_id: int | None,
    last_item_id: int | None,
) -> ChunkStats:
    """Scan the current labels of items with ids in [first, last] (None: unbounded) and
    code them: labelers by position in ``labeler_ids`` (sorted; None: every labeler the
    scan met, which is how a single pass plans from its own scan), classes by
    ``classes``; labels without a value usable at ``level`` are dropped and counted."""
    categorical = level in ("nominal", "ordinal")
    cols = scan_annotations(
        project.pk,
        first_item_id=first_item_id,
        last_item_id=last_item_id,
        with_number=not categorical,
    )
    if labeler_ids is None:
        labeler_ids = np.unique(cols.labeler)
    lab_pos = np.searchsorted(labeler_ids, cols.labeler)
    lab_pos_c = np.minimum(lab_pos, max(labeler_ids.size - 1, 0))
    known_lab = (labeler_ids.size > 0) & (labeler_ids[lab_pos_c] == cols.labeler)
    codes = classes.codes(cols.label_class)
    if categorical:
        values = codes
        keep = known_lab & (values >= 0)
    else:
        values = cols.number.copy()
        from_class = np.isnan(values) & (codes >= 0)
        if from_class.any():
            values[from_class] = classes.metric_value[codes[from_class]]
        keep = known_lab & np.isfinite(values)
    n_dropped = int((~keep & known_lab).sum())
    item, lab, val, guide = cols.item[keep], lab_pos_c[keep], values[keep], cols.guideline[keep]
    order = np.lexsort((lab, item))
    item, lab, val, guide = item[order], lab[order], val[order], guide[order]
    stats = AgreementStats.from_labels(
        item,
        lab,
        val,
        level=level,
        n_classes=len(classes.keys) if categorical else None,
        n_labelers=int(labeler_ids.size),
    )
    return ChunkStats(
        stats, guide, n_dropped, int((~known_lab).sum()), labeler_ids=labeler_ids, n_scanned=cols.n
    )


_STATS_ARRAYS = ("value_points", "item", "labeler", "value", "pair_a", "pair_b")
_STATS_ARRAYS += ("pair_va", "pair_vb", "pair_n")


def chunk_to_bytes(chunk: ChunkStats) -> bytes:
    """Serialize a chunk's statistics (numpy npz; a few bytes per label)."""
    s = chunk.stats
    arrays = {name: getattr(s, name) for name in _STATS_ARRAYS}
    # Labeler codes and class codes are small: int32 halves the payload; restored on load.
    for name in ("labeler", "pair_a", "pair_b"):
        arrays[name] = arrays[name].astype(np.int32)
    if s.categorical:
        for name in ("value", "pair_va", "pair_vb"):
            arrays[name] = arrays[name].astype(np.int32)
    arrays["guideline"] = chunk.guideline
    arrays["meta"] = np.array([s.n_labelers, chunk.n_dropped, chunk.n_late_labelers])
    arrays["level"] = np.array(s.level)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def chunk_from_bytes(payload: bytes) -> ChunkStats:
    """Inverse of :func:`chunk_to_bytes`: rebuilds AgreementStats from its documented
    attributes (the same arrays ``AgreementStats.from_labels`` would hold)."""
    with np.load(io.BytesIO(bytes(payload)), allow_pickle=False) as z:
        meta = z["meta"]
        kwargs = {
            name: z[name] if name == "value_points" else z[name].astype(np.int64)
            for name in _STATS_ARRAYS
        }
        names = {f.name for f in fields(AgreementStats)}
        kwargs = {k: v for k, v in kwargs.items() if k in names}
        stats = AgreementStats(level=str(z["level"]), n_labelers=int(meta[0]), **kwargs)
        return ChunkStats(stats, z["guideline"].astype(np.int64), int(meta[1]), int(meta[2]))


def merge_chunks(chunks: Sequence[ChunkStats]) -> ChunkStats:
    """Merge chunks of disjoint, increasing item ranges (order of the list = item order)."""
    if len(chunks) == 1:
        return chunks[0]
    # Balanced pairwise merging: each merge re-sorts its inputs, so a tree keeps it n log k.
    level = list(chunks)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            a, b = level[i], level[i + 1]
            nxt.append(
                ChunkStats(
                    a.stats.merge(b.stats),
                    np.concatenate([a.guideline, b.guideline]),
                    a.n_dropped + b.n_dropped,
                    a.n_late_labelers + b.n_late_labelers,
                )
            )
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    merged = level[0]
    # The guideline column follows the labels only if chunks came in item order.
    if merged.stats.item.size > 1 and not np.all(np.diff(merged.stats.item) >= 0):
        raise ValueError("internal: merged labels are not sorted by item")
    return merged


def merge_in_order(chunks: Iterable[ChunkStats], n_labels: int) -> ChunkStats:
    """:func:`merge_chunks` for categorical chunks of increasing, disjoint item ranges (a
    run's chunks in index order), taking them one at a time: the caller can load each
    just before it is needed and drop it after, so merging holds the merged labels and
    one chunk, never every chunk at once (at 10M labels: ~320 MB instead of ~1 GB).

    Each chunk's labels are sorted by (item, labeler) and the ranges increase, so the
    merged labels are the chunks' labels one after the other (what ``AgreementStats.merge``
    gives after its sort, which then finds nothing to move) and the pair tables add up:
    the same arrays as :func:`merge_chunks`. ``n_labels``: the chunks' labels in all
    (preallocated). ValueError if a chunk is not categorical, its items are not above
    the previous chunk's, or the labels do not add up to ``n_labels``."""
    item = np.empty(n_labels, dtype=np.int64)
    labeler = np.empty(n_labels, dtype=np.int64)
    value = np.empty(n_labels, dtype=np.int64)
    guideline = np.empty(n_labels, dtype=np.int64)
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    at, last_item, n_dropped, n_late, first = 0, -1, 0, 0, None
    for chunk in chunks:
        s = chunk.stats
        if s.level not in CATEGORICAL_LEVELS:
            raise ValueError("merge_in_order merges categorical chunks; use merge_chunks")
        if first is None:
            first = s
        elif s.level != first.level or s.n_values != first.n_values:
            raise ValueError("chunks differ in level or classes")
        n = s.n_annotations
        if n:
            if s.item[0] <= last_item:
                raise ValueError("internal: chunks are not in increasing item order")
            if at + n > n_labels:
                raise ValueError(f"internal: more than the {n_labels} labels announced")
            item[at : at + n] = s.item
            labeler[at : at + n] = s.labeler
            value[at : at + n] = s.value
            guideline[at : at + n] = chunk.guideline
            at += n
            last_item = int(s.item[-1])
        keys.append((s.pair_a, s.pair_b, s.pair_va, s.pair_vb, s.n_labelers))
        counts.append(s.pair_n)
        n_dropped += chunk.n_dropped
        n_late += chunk.n_late_labelers
    if first is None:
        raise ValueError("no chunks to merge")
    if at != n_labels:
        raise ValueError(f"internal: {at} labels merged, {n_labels} announced")
    n_labelers = max(k[4] for k in keys)
    k2 = max(first.value_points.size, 1)
    key, count = _sum_sparse(
        [((a * n_labelers + b) * k2 + va) * k2 + vb for a, b, va, vb, _ in keys], counts
    )
    rest, vb = np.divmod(key, k2)
    rest, va = np.divmod(rest, k2)
    a, b = np.divmod(rest, max(n_labelers, 1))
    stats = AgreementStats(
        level=first.level,
        value_points=first.value_points,
        n_labelers=n_labelers,
        item=item,
        labeler=labeler,
        value=value,
        pair_a=a,
        pair_b=b,
        pair_va=va,
        pair_vb=vb,
        pair_n=count,
    )
    return ChunkStats(stats, guideline, n_dropped, n_late)
