"""Benchmark: all agreement metrics of the pure core vs krippendorff.alpha (nominal only).

Data: N annotations = N/5 items x 5 labelers (drawn from a pool of 50), 6 classes,
labelers 65-95 % accurate.  "ours" times AgreementStats.from_labels + summarize (alpha
with a bootstrap CI, Fleiss, pairwise Cohen, per-class alpha, confusion, per-labeler
consensus agreement and gold accuracy, HLP + CI) -- from the long arrays.
"krippendorff" times only ``krippendorff.alpha`` on the labelers x items matrix (its
required input; building the matrix is not timed).

    python benchmarks/core_alpha.py --n 5000000 --n 1000000 --bootstrap 200
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from core_common import baseline_mb, emit, maxrss_mb, run_worker  # noqa: E402

N_LABELERS, PER_ITEM, N_CLASSES = 50, 5, 6


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_items = n // PER_ITEM
    first = rng.integers(0, N_LABELERS, n_items)
    step = rng.integers(1, 10, n_items)  # j * step < 50 for j < 5: distinct labelers
    j = np.arange(PER_ITEM)
    labelers = ((first[:, None] + j[None, :] * step[:, None]) % N_LABELERS).ravel()
    items = np.repeat(np.arange(n_items), PER_ITEM)
    truth = rng.integers(0, N_CLASSES, n_items)
    acc = rng.uniform(0.65, 0.95, N_LABELERS)
    right = rng.random(items.size) < acc[labelers]
    values = np.where(right, truth[items], rng.integers(0, N_CLASSES, items.size))
    return items, labelers, values, truth


def worker(kind: str, n: int, bootstrap: int) -> dict:
    items, labelers, values, truth = make_data(n)
    if kind == "ours":
        from consistency.metrics import AgreementStats, summarize

        gold = {int(i): int(truth[i]) for i in range(0, truth.size, 100)}
        t0 = time.perf_counter()
        stats = AgreementStats.from_labels(
            items, labelers, values, level="nominal", n_classes=N_CLASSES
        )
        t1 = time.perf_counter()
        res = summarize(stats, gold=gold, n_bootstrap=bootstrap, seed=0)
        t2 = time.perf_counter()
        return {
            "impl": "ours(all metrics)",
            "n": n,
            "seconds": round(t2 - t0, 3),
            "seconds_stats": round(t1 - t0, 3),
            "seconds_summarize": round(t2 - t1, 3),
            "alpha": res["overall"]["krippendorff_alpha"],
            "alpha_ci": res["overall"]["krippendorff_alpha_ci"],
            "peak_rss_mb": round(maxrss_mb(), 1),
        }
    import krippendorff

    data = np.full((N_LABELERS, truth.size), np.nan)
    data[labelers, items] = values
    del items, labelers, values
    t0 = time.perf_counter()
    alpha = krippendorff.alpha(
        reliability_data=data, level_of_measurement="nominal", value_domain=np.arange(N_CLASSES)
    )
    t1 = time.perf_counter()
    return {
        "impl": "krippendorff.alpha(nominal only)",
        "n": n,
        "seconds": round(t1 - t0, 3),
        "alpha": float(alpha),
        "peak_rss_mb": round(maxrss_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", help="annotations (repeatable)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--skip-krippendorff", action="store_true")
    ap.add_argument("--worker", choices=["ours", "krippendorff"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = args.n or [5_000_000]
    if args.worker:
        emit(worker(args.worker, sizes[0], args.bootstrap))
        return
    base = baseline_mb()
    emit({"baseline_rss_mb(numpy imported)": round(base, 1)})
    for n in sizes:
        kinds = ["ours"] + ([] if args.skip_krippendorff else ["krippendorff"])
        for kind in kinds:
            rec = run_worker(__file__, [kind, "--n", str(n), "--bootstrap", str(args.bootstrap)])
            if "peak_rss_mb" in rec:
                rec["peak_rss_mb_over_baseline"] = round(rec["peak_rss_mb"] - base, 1)
            emit(rec)


if __name__ == "__main__":
    main()
