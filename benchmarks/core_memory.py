"""Benchmark: traced peak memory of the final stage's core functions, in bytes a label.

What a run's final stage adds on top of the merged labels it holds: ``summarize`` (every
metric, HLP, Gwet with its bootstrap), ``slice_summary`` on a sixth of the items,
``majority_consensus`` and ``dawid_skene``. Each is called alone under ``tracemalloc``
(numpy reports its buffers to it): "peak" is the largest traced memory above what was
held before the call, "kept" what the call's result holds, both divided by the labels.

Data: ``--items`` items x 5 distinct labelers from 50, 6 classes, 70 % of labels on the
item's true class, seed 0.

    python benchmarks/core_memory.py --items 400000
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import tracemalloc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from consistency.metrics import (  # noqa: E402
    AgreementStats,
    dawid_skene,
    majority_consensus,
    slice_summary,
    summarize,
)

PER_ITEM, N_LABELERS, N_CLASSES = 5, 50, 6


def make_stats(n_items: int) -> AgreementStats:
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(n_items, dtype=np.int64) * 3 + 7, PER_ITEM)
    # Distinct labelers per item: a random offset and stride into the pool.
    start = np.repeat(rng.integers(0, N_LABELERS, n_items), PER_ITEM)
    labelers = (start + np.tile(np.arange(PER_ITEM) * 7, n_items)) % N_LABELERS
    truth = np.repeat(rng.integers(0, N_CLASSES, n_items), PER_ITEM)
    noise = rng.integers(0, N_CLASSES, items.size)
    values = np.where(rng.random(items.size) < 0.7, truth, noise)
    return AgreementStats.from_labels(
        items, labelers, values, level="nominal", n_classes=N_CLASSES, n_labelers=N_LABELERS
    )


def traced(name: str, n_labels: int, call) -> dict:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - t0
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    row = {
        "function": name,
        "peak_bytes_per_label": round((peak - before) / n_labels, 1),
        "kept_bytes_per_label": round((held - before) / n_labels, 1),
        "seconds_traced": round(seconds, 2),
    }
    print(
        f"{name:30s} peak +{row['peak_bytes_per_label']:6.1f} B/label"
        f"  kept +{row['kept_bytes_per_label']:5.1f}  {seconds:5.2f} s (traced)"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400_000)
    parser.add_argument("--bootstrap", type=int, default=100)
    args = parser.parse_args()
    stats = make_stats(args.items)
    n = stats.n_annotations
    print(f"{args.items} items, {n} labels, {args.bootstrap} bootstrap replicates")
    mask = np.zeros(int(stats.item.max()) + 1, dtype=bool)
    mask[stats.item[:: PER_ITEM * 6]] = True
    traced("summarize", n, lambda: summarize(stats, n_bootstrap=args.bootstrap, seed=0))
    traced("slice_summary (1/6 of items)", n, lambda: slice_summary(stats, mask, seed=0))
    traced("majority_consensus", n, lambda: majority_consensus(stats.item, stats.value))
    traced("dawid_skene", n, lambda: dawid_skene(stats.item, stats.labeler, stats.value))


if __name__ == "__main__":
    main()
