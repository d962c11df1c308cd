"""Deterministic, stratified, group-aware train/dev/test splits. Pure Python, no Django.

The assignment depends only on the units' keys, their strata, their sizes, the ratios and
the seed, never on input order, so the same parameters on the same data give the same
split (and the same dataset hash).

Each stratum is allocated on its own by the largest-remainder method: with ratios
``r_s`` and ``n`` items in the stratum, split ``s`` receives ``floor(n * r_s)`` items plus
one of the leftover items for the largest fractional parts. Every split therefore holds
every stratum in proportion to within one item. With groups (``group_by``), whole groups
are placed, largest first, in the split furthest below its target, so a group never
straddles splits and the proportions hold as closely as the group sizes allow.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """What is placed in one split: an item, or a group of items sharing a group key.

    ``key`` identifies it (unique), ``stratum`` is the tuple it is stratified by, ``size``
    the number of items it holds.
    """

    key: str
    stratum: tuple
    size: int = 1


def validate_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Check split ratios: named splits, each in [0, 1], summing to 1. Raises ValueError."""
    if not isinstance(ratios, Mapping) or not ratios:
        raise ValueError("splits must be an object such as {train: 0.8, dev: 0.1, test: 0.1}")
    clean = {}
    for name, ratio in ratios.items():
        if not isinstance(name, str) or not name or len(name) > 20 or not name.isidentifier():
            raise ValueError(f"split name {name!r} must be a short identifier such as 'train'")
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or math.isnan(ratio):
            raise ValueError(f"split {name!r}: ratio must be a number")
        if not 0 <= ratio <= 1:
            raise ValueError(f"split {name!r}: ratio must be between 0 and 1, got {ratio}")
        clean[name] = float(ratio)
    total = sum(clean.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split ratios must sum to 1, they sum to {total:g}")
    return clean


def largest_remainder(n: int, ratios: Mapping[str, float], tiebreak: Sequence[str]) -> dict:
    """Integer counts summing to ``n``, each within one of ``n * ratio``.

    Leftover units go to the largest fractional parts; equal fractions are ordered by
    ``tiebreak`` (a permutation of the split names).
    """
    exact = {name: n * ratio for name, ratio in ratios.items()}
    counts = {name: math.floor(value + 1e-9) for name, value in exact.items()}
    leftover = n - sum(counts.values())
    rank = {name: i for i, name in enumerate(tiebreak)}
    by_fraction = sorted(exact, key=lambda s: (-(exact[s] - counts[s]), rank[s]))
    for name in by_fraction[:leftover]:
        counts[name] += 1
    return counts


def _digest(seed: int, *parts: object) -> str:
    text = "\x1f".join([str(seed), *map(str, parts)])
    return hashlib.sha256(text.encode()).hexdigest()


def assign_splits(units: Sequence[Unit], ratios: Mapping[str, float], seed: int) -> dict[str, str]:
    """Map each unit key to a split name.

    Parameters
    ----------
    units : sequence of Unit, with unique keys.
    ratios : {split name: share}, shares in [0, 1] summing to 1.
    seed : any integer; a different seed gives a different (equally balanced) split.

    Returns
    -------
    dict of unit key -> split name.
    """
    ratios = validate_ratios(ratios)
    names = sorted(ratios)
    by_stratum: dict[tuple, list[Unit]] = defaultdict(list)
    for unit in units:
        by_stratum[unit.stratum].append(unit)

    assignment: dict[str, str] = {}
    seen_items = 0
    placed_overall: Counter = Counter()
    for stratum in sorted(by_stratum, key=repr):
        members = by_stratum[stratum]
        n_items = sum(u.size for u in members)
        seen_items += n_items
        # On equal fractions a stratum's leftover item goes to the split furthest behind
        # its share of all items so far, so many small strata keep the totals balanced
        # too; remaining ties are broken by the seed.
        tiebreak = sorted(
            names,
            key=lambda s, st=stratum: (
                -(ratios[s] * seen_items - placed_overall[s]),
                _digest(seed, "tie", repr(st), s),
            ),
        )
        targets = largest_remainder(n_items, ratios, tiebreak)
        rank = {name: i for i, name in enumerate(tiebreak)}
        # Largest groups first (they are the hardest to fit), then a seeded shuffle.
        ordered = sorted(members, key=lambda u: (-u.size, _digest(seed, u.key)))
        placed = Counter()
        for unit in ordered:
            # The split with the largest room left; a split whose share is 0 gets nothing.
            best = max(
                (s for s in names if ratios[s] > 0),
                key=lambda s: (targets[s] - placed[s], -rank[s]),
            )
            assignment[unit.key] = best
            placed[best] += unit.size
        placed_overall.update(placed)
    return assignment


def majority(values: Sequence[Hashable]) -> Hashable:
    """The most common value; ties go to the smallest ``repr`` (deterministic)."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], repr(v)))
