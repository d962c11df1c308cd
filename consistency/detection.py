"""Ambiguity detection: from labels to flags an SME should look at (pure; no Django).

Input is one :class:`LabelData` (long arrays: one entry per current label) plus a dict of
thresholds; output is a list of plain flag dicts, ranked by impact::

    {kind, impact, suggested_action, summary, evidence: {...},
     items: [item keys], classes: [class keys], labeler: name | None,
     slice: {key, value} | None}

Definitions used by every detector
----------------------------------
* **Leave-one-out (LOO) consensus** of a label: the strict majority value of the *other*
  labels on the same item (undefined on a tie or when the item has no other label). A
  label *deviates* when it differs from its LOO consensus. Attributing confusion to the
  deviating labeler (not to both ends of a disagreeing pair) is what separates "many
  labelers mix these classes up" from "one labeler has a habit".
* **Confusion share** of a class pair (c, k): ``2 o_ck / (n_c + n_k)`` with Krippendorff's
  coincidences ``o_ck = sum_i n_ic n_ik / (m_i - 1)`` and marginals ``n_c``: the share of
  all pairings of a c-or-k label that pair it with the other class.
* **Impact** ranks flags by "items affected x disagreement", in items:
  item_disagreement ``1 - majority share``; merge_classes ``items holding both classes x
  confusion share``; borderline ``items x mean minority share``; unclear_slice
  ``slice items x alpha gap``; labeler ``decided labels x agreement gap`` (or the number
  of habitual / drifted labels when larger).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from consistency.metrics import slice_summary_from_counts

DEFAULT_THRESHOLDS: dict = {
    # item_disagreement
    "item_majority_share_below": 0.67,
    "item_entropy_above": 1.0,  # bits; a 3-way split of 3 labels has log2(3) = 1.58
    "item_max_flags": 200,
    # merge_classes
    "merge_min_confusion_share": 0.15,
    "merge_min_symmetry": 0.5,
    "merge_min_labelers": 3,
    "merge_max_top_labeler_share": 0.5,
    "merge_min_deviations": 5,
    # borderline
    "borderline_min_split": 0.3,
    "borderline_min_pair_share": 0.1,
    # unclear_slice
    "slice_alpha_gap": 0.15,
    "slice_min_items": 10,
    "slice_n_bootstrap": 200,
    # labeler
    "labeler_agreement_z": -2.0,
    "labeler_min_labels": 20,
    "labeler_habit_share": 0.5,
    "labeler_habit_min_items": 5,
    "labeler_drift_drop": 0.15,
    "labeler_drift_z": 2.5,
    "labeler_drift_min_labels": 10,
    # all
    "max_examples": 12,
    "flag_max_items": 1000,  # items attached to one group flag (most split first)
}

NEGATIVE_CLASS_NAMES = ("no_defect", "none", "negative", "normal", "ok", "clean", "no_finding")


def threshold(thresholds: Mapping | None, key: str):
    """``thresholds[key]`` if set (and not None), else the default."""
    if thresholds is not None and thresholds.get(key) is not None:
        return thresholds.get(key)
    return DEFAULT_THRESHOLDS[key]


@dataclass(frozen=True, eq=False)
class LabelData:
    """Current labels of a project, factorized.

    Attributes
    ----------
    items, labelers, values : ndarray of int64, shape (N,)
        Item code (into ``item_keys``), labeler code (into ``labeler_names``) and class
        code (into ``classes``) of each label. Merges are applied by the caller.
    classes : list of str
        Class keys (the active, unmerged classes).
    item_keys, labeler_names : list
        What the codes stand for (item keys are returned in flags as given).
    times : ndarray of float64, shape (N,), optional
        When each label was given (any monotone unit, e.g. epoch seconds).
    item_slices : dict {metadata key: sequence of length n_items}
        Slice value per item code (None: missing).
    item_numbers : dict {name: sequence of float of length n_items}
        Optional numeric item properties shown as slice evidence (e.g. mean brightness).
    negative_class, borderline_class : str, optional
        "No defect"-like class and the project's borderline class, if any.
    class_ranks : list of int or None, optional
        Rank per class (ordinal order); with ``ordinal`` adjacent ranks count as a
        borderline pair rather than a merge candidate.
    resolved_items : frozenset of item codes
        Items an SME has decided already: never flagged again at item level.
    """

    items: np.ndarray
    labelers: np.ndarray
    values: np.ndarray
    classes: list
    item_keys: list
    labeler_names: list
    times: np.ndarray | None = None
    item_slices: dict = field(default_factory=dict)
    item_numbers: dict = field(default_factory=dict)
    negative_class: str | None = None
    borderline_class: str | None = None
    class_ranks: list | None = None
    ordinal: bool = False
    resolved_items: frozenset = frozenset()

    def __post_init__(self):
        n = len(self.items)
        for name in ("labelers", "values"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, items {n}")
        if self.times is not None and len(self.times) != n:
            raise ValueError(f"times has {len(self.times)} entries, items {n}")
        if n and int(np.max(self.values)) >= len(self.classes):
            raise ValueError("a value code is beyond the class list")
        if n and int(np.max(self.items)) >= len(self.item_keys):
            raise ValueError("an item code is beyond item_keys")
        for key, vals in self.item_slices.items():
            if len(vals) != len(self.item_keys):
                raise ValueError(f"slice {key!r} has {len(vals)} values for {len(self.item_keys)}")

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        classes: Sequence[str],
        item_col: str = "item",
        labeler_col: str = "labeler",
        value_col: str = "value",
        time_col: str | None = None,
        item_slices: Mapping[str, Mapping] | None = None,
        item_numbers: Mapping[str, Mapping] | None = None,
        negative_class: str | None = None,
        borderline_class: str | None = None,
        class_ranks: Sequence | None = None,
        ordinal: bool = False,
        resolved_items: Sequence = (),
    ) -> LabelData:
        """Factorize a long frame (one row per label; values are class keys).

        ``item_slices`` / ``item_numbers`` map a metadata key to ``{item key: value}``.
        ``negative_class`` defaults to a class named like "no_defect" (see
        ``NEGATIVE_CLASS_NAMES``) when one exists.
        """
        classes = [str(c) for c in classes]
        unknown = sorted(set(df[value_col].astype(str)) - set(classes))
        if unknown:
            raise ValueError(f"values not in classes: {unknown[:5]}")
        item_codes, item_keys = pd.factorize(df[item_col], sort=True)
        lab_codes, lab_names = pd.factorize(df[labeler_col].astype(str), sort=True)
        codes = pd.Categorical(df[value_col].astype(str), categories=classes).codes
        keys = list(item_keys)
        times = None
        if time_col is not None:
            t = df[time_col]
            if len(t) and (
                pd.api.types.is_datetime64_any_dtype(t) or hasattr(t.iloc[0], "timestamp")
            ):
                epoch = pd.Timestamp(0, tz="UTC")
                times = ((pd.to_datetime(t, utc=True) - epoch) / pd.Timedelta(seconds=1)).to_numpy(
                    dtype=np.float64
                )
            else:
                times = t.to_numpy(dtype=np.float64)
        slices = {k: [m.get(i) for i in keys] for k, m in (item_slices or {}).items()}
        numbers = {k: [m.get(i) for i in keys] for k, m in (item_numbers or {}).items()}
        if negative_class is None:
            negative_class = guess_negative_class(classes)
        resolved = {keys.index(i) for i in resolved_items if i in set(keys)}
        return cls(
            items=np.asarray(item_codes, dtype=np.int64),
            labelers=np.asarray(lab_codes, dtype=np.int64),
            values=np.asarray(codes, dtype=np.int64),
            classes=classes,
            item_keys=keys,
            labeler_names=[str(x) for x in lab_names],
            times=times,
            item_slices=slices,
            item_numbers=numbers,
            negative_class=negative_class,
            borderline_class=borderline_class,
            class_ranks=list(class_ranks) if class_ranks is not None else None,
            ordinal=ordinal,
            resolved_items=frozenset(resolved),
        )


def guess_negative_class(classes: Sequence[str]) -> str | None:
    """The class that means "nothing there", by name (``no_defect``, ``none``, ...)."""
    for c in classes:
        if str(c).lower() in NEGATIVE_CLASS_NAMES:
            return str(c)
    return None


# --------------------------------------------------------------------------- helpers


# Labels per block when the leave-one-out consensus is computed (bounded memory).
LOO_BLOCK = 1_000_000


class _Prepared:
    """Per-item counts, LOO consensus and coincidences computed once for all detectors."""

    def __init__(self, data: LabelData):
        self.data = data
        self.K = len(data.classes)
        self.n_items = len(data.item_keys)
        self.L = len(data.labeler_names)
        K = max(self.K, 1)
        it, val = data.items, data.values
        self.counts = np.bincount(it * K + val, minlength=self.n_items * K).reshape(self.n_items, K)
        self.m = self.counts.sum(axis=1)
        # LOO consensus per label, in blocks of labels: the (labels, K) count rows of a
        # whole project would be 480 MB at 10M labels and 6 classes.
        self.loo = np.full(it.size, -1, dtype=np.int32)  # class codes, -1: none
        for lo in range(0, it.size, LOO_BLOCK):
            part = slice(lo, lo + LOO_BLOCK)
            others = self.counts[it[part]]  # a copy (fancy indexing)
            others[np.arange(others.shape[0]), val[part]] -= 1
            top = others.max(axis=1)
            n_top = (others == top[:, None]).sum(axis=1)
            self.loo[part] = np.where((top > 0) & (n_top == 1), others.argmax(axis=1), -1)
        self._rows_by_item: tuple[np.ndarray, np.ndarray] | None = None
        self.decided = self.loo >= 0
        self.agree = self.decided & (self.loo == val)
        # coincidences
        pairable = self.m >= 2
        c = self.counts[pairable].astype(np.float64)
        w = 1.0 / (self.m[pairable] - 1.0)
        o = (c * w[:, None]).T @ c
        o[np.diag_indices(K)] -= (c * w[:, None]).sum(axis=0)
        self.coinc = o
        self.n_c = o.sum(axis=1)
        # deviations: dev[l, said, consensus]
        d = self.decided & ~self.agree
        self.dev = np.zeros((max(self.L, 1), K, K), dtype=np.int64)
        np.add.at(self.dev, (data.labelers[d], val[d], self.loo[d]), 1)
        self.code = {c: i for i, c in enumerate(data.classes)}

    def pair_share(self, c: int, k: int) -> float:
        denom = self.n_c[c] + self.n_c[k]
        return float(2 * self.coinc[c, k] / denom) if denom > 0 else 0.0

    def pair_attribution(self, c: int, k: int) -> dict:
        """Deviations between c and k, attributed to the deviating labeler."""
        c_when_k = self.dev[:, c, k]
        k_when_c = self.dev[:, k, c]
        mass = c_when_k + k_when_c
        total = int(mass.sum())
        involved = np.flatnonzero(mass > 0)
        top = int(mass.max()) if total else 0
        return {
            "n_deviations": total,
            "n_labelers": int(involved.size),
            "top_labeler": self.data.labeler_names[int(mass.argmax())] if total else None,
            "top_labeler_share": round(top / total, 4) if total else None,
            "symmetry": (
                round(min(c_when_k.sum(), k_when_c.sum()) / max(c_when_k.sum(), k_when_c.sum()), 4)
                if total
                else None
            ),
            "per_labeler": {
                self.data.labeler_names[i]: {
                    f"{self.data.classes[c]}_where_consensus_{self.data.classes[k]}": int(
                        c_when_k[i]
                    ),
                    f"{self.data.classes[k]}_where_consensus_{self.data.classes[c]}": int(
                        k_when_c[i]
                    ),
                }
                for i in involved
            },
        }

    def labels_of(self, item_code: int) -> list[dict]:
        """The item's labels in row order. The rows grouped by item are built once (a
        scan of every label per call cost minutes for a few hundred examples at 10M)."""
        if self._rows_by_item is None:
            order = np.argsort(self.data.items, kind="stable")
            starts = np.searchsorted(self.data.items[order], np.arange(self.n_items + 1))
            self._rows_by_item = (order, starts)
        order, starts = self._rows_by_item
        sel = order[starts[item_code] : starts[item_code + 1]]
        return [
            {
                "labeler": self.data.labeler_names[int(self.data.labelers[j])],
                "value": self.data.classes[int(self.data.values[j])],
            }
            for j in sel
        ]


def _r(x, nd=4):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(x, nd)


def _entropy_bits(counts: np.ndarray) -> np.ndarray:
    m = counts.sum(axis=1, keepdims=True).astype(np.float64)
    p = np.divide(counts, m, out=np.zeros(counts.shape), where=m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return h + 0.0


def _is_borderline_pair(p: _Prepared, c: int, k: int) -> bool:
    data = p.data
    neg = p.code.get(data.negative_class) if data.negative_class else None
    if neg is not None and neg in (c, k):
        return True
    if data.ordinal and data.class_ranks is not None:
        rc, rk = data.class_ranks[c], data.class_ranks[k]
        if rc is not None and rk is not None and abs(rc - rk) == 1:
            return True
    return False


def _candidate_pairs(p: _Prepared):
    bl = p.code.get(p.data.borderline_class) if p.data.borderline_class else None
    for c in range(p.K):
        for k in range(c + 1, p.K):
            if bl is not None and bl in (c, k):
                continue
            yield c, k


# --------------------------------------------------------------------------- detectors


def detect_merge_classes(p: _Prepared, thresholds: Mapping | None = None) -> list[dict]:
    """Class pairs that several labelers use interchangeably → suggest merging.

    A pair (c, k) (neither the borderline class; not a "no defect" pair nor, on an
    ordinal scale, adjacent ranks — those are borderline pairs) is suggested when its
    confusion share is at least ``merge_min_confusion_share``, at least
    ``merge_min_deviations`` labels deviate between them, the deviations come from at least
    ``merge_min_labelers`` distinct labelers with no single labeler holding
    ``merge_max_top_labeler_share`` or more of them, and both directions occur
    (``min / max >= merge_min_symmetry``). One labeler's habit fails the last two tests.
    """
    data = p.data
    out = []
    max_ex = int(threshold(thresholds, "max_examples"))
    for c, k in _candidate_pairs(p):
        if _is_borderline_pair(p, c, k):
            continue
        share = p.pair_share(c, k)
        att = p.pair_attribution(c, k)
        if (
            share < threshold(thresholds, "merge_min_confusion_share")
            or att["n_deviations"] < threshold(thresholds, "merge_min_deviations")
            or att["n_labelers"] < threshold(thresholds, "merge_min_labelers")
            or att["top_labeler_share"] >= threshold(thresholds, "merge_max_top_labeler_share")
            or (att["symmetry"] or 0.0) < threshold(thresholds, "merge_min_symmetry")
        ):
            continue
        both = np.flatnonzero((p.counts[:, c] > 0) & (p.counts[:, k] > 0))
        # Which labelers pick which: share of c among their c/k labels on those items.
        on = np.isin(data.items, both) & np.isin(data.values, [c, k])
        prefer = {}
        for lab in np.unique(data.labelers[on]):
            sel = on & (data.labelers == lab)
            n = int(sel.sum())
            prefer[data.labeler_names[int(lab)]] = {
                data.classes[c]: int((data.values[sel] == c).sum()),
                data.classes[k]: n - int((data.values[sel] == c).sum()),
            }
        balance = np.minimum(p.counts[both, c], p.counts[both, k]) / p.m[both]
        examples = both[np.argsort(-balance, kind="stable")][:max_ex]
        into = c if p.n_c[c] >= p.n_c[k] else k
        cname, kname = data.classes[c], data.classes[k]
        out.append(
            {
                "kind": "merge_classes",
                "impact": round(float(both.size * share), 4),
                "suggested_action": "merge_classes",
                "summary": (
                    f"{cname} and {kname} are used interchangeably: {share:.0%} of their "
                    f"pairings are with each other, on {both.size} items, by "
                    f"{att['n_labelers']} labelers"
                ),
                "evidence": {
                    "confusion_share": _r(share),
                    "coincidences": _r(float(p.coinc[c, k]), 3),
                    "support": {cname: int(p.n_c[c]), kname: int(p.n_c[k])},
                    "n_items_with_both": int(both.size),
                    **att,
                    "labelers_pick": prefer,
                    "suggested_into": data.classes[into],
                    "example_items": [data.item_keys[i] for i in examples],
                    "example_labels": {
                        str(data.item_keys[i]): p.labels_of(int(i)) for i in examples
                    },
                },
                "items": [data.item_keys[i] for i in examples],
                "classes": [cname, kname],
                "labeler": None,
                "slice": None,
            }
        )
    return out


def detect_borderline(p: _Prepared, thresholds: Mapping | None = None) -> list[dict]:
    """Items split between "no defect" and a defect class (or adjacent ordinal classes),
    across labelers → suggest the borderline label.

    A pair qualifies like a merge pair, minus the symmetry test (faint marks are read
    as "nothing" more often than the reverse) and with ``borderline_min_pair_share`` as
    its share threshold. Its items are those holding labels of both classes (or one of
    them and the borderline class, and nothing else) where the minority side has at
    least ``borderline_min_split`` of those labels. One flag per pair; without a
    borderline class in the project the suggestion is to add one.
    """
    data = p.data
    out = []
    bl = p.code.get(data.borderline_class) if data.borderline_class else None
    resolved = np.zeros(p.n_items, dtype=bool)
    resolved[list(data.resolved_items)] = True
    max_ex = int(threshold(thresholds, "max_examples"))
    taken = np.zeros(p.n_items, dtype=bool)  # items a pair flag holds already
    for c, k in _candidate_pairs(p):
        if not _is_borderline_pair(p, c, k):
            continue
        share = p.pair_share(c, k)
        att = p.pair_attribution(c, k)
        if (
            share < threshold(thresholds, "borderline_min_pair_share")
            or att["n_deviations"] < threshold(thresholds, "merge_min_deviations")
            or att["n_labelers"] < threshold(thresholds, "merge_min_labelers")
            or att["top_labeler_share"] >= threshold(thresholds, "merge_max_top_labeler_share")
        ):
            continue
        nc, nk = p.counts[:, c], p.counts[:, k]
        nb = p.counts[:, bl] if bl is not None else np.zeros(p.n_items, dtype=np.int64)
        inside = nc + nk + nb
        clean = inside == p.m  # nothing outside the pair and the borderline class
        sides = np.stack([nc, nk, nb], axis=1)
        n_sides = (sides > 0).sum(axis=1)
        minority = np.where(inside > 0, (inside - sides.max(axis=1)) / np.maximum(inside, 1), 0)
        has_pair = (nc > 0) & (nk > 0)
        sel = (
            (p.m >= 2)
            & ~resolved
            & (n_sides >= 2)
            & (has_pair | clean)
            & (minority >= threshold(thresholds, "borderline_min_split"))
        )
        items = np.flatnonzero(sel)
        if items.size == 0:
            continue
        taken[items] = True
        order = items[np.argsort(-minority[items], kind="stable")]
        cname, kname = data.classes[c], data.classes[k]
        mean_split = float(minority[items].mean())
        action = "mark_borderline" if bl is not None else "add_borderline_class"
        out.append(
            {
                "kind": "borderline",
                "impact": round(float(items.size * mean_split), 4),
                "suggested_action": action,
                "summary": (
                    f"{items.size} items split between {cname} and {kname} across labelers"
                    + (
                        f": mark them {data.borderline_class}"
                        if bl is not None
                        else ": the project has no borderline class; consider adding one"
                    )
                ),
                "evidence": {
                    "pair": [cname, kname],
                    "confusion_share": _r(share),
                    **att,
                    "n_items": int(items.size),
                    "mean_minority_share": _r(mean_split),
                    "borderline_class": data.borderline_class,
                    "has_borderline_class": bl is not None,
                    "item_splits": {  # the 100 most split
                        str(data.item_keys[i]): {
                            cname: int(nc[i]),
                            kname: int(nk[i]),
                            **({data.borderline_class: int(nb[i])} if bl is not None else {}),
                        }
                        for i in order[:100]
                    },
                    "example_items": [data.item_keys[i] for i in order[:max_ex]],
                },
                "items": [
                    data.item_keys[i] for i in order[: int(threshold(thresholds, "flag_max_items"))]
                ],
                "classes": [cname, kname] + ([data.borderline_class] if bl is not None else []),
                "labeler": None,
                "slice": None,
            }
        )
    defect_view = _detect_defect_view(p, thresholds, resolved=resolved, taken=taken)
    return out + ([defect_view] if defect_view else [])


def _detect_defect_view(
    p: _Prepared, thresholds: Mapping | None, *, resolved: np.ndarray, taken: np.ndarray
) -> dict | None:
    """The "no defect" vs "any defect" split the pairwise rule misses.

    With a "no defect" class, all the other classes (but the borderline class) are
    pooled into one "defect" side. The pooled pair qualifies like a borderline pair
    (share ``borderline_min_pair_share``; ``merge_min_deviations`` deviations from at
    least ``merge_min_labelers`` labelers, none holding ``merge_max_top_labeler_share``),
    and its items are those holding "no defect" and at least one defect label whose
    minority side (no defect / defect / borderline) has at least ``borderline_min_split``
    of the labels, however the defect labels split among themselves (``ok`` /
    ``deep_scratch`` / ``shallow_scratch``). Items a pair flag holds already are left out.
    One flag, or ``None``.
    """
    data = p.data
    neg = p.code.get(data.negative_class) if data.negative_class else None
    if neg is None:
        return None
    bl = p.code.get(data.borderline_class) if data.borderline_class else None
    defects = [j for j in range(p.K) if j not in (neg, bl)]
    if not defects:
        return None
    # pooled coincidences and deviations between "no defect" and every defect class
    o_nd = float(p.coinc[neg, defects].sum())
    denom = float(p.n_c[neg] + p.n_c[defects].sum())
    share = 2 * o_nd / denom if denom > 0 else 0.0
    neg_when_d = p.dev[:, neg, defects].sum(axis=1)
    d_when_neg = p.dev[:, defects, neg].sum(axis=1)
    mass = neg_when_d + d_when_neg
    total = int(mass.sum())
    top_share = float(mass.max()) / total if total else 1.0
    if (
        share < threshold(thresholds, "borderline_min_pair_share")
        or total < threshold(thresholds, "merge_min_deviations")
        or int((mass > 0).sum()) < threshold(thresholds, "merge_min_labelers")
        or top_share >= threshold(thresholds, "merge_max_top_labeler_share")
    ):
        return None
    n_neg = p.counts[:, neg]
    n_def = p.counts[:, defects].sum(axis=1)
    nb = p.counts[:, bl] if bl is not None else np.zeros(p.n_items, dtype=np.int64)
    sides = np.stack([n_neg, n_def, nb], axis=1)
    inside = sides.sum(axis=1)
    minority = np.where(inside > 0, (inside - sides.max(axis=1)) / np.maximum(inside, 1), 0)
    sel = (
        (p.m >= 2)
        & ~resolved
        & ~taken
        & (n_neg > 0)
        & (n_def > 0)
        & (minority >= threshold(thresholds, "borderline_min_split"))
    )
    items = np.flatnonzero(sel)
    if items.size == 0:
        return None
    order = items[np.argsort(-minority[items], kind="stable")]
    used = [j for j in defects if p.counts[items, j].sum() > 0]
    nname = data.classes[neg]
    mean_split = float(minority[items].mean())
    max_ex = int(threshold(thresholds, "max_examples"))
    return {
        "kind": "borderline",
        "impact": round(float(items.size * mean_split), 4),
        "suggested_action": "mark_borderline" if bl is not None else "add_borderline_class",
        "summary": (
            f"{items.size} items split between {nname} and a defect class across labelers"
            + (
                f": mark them {data.borderline_class}"
                if bl is not None
                else ": the project has no borderline class; consider adding one"
            )
        ),
        "evidence": {
            "view": "defect",
            "pair": [nname, "any defect"],
            "defect_classes": [data.classes[j] for j in used],
            "confusion_share": _r(share),
            "n_deviations": total,
            "n_labelers": int((mass > 0).sum()),
            "top_labeler": data.labeler_names[int(mass.argmax())],
            "top_labeler_share": _r(top_share),
            "n_items": int(items.size),
            "mean_minority_share": _r(mean_split),
            "borderline_class": data.borderline_class,
            "has_borderline_class": bl is not None,
            "item_splits": {  # the 100 most split
                str(data.item_keys[i]): {
                    data.classes[j]: int(p.counts[i, j])
                    for j in [neg, *used] + ([bl] if bl is not None else [])
                    if p.counts[i, j] > 0
                }
                for i in order[:100]
            },
            "example_items": [data.item_keys[i] for i in order[:max_ex]],
        },
        "items": [data.item_keys[i] for i in order[: int(threshold(thresholds, "flag_max_items"))]],
        "classes": [nname]
        + [data.classes[j] for j in used]
        + ([data.borderline_class] if bl is not None else []),
        "labeler": None,
        "slice": None,
    }


def detect_item_disagreement(
    p: _Prepared,
    thresholds: Mapping | None = None,
    *,
    explained_items: Mapping[int, str] | None = None,
) -> list[dict]:
    """Items whose labels split (majority share below ``item_majority_share_below``, a
    tie at the top, or entropy above ``item_entropy_above`` bits) → send to an SME.

    Items an SME resolved already, and items whose split is already the subject of a
    merge or borderline flag (``explained_items``: item code → reason), are left out so
    one question is asked once.
    """
    data = p.data
    explained = explained_items or {}
    top = p.counts.max(axis=1) if p.n_items else np.zeros(0)
    share = np.divide(top, p.m, out=np.ones(p.n_items), where=p.m > 0)
    tie = (p.counts == top[:, None]).sum(axis=1) > 1
    entropy = _entropy_bits(p.counts)
    split = (
        (share < threshold(thresholds, "item_majority_share_below"))
        | tie
        | (entropy > threshold(thresholds, "item_entropy_above"))
    )
    cand = np.flatnonzero((p.m >= 2) & split)
    cand = [i for i in cand if i not in data.resolved_items and i not in explained]
    cand.sort(key=lambda i: (-(1 - share[i]), -entropy[i], i))
    out = []
    for i in cand[: int(threshold(thresholds, "item_max_flags"))]:
        dist = {data.classes[c]: int(p.counts[i, c]) for c in np.flatnonzero(p.counts[i])}
        out.append(
            {
                "kind": "item_disagreement",
                "impact": round(float(1 - share[i]), 4),
                "suggested_action": "set_label",
                "summary": (
                    "labels split "
                    + " / ".join(f"{n} {c}" for c, n in sorted(dist.items(), key=lambda x: -x[1]))
                ),
                "evidence": {
                    "distribution": dist,
                    "majority_share": _r(float(share[i])),
                    "entropy_bits": _r(float(entropy[i])),
                    "tie": bool(tie[i]),
                    "n_labels": int(p.m[i]),
                    "labels": p.labels_of(int(i)),
                },
                "items": [data.item_keys[i]],
                "classes": sorted(dist, key=lambda c: -dist[c]),
                "labeler": None,
                "slice": None,
            }
        )
    return out


INPUT_SLICE_KEYS = ("camera", "device", "camera_settings", "phone_model", "line", "factory")


def detect_unclear_slices(p: _Prepared, thresholds: Mapping | None = None) -> list[dict]:
    """Metadata slices whose agreement is far below the rest → clarify the guideline or
    fix the input.

    For every slice value with at least ``slice_min_items`` items (and as many outside
    it), nominal alpha with a bootstrap CI is computed on the slice and on the rest. A
    slice is flagged when ``rest alpha - slice alpha >= slice_alpha_gap`` *and* the upper
    end of the slice's CI is below the rest's point estimate. Smaller slices are tested
    first; a larger slice that contains flagged ones is tested again without their
    items, and dropped when what remains is not low (penang-b is low only because of
    cam-4).

    Each comparison reads the per-item class counts of the slice and of the rest
    (:func:`~consistency.metrics.slice_summary_from_counts`): the same figures as from
    the labels, at the cost of the items, so no per-label copy is made per slice value.
    """
    data = p.data
    if not data.item_slices or p.n_items == 0:
        return []
    min_items = int(threshold(thresholds, "slice_min_items"))
    gap_min = float(threshold(thresholds, "slice_alpha_gap"))
    n_boot = int(threshold(thresholds, "slice_n_bootstrap"))
    max_ex = int(threshold(thresholds, "max_examples"))
    present = p.m >= 1

    def compare(mask):
        inner = slice_summary_from_counts(p.counts[mask], n_bootstrap=n_boot, seed=0, gwet=False)
        rest = slice_summary_from_counts(
            p.counts[present & ~mask], n_bootstrap=0, seed=0, gwet=False
        )
        a, r = inner["krippendorff_alpha"], rest["krippendorff_alpha"]
        metric = "krippendorff_alpha"
        ci = inner["krippendorff_alpha_ci"]
        if a is None or r is None:
            a, r, ci = inner["percent_agreement"], rest["percent_agreement"], None
            metric = "percent_agreement"
        ok = a is not None and r is not None
        low = ok and (r - a) >= gap_min and (ci is None or ci[1] < r)
        return low, inner, rest, metric, a, r, ci

    candidates = []
    for key, values in data.item_slices.items():
        # Codes per item (one factorize per key), not an object array compared per value.
        codes, uniques = pd.factorize(
            pd.Series(values, dtype=object).map(lambda v: None if v is None else str(v))
        )
        by_text = {u: k for k, u in enumerate(uniques) if u != ""}
        for value in sorted(by_text):
            mask = (codes == by_text[value]) & present
            n = int(mask.sum())
            if n < min_items or int((present & ~mask).sum()) < min_items:
                continue
            candidates.append((n, key, value, mask))
    candidates.sort(key=lambda x: (x[0], x[1], x[2]))
    flagged_masks: list[tuple[np.ndarray, str]] = []
    out = []
    for n, key, value, mask in candidates:
        low, inner, rest, metric, a, r, ci = compare(mask)
        if not low:
            continue
        explained_by = None
        inside = [(m, name) for m, name in flagged_masks if (m & mask).any()]
        if inside:
            remaining = mask.copy()
            for m, _ in inside:
                remaining &= ~m
            if int(remaining.sum()) < min_items or not compare(remaining)[0]:
                continue  # low only because of a smaller flagged slice
            explained_by = [name for _, name in inside]
        flagged_masks.append((mask, f"{key}={value}"))
        items = np.flatnonzero(mask)
        # examples: the slice's most disputed items
        top = p.counts[items].max(axis=1) / np.maximum(p.m[items], 1)
        ex = items[np.argsort(top, kind="stable")][:max_ex]
        numbers = {}
        for name, col in data.item_numbers.items():
            arr = np.asarray([np.nan if x is None else float(x) for x in col])
            s_in, s_out = arr[mask], arr[present & ~mask]
            if np.isfinite(s_in).any() and np.isfinite(s_out).any():
                numbers[name] = {
                    "slice_mean": _r(float(np.nanmean(s_in)), 2),
                    "rest_mean": _r(float(np.nanmean(s_out)), 2),
                }
        is_input = key in INPUT_SLICE_KEYS
        gap = r - a
        out.append(
            {
                "kind": "unclear_slice",
                "impact": round(float(n * gap), 4),
                "suggested_action": "check_input" if is_input else "publish_guideline",
                "summary": (
                    f"{key}={value}: agreement "
                    f"({'α' if metric == 'krippendorff_alpha' else 'percent'}) {a:.2f} vs "
                    f"{r:.2f} elsewhere "
                    f"({n} items)"
                    + (
                        "; check the input (camera / capture settings) or clarify the guideline"
                        if is_input
                        else "; clarify the guideline for these items"
                    )
                ),
                "evidence": {
                    "metric": metric,
                    "slice": {
                        "n_items": inner["n_items"],
                        "value": _r(a),
                        "ci": [_r(x) for x in ci] if ci else None,
                        "percent_agreement": _r(inner["percent_agreement"]),
                        "hlp": _r(inner["hlp"]["value"]),
                    },
                    "rest": {
                        "n_items": rest["n_items"],
                        "value": _r(r),
                        "percent_agreement": _r(rest["percent_agreement"]),
                        "hlp": _r(rest["hlp"]["value"]),
                    },
                    "gap": _r(gap),
                    "contains_flagged_slices": explained_by,
                    "item_properties": numbers,
                    "example_items": [data.item_keys[i] for i in ex],
                },
                "items": [data.item_keys[i] for i in ex],
                "classes": [],
                "labeler": None,
                "slice": {"key": key, "value": value},
            }
        )
    return out


def _robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD), with the scale floored at 0.02 (2 points of
    agreement) so a tight group does not turn a small gap into a huge z."""
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    return (x - med) / max(mad, 0.02)


def detect_labelers(p: _Prepared, thresholds: Mapping | None = None) -> list[dict]:
    """Labelers to retrain: agreement outliers, systematic class habits, drift.

    * outlier: agreement with the LOO consensus has a robust z-score (vs all labelers
      with at least ``labeler_min_labels`` decided labels) at or below
      ``labeler_agreement_z``;
    * habit: on items whose LOO consensus is class c (at least
      ``labeler_habit_min_items``), the labeler gives one other class k at least
      ``labeler_habit_share`` of the time, and at least twice as often as the others do;
    * drift: with ``times``, labels after the 2/3 time quantile agree less than before by
      at least ``labeler_drift_drop`` more than the others' change over the same cut,
      with a two-proportion z of at least ``labeler_drift_z``.
    """
    data = p.data
    L = p.L
    lab = data.labelers
    n_dec = np.bincount(lab[p.decided], minlength=L)
    n_agree = np.bincount(lab[p.agree], minlength=L)
    agreement = np.divide(n_agree, n_dec, out=np.full(L, np.nan), where=n_dec > 0)
    eligible = n_dec >= int(threshold(thresholds, "labeler_min_labels"))
    z = np.full(L, np.nan)
    if eligible.sum() >= 3:
        z[eligible] = _robust_z(agreement[eligible])
    median = float(np.median(agreement[eligible])) if eligible.any() else None
    z_min = float(threshold(thresholds, "labeler_agreement_z"))
    max_ex = int(threshold(thresholds, "max_examples"))
    # confusion against consensus: conf[l, consensus, said]
    conf = np.zeros((max(L, 1), p.K, p.K), dtype=np.int64)
    d = p.decided
    np.add.at(conf, (lab[d], p.loo[d], data.values[d]), 1)
    all_conf = conf.sum(axis=0)
    habit_share = float(threshold(thresholds, "labeler_habit_share"))
    habit_min = int(threshold(thresholds, "labeler_habit_min_items"))
    drift = _drift(p, thresholds)
    out = []
    for li in range(L):
        reasons, habits = [], []
        if eligible[li] and np.isfinite(z[li]) and z[li] <= z_min:
            reasons.append("outlier")
        for c in range(p.K):
            n_c = int(conf[li, c].sum())
            if n_c < habit_min:
                continue
            row = conf[li, c].copy()
            row[c] = 0
            k = int(row.argmax())
            rate = row[k] / n_c
            others_n = int(all_conf[c].sum() - n_c)
            others_rate = (all_conf[c, k] - conf[li, c, k]) / others_n if others_n else 0.0
            if rate >= habit_share and rate >= 2 * others_rate:
                habits.append(
                    {
                        "consensus": data.classes[c],
                        "says": data.classes[k],
                        "n": int(row[k]),
                        "of": n_c,
                        "rate": _r(float(rate)),
                        "others_rate": _r(float(others_rate)),
                    }
                )
        if habits:
            reasons.append("class_habit")
        if li in drift:
            reasons.append("drift")
        if not reasons:
            continue
        name = data.labeler_names[li]
        gap = (median - agreement[li]) if median is not None and eligible[li] else 0.0
        impact = max(
            float(n_dec[li] * max(gap, 0.0)),
            float(sum(h["n"] for h in habits)),
            float(drift[li]["n_late"] * drift[li]["excess_drop"]) if li in drift else 0.0,
        )
        wrong = np.flatnonzero((lab == li) & p.decided & ~p.agree)
        ex = data.items[wrong][:max_ex]
        used = sorted(
            set(np.flatnonzero(conf[li].sum(axis=1))) | set(np.flatnonzero(conf[li].sum(axis=0)))
        )
        parts = []
        if "outlier" in reasons:
            parts.append(f"agrees with consensus {agreement[li]:.0%} (median {median:.0%})")
        for h in habits:
            parts.append(f"says {h['says']} for {h['rate']:.0%} of {h['consensus']} items")
        if "drift" in reasons:
            dr = drift[li]
            parts.append(f"agreement fell from {dr['early']:.0%} to {dr['late']:.0%}")
        out.append(
            {
                "kind": "labeler",
                "impact": round(impact, 4),
                "suggested_action": "retrain_labeler",
                "summary": f"{name}: " + "; ".join(parts) + " — consider retraining",
                "evidence": {
                    "reasons": reasons,
                    "agreement_with_consensus": _r(float(agreement[li])),
                    "median_agreement": _r(median),
                    "robust_z": _r(float(z[li])) if np.isfinite(z[li]) else None,
                    "n_decided": int(n_dec[li]),
                    "habits": habits,
                    "drift": drift.get(li),
                    "confusion_vs_consensus": {
                        "classes": [data.classes[c] for c in used],
                        "rows": "consensus (leave-one-out majority of the other labels)",
                        "columns": "this labeler's label",
                        "counts": conf[li][np.ix_(used, used)].tolist(),
                    },
                    "example_items": [data.item_keys[i] for i in ex],
                },
                "items": [data.item_keys[i] for i in ex],
                "classes": sorted({h["consensus"] for h in habits} | {h["says"] for h in habits}),
                "labeler": name,
                "slice": None,
            }
        )
    return out


def _drift(p: _Prepared, thresholds) -> dict[int, dict]:
    data = p.data
    if data.times is None or p.L < 2 or not p.decided.any():
        return {}
    t = np.asarray(data.times, dtype=np.float64)
    cut = float(np.quantile(t[p.decided], 2 / 3))
    late = t >= cut
    lab = data.labelers
    drop_min = float(threshold(thresholds, "labeler_drift_drop"))
    z_min = float(threshold(thresholds, "labeler_drift_z"))
    n_min = int(threshold(thresholds, "labeler_drift_min_labels"))
    out = {}
    for li in range(p.L):
        mine = (lab == li) & p.decided
        e, lt = mine & ~late, mine & late
        ne, nl = int(e.sum()), int(lt.sum())
        if ne < n_min or nl < n_min:
            continue
        oe, ol = ~(lab == li) & p.decided & ~late, ~(lab == li) & p.decided & late
        if not oe.any() or not ol.any():
            continue
        ae, al = p.agree[e].mean(), p.agree[lt].mean()
        change_others = p.agree[oe].mean() - p.agree[ol].mean()
        excess = (ae - al) - change_others
        pooled = p.agree[mine].mean()
        se = math.sqrt(max(pooled * (1 - pooled), 1e-9) * (1 / ne + 1 / nl))
        zz = (ae - al) / se
        if excess >= drop_min and zz >= z_min:
            out[li] = {
                "early": _r(float(ae)),
                "late": _r(float(al)),
                "n_early": ne,
                "n_late": nl,
                "others_change": _r(float(-change_others)),
                "excess_drop": _r(float(excess)),
                "z": _r(float(zz)),
                "late_from": float(cut),
            }
    return out


# --------------------------------------------------------------------------- all


ALL_KINDS = frozenset(
    {"merge_classes", "borderline", "item_disagreement", "unclear_slice", "labeler"}
)


def detect_flags(
    data: LabelData,
    thresholds: Mapping | None = None,
    *,
    results: Mapping | None = None,
    kinds: frozenset | set | None = None,
) -> list[dict]:
    """Every flag for ``data``, ranked by impact (highest first).

    Parameters
    ----------
    data : LabelData
    thresholds : mapping, optional
        Overrides of ``DEFAULT_THRESHOLDS`` (a project's ``flag_thresholds``).
    results : mapping, optional
        The agreement run's results; its overall alpha is copied into merge evidence.
    kinds : set of str, optional
        Only these kinds of flag (default ``ALL_KINDS``). Values that are not classes
        (transcripts coded per item) only support ``item_disagreement`` and ``labeler``
        (with ``labeler_habit_share`` above 1 so no "habit" is reported).

    Returns
    -------
    list of dict
        See the module docstring. Deterministic for the same input.
    """
    if len(data.items) == 0 or not data.classes:
        return []
    kinds = ALL_KINDS if kinds is None else frozenset(kinds)
    unknown = kinds - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown flag kinds: {sorted(unknown)}")
    p = _Prepared(data)
    merges = detect_merge_classes(p, thresholds) if "merge_classes" in kinds else []
    borderline = detect_borderline(p, thresholds) if "borderline" in kinds else []
    labelers = detect_labelers(p, thresholds) if "labeler" in kinds else []
    explained: dict[int, str] = {}
    code = {k: i for i, k in enumerate(data.item_keys)}
    for f in borderline:
        for key in f["items"]:
            explained[code[key]] = "borderline"
    for f in merges:
        pair = [p.code[c] for c in f["classes"]]
        inside = np.isin(np.arange(p.K), pair)
        only_pair = (p.counts[:, ~inside].sum(axis=1) == 0) & (p.counts[:, pair] > 0).all(axis=1)
        for i in np.flatnonzero(only_pair):
            explained.setdefault(int(i), "merge_classes")
    items = (
        detect_item_disagreement(p, thresholds, explained_items=explained)
        if "item_disagreement" in kinds
        else []
    )
    slices = detect_unclear_slices(p, thresholds) if "unclear_slice" in kinds else []
    flags = merges + borderline + slices + labelers + items
    if results and isinstance(results.get("overall"), Mapping):
        for f in merges:
            f["evidence"]["run_alpha"] = results["overall"].get("krippendorff_alpha")
    flags.sort(key=lambda f: (-f["impact"], f["kind"], str(f["items"][:1])))
    return flags
