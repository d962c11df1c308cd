"""How many labels dynamic overlap saves against fixed overlap, at equal consensus quality.

On the demo image project (``labeling.demo.synth.build_demo``: phone screens with
planted defects and 8 simulated labelers with planted behaviours), each item is labeled
by labelers drawn in random order from the pool, with labels drawn by the demo's own
labeler model (``labeling.demo.labelers.simulate_label``). Two policies see the *same*
label for the same (item, labeler, repetition), so the comparison is paired:

* fixed: the first ``--overlap`` labelers (default 3);
* dynamic: labels are added one at a time until ``labeling.selectors.dynamic_target``
  (the rule the hand-out uses) says the item is done (``--min`` 2, ``--max`` 5).

Consensus is the plurality label (ties go to the label given first); quality is its
accuracy against the generator's ground truth. Pure Python: no database.

    python benchmarks/dynamic_overlap.py --seeds 1 2 3 --reps 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import django
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()  # dynamic_target lives in labeling.selectors; no database is used

from labeling.demo.labelers import IMAGE_LABELERS, ItemContext, simulate_label  # noqa: E402
from labeling.demo.synth import GUIDELINE_V2_DAY, START, build_demo  # noqa: E402
from labeling.selectors import dynamic_target  # noqa: E402


def plurality(labels: list[str]) -> str:
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)


def simulate(seed: int, n_images: int, reps: int, overlap: int, lo: int, hi: int) -> dict:
    project = build_demo(seed, n_images).projects[0]
    pool = list(IMAGE_LABELERS)
    totals = {"fixed": [0, 0, 0], "dynamic": [0, 0, 0]}  # labels, correct, correct_clear
    n_clear = 0
    for i, item in enumerate(project.items):
        ctx = ItemContext(
            item.truth,
            item.severity or 0.0,
            item.is_faint,
            "dark" in item.tags,
            "glare" in item.tags,
        )
        captured = datetime.strptime(item.metadata["captured_at"], "%Y-%m-%dT%H:%M:%SZ")
        day = (captured.replace(tzinfo=UTC) - START).total_seconds() / 86400
        version = 1 if day < GUIDELINE_V2_DAY else 2
        for rep in range(reps):
            order = np.random.default_rng([seed, 101, i, rep]).permutation(len(pool))
            labels = [
                simulate_label(
                    pool[j],
                    ctx,
                    np.random.default_rng([seed, 202, i, rep, int(j)]),
                    guideline_version=version,
                    day=day,
                )
                for j in order[:hi]
            ]
            fixed = labels[:overlap]
            n = lo
            while dynamic_target(labels[:n], min_overlap=lo, max_overlap=hi) > n:
                n += 1
            dynamic = labels[:n]
            clear = not item.is_faint  # faint scratches are ambiguous by construction
            n_clear += clear
            for name, used in (("fixed", fixed), ("dynamic", dynamic)):
                ok = plurality(used) == item.truth
                totals[name][0] += len(used)
                totals[name][1] += ok
                totals[name][2] += ok and clear
    n = len(project.items) * reps
    return {
        "seed": seed,
        "items": len(project.items),
        "reps": reps,
        "n_non_faint": n_clear,
        **{
            name: {
                "labels": t[0],
                "labels_per_item": round(t[0] / n, 3),
                "accuracy": round(t[1] / n, 4),
                "accuracy_non_faint": round(t[2] / n_clear, 4),
            }
            for name, t in totals.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--reps", type=int, default=20, help="labeler draws per item")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--min", dest="lo", type=int, default=2)
    parser.add_argument("--max", dest="hi", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    runs = [simulate(s, args.images, args.reps, args.overlap, args.lo, args.hi) for s in args.seeds]
    fixed = sum(r["fixed"]["labels"] for r in runs)
    dynamic = sum(r["dynamic"]["labels"] for r in runs)
    total_n = sum(r["items"] * r["reps"] for r in runs)

    def acc(policy: str, key: str) -> float:
        weight = {
            "accuracy": lambda r: r["items"] * r["reps"],
            "accuracy_non_faint": lambda r: r["n_non_faint"],
        }[key]
        total = sum(weight(r) for r in runs)
        return round(sum(r[policy][key] * weight(r) for r in runs) / total, 4)

    summary = {
        "policy": {
            "fixed_overlap": args.overlap,
            "dynamic_min": args.lo,
            "dynamic_max": args.hi,
        },
        "labels_fixed": fixed,
        "labels_dynamic": dynamic,
        "labels_saved_share": round(1 - dynamic / fixed, 4),
        "labels_per_item": {
            "fixed": round(fixed / total_n, 3),
            "dynamic": round(dynamic / total_n, 3),
        },
        "majority_accuracy": {
            "fixed": acc("fixed", "accuracy"),
            "dynamic": acc("dynamic", "accuracy"),
        },
        "majority_accuracy_non_faint": {
            "fixed": acc("fixed", "accuracy_non_faint"),
            "dynamic": acc("dynamic", "accuracy_non_faint"),
        },
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
