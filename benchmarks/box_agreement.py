"""Time the box agreement core on synthetic detection labels (no database).

Usage: python benchmarks/box_agreement.py --items 1000 [--bootstrap 1000]

Builds the planted-convention labels of ``tests/consistency/box_synth.py`` (six labelers,
1.7 boxes per item on average plus three-object clusters on every third item) and times
each stage of a detection run's metrics: the per-item tables (matching, clusters,
leave-one-out consensus), the overall figures with bootstrap intervals, the per-labeler
figures (size ratios re-solved per replicate), the conventions, and AP50 of a synthetic
model on the same items.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consistency.metrics import boxes as bx  # noqa: E402
from tests.consistency.box_synth import synthetic_labels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    labels, truth = synthetic_labels(n_items=args.items, seed=1)
    n_boxes = sum(len(b) for per in labels.values() for b in per.values())
    print(f"{args.items} items, 6 labelers, {n_boxes} boxes, {args.bootstrap} bootstrap")
    t0 = time.perf_counter()
    agreement = bx.BoxAgreement(labels, classes=["scratch", "dent"])
    t1 = time.perf_counter()
    agreement.summary(n_bootstrap=args.bootstrap)
    t2 = time.perf_counter()
    per_labeler = agreement.per_labeler(n_bootstrap=args.bootstrap)
    t3 = time.perf_counter()
    bx.box_conventions(agreement, per_labeler)
    t4 = time.perf_counter()
    predictions = {
        k: [{**b, "score": 0.5 + 0.1 * (n % 5)} for n, b in enumerate(v["ann"])]
        for k, v in labels.items()
    }
    bx.average_precision(truth, predictions)
    t5 = time.perf_counter()
    for name, s in (
        ("tables", t1 - t0),
        ("overall + CIs", t2 - t1),
        ("per labeler + CIs", t3 - t2),
        ("conventions", t4 - t3),
        ("AP50", t5 - t4),
        ("total", t5 - t0),
    ):
        print(f"{name:>18}: {s:7.2f} s")


if __name__ == "__main__":
    main()
