"""Benchmark: interval alpha with many items / distinct values vs krippendorff.alpha.

Scenarios (each implementation in its own subprocess, peak RSS over a numpy-only
interpreter):

* ``grid``: N items x 5 labels (from a pool of 50 labelers), 50 distinct values
  (0..49), labels = true value + noise, rounded and clipped.
* ``real``: N items x 5 labels of real values rounded to 0.01 (thousands of distinct
  values).  krippendorff.alpha needs an items x V x V array there (100,000 x 5,000^2
  doubles = 20 TB), so it is run only when ``--kripp-max-cells`` allows; otherwise we
  check equality on a 60-item subset instead.

    python benchmarks/core_interval.py --scenario grid --items 100000
    python benchmarks/core_interval.py --scenario real --items 100000
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

N_LABELERS, PER_ITEM = 50, 5
SUBSET = 60  # items for the krippendorff cross-check when the full run cannot fit


def make_data(scenario: str, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    first = rng.integers(0, N_LABELERS, n_items)
    step = rng.integers(1, 10, n_items)
    j = np.arange(PER_ITEM)
    labelers = ((first[:, None] + j[None, :] * step[:, None]) % N_LABELERS).ravel()
    items = np.repeat(np.arange(n_items), PER_ITEM)
    if scenario == "grid":
        truth = rng.uniform(0, 49, n_items)
        values = np.clip(np.round(truth[items] + rng.normal(0, 4, items.size)), 0, 49)
    else:
        truth = rng.normal(50, 12, n_items)
        values = np.round(truth[items] + rng.normal(0, 4, items.size), 2)
    return items, labelers, values


def worker(kind: str, scenario: str, n_items: int) -> dict:
    items, labelers, values = make_data(scenario, n_items)
    n_distinct = int(np.unique(values).size)
    if kind == "ours":
        from consistency.metrics import krippendorff_alpha

        t0 = time.perf_counter()
        alpha = krippendorff_alpha(items, values, level="interval")
        t1 = time.perf_counter()
        return {
            "impl": "ours",
            "scenario": scenario,
            "items": n_items,
            "distinct_values": n_distinct,
            "seconds": round(t1 - t0, 4),
            "alpha": alpha,
            "peak_rss_mb": round(maxrss_mb(), 1),
        }
    import krippendorff

    if kind == "krippendorff-subset":
        keep = items < SUBSET
        items, labelers, values = items[keep], labelers[keep], values[keep]
        n_items = SUBSET
    data = np.full((N_LABELERS, n_items), np.nan)
    data[labelers, items] = values
    del items, labelers, values
    t0 = time.perf_counter()
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    t1 = time.perf_counter()
    return {
        "impl": kind,
        "scenario": scenario,
        "items": n_items,
        "distinct_values": n_distinct,
        "seconds": round(t1 - t0, 4),
        "alpha": float(alpha),
        "peak_rss_mb": round(maxrss_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=["grid", "real"], default="grid")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--kripp-max-cells", type=float, default=4e9, help="items*V*V limit")
    ap.add_argument(
        "--worker",
        choices=["ours", "krippendorff", "krippendorff-subset"],
        help=argparse.SUPPRESS,
    )
    args = ap.parse_args()
    if args.worker:
        emit(worker(args.worker, args.scenario, args.items))
        return
    base = baseline_mb()
    emit({"baseline_rss_mb(numpy imported)": round(base, 1)})
    common = ["--scenario", args.scenario, "--items", str(args.items)]
    ours = run_worker(__file__, ["ours", *common])
    ours["peak_rss_mb_over_baseline"] = round(ours["peak_rss_mb"] - base, 1)
    emit(ours)
    cells = args.items * float(ours["distinct_values"]) ** 2
    if cells <= args.kripp_max_cells:
        ref = run_worker(__file__, ["krippendorff", *common])
        ref["peak_rss_mb_over_baseline"] = round(ref["peak_rss_mb"] - base, 1)
        emit(ref)
        emit(
            {
                "same_alpha": abs(ref["alpha"] - ours["alpha"]) < 1e-9,
                "speedup": round(ref["seconds"] / ours["seconds"], 1),
                "memory_ratio": round(
                    ours["peak_rss_mb_over_baseline"] / ref["peak_rss_mb_over_baseline"], 4
                ),
            }
        )
    else:
        emit(
            {
                "krippendorff": f"skipped: needs items*V*V = {cells:.3g} doubles "
                f"(> --kripp-max-cells {args.kripp_max_cells:.3g})",
            }
        )
        ref = run_worker(__file__, ["krippendorff-subset", *common])
        from consistency.metrics import krippendorff_alpha

        items, _, values = make_data(args.scenario, args.items)
        keep = items < SUBSET
        sub = krippendorff_alpha(items[keep], values[keep], level="interval")
        emit(
            {
                "subset_items": ref,
                "ours_subset_alpha": sub,
                "same_alpha": abs(ref["alpha"] - sub) < 1e-9,
            }
        )


if __name__ == "__main__":
    main()
