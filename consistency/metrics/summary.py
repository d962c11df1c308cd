"""The "Results of an agreement run" dictionary, computed from :class:`AgreementStats`.

Definitions used throughout (also stated in the docstrings of the functions):

* **percent agreement** (= pairwise HLP): for every item with >= 2 labels, the share
  of ordered pairs of labels (from different labelers) that agree; averaged over
  those items, each item weighted equally.
* **Fleiss' kappa** with a varying number of raters per item (Fleiss 1971 applied per
  item, as in e.g. Gwet's handbook): ``P_i = sum_j n_ij (n_ij - 1) / (m_i (m_i - 1))``
  for items with ``m_i >= 2``, ``Pbar`` their unweighted mean, ``p_j`` the share of
  class ``j`` among *all labels on those items*, ``P_e = sum_j p_j^2`` and
  ``kappa = (Pbar - P_e) / (1 - P_e)``.  With the same ``m`` on every item this is
  exactly statsmodels' ``fleiss_kappa``.
* **Cohen's kappa** (unweighted, also for ordinal data) for every pair of labelers,
  on the items both labeled.
* **Bootstrap**: the pairable items are resampled with replacement.  Items with the
  same multiset of values ("profile") contribute identically, so a replicate is
  drawn as multinomial counts over profiles (distributed exactly like counting a
  uniform resample of item indices) and D_o, D_e are recomputed from the weighted
  per-profile sums -- never from rows.  Percentile interval.
"""

from __future__ import annotations

import math

import numpy as np

from .alpha import (
    MAX_DENSE_VALUES,
    AgreementStats,
    AlphaEngine,
    _as_1d,
    _item_value_counts,
    _runs,
    build_profiles,
)
from .gwet import (
    PARADOX_RULE,
    gwet_ac,
    gwet_ac_bootstrap,
    gwet_weights,
    kappa_paradox,
    prevalence_bias_indices,
)

CONVENTION_MIN_SHARE = 0.2
CONVENTION_MIN_COINCIDENCE = 5.0
CONVENTION_MIN_LABELS = 5


def _num(x) -> float | None:
    """Plain float, or None for None / NaN / inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ci(reps: list, confidence: float) -> list | None:
    vals = np.asarray([r for r in reps if r is not None], dtype=np.float64)
    if vals.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(vals, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


class _Items:
    """Per-item view of labels sorted by (item, labeler)."""

    def __init__(self, item, labeler, value, n_values):
        self.item, self.labeler, self.value = item, labeler, value
        self.n_labels = int(item.size)
        starts = _runs(item)
        self.item_ids = item[starts]
        self.m = np.diff(np.append(starts, item.size)).astype(np.int64)
        self.n_items = int(starts.size)
        self.pos = np.repeat(np.arange(self.n_items), self.m)
        self.t_pos, self.t_val, self.t_n = _item_value_counts(
            self.pos, value, self.n_items, n_values
        )
        self.n_values = max(int(n_values), 1)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> _Items:
        """The item-level part of the view from per-item value counts (rows without a
        label dropped): the same ``t_pos, t_val, t_n``, ``m`` and ``n_items`` the labels
        would give, without per-label arrays (``item``, ``labeler``, ``value``, ``pos``
        and ``item_ids`` are None), which is all alpha, HLP without gold and Gwet read."""
        iv = cls.__new__(cls)
        m = counts.sum(axis=1)
        if not (m > 0).all():
            counts, m = counts[m > 0], m[m > 0]
        iv.item = iv.labeler = iv.value = iv.pos = iv.item_ids = None
        iv.n_items, iv.n_values = int(counts.shape[0]), max(int(counts.shape[1]), 1)
        iv.m = m.astype(np.int64, copy=False)
        iv.n_labels = int(iv.m.sum())
        t_pos, t_val = np.nonzero(counts)  # row-major: sorted by (item, value)
        iv.t_pos, iv.t_val = t_pos.astype(np.int64, copy=False), t_val.astype(np.int64, copy=False)
        iv.t_n = counts[t_pos, t_val].astype(np.int64, copy=False)
        return iv


def _validate_common(stats, n_bootstrap, confidence):
    if not isinstance(stats, AgreementStats):
        raise ValueError("stats must be an AgreementStats")
    if int(n_bootstrap) < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")


def _gold_arrays(gold, stats: AgreementStats):
    """Gold as (item codes (G,), metric values (G,)) or None."""
    if gold is None or len(gold) == 0:
        return None
    if isinstance(gold, dict):
        g_items = np.fromiter((int(k) for k in gold), dtype=np.int64, count=len(gold))
        g_vals = np.fromiter((float(v) for v in gold.values()), dtype=np.float64, count=len(gold))
    else:
        raise ValueError("gold must be a dict {item_code: class_code (or value)}")
    if stats.categorical and np.any((g_vals < 0) | (g_vals >= stats.n_values) | (g_vals % 1 != 0)):
        raise ValueError(f"gold class codes must be integers in 0..{stats.n_values - 1}")
    return g_items, g_vals


def _gold_per_label(iv: _Items, stats: AgreementStats, gold, gold_labeler=None):
    """(has_gold (N,), correct (N,)) for labels sorted like ``iv``.

    ``gold_labeler`` ``{item_code: labeler_code}``: the labeler whose annotation carries an
    item's gold; that label is not measured against itself (``has`` is False for it)."""
    has, correct = _gold_match(iv, stats, gold)
    if gold_labeler:
        own = np.fromiter(
            (gold_labeler.get(int(i), -1) for i in iv.item), dtype=np.int64, count=iv.item.size
        )
        mine = iv.labeler == own
        has, correct = has & ~mine, correct & ~mine
    return has, correct


def _gold_match(iv: _Items, stats: AgreementStats, gold):
    g_items, g_vals = gold
    top = int(max(g_items.max(), iv.item.max() if iv.item.size else 0)) + 1
    if top <= 4 * iv.item.size + 1_000_000:  # dense lookup by item code
        table = np.full(top, np.nan)
        table[g_items] = g_vals
        gv = table[iv.item]
        has = ~np.isnan(gv)
        label_metric = (
            iv.value.astype(np.float64) if stats.categorical else stats.value_points[iv.value]
        )
        return has, has & (label_metric == gv)
    order = np.argsort(g_items, kind="stable")
    g_items, g_vals = g_items[order], g_vals[order]
    idx = np.searchsorted(g_items, iv.item)
    idx_c = np.minimum(idx, max(g_items.size - 1, 0))
    has = (idx < g_items.size) & (g_items[idx_c] == iv.item)
    label_metric = (
        iv.value.astype(np.float64) if stats.categorical else stats.value_points[iv.value]
    )
    correct = has & (label_metric == g_vals[idx_c])
    return has, correct


def _alpha_and_hlp(iv: _Items, stats, gold_lab, *, n_bootstrap, seed, confidence):
    """Alpha (+CI), percent agreement, Fleiss and HLP (+CI) for one set of labels."""
    prof = build_profiles(iv.t_pos, iv.t_val, iv.t_n, iv.n_items, stats.n_values)
    eng = AlphaEngine(prof, stats.level, stats.value_points)
    freq = prof.freq.astype(np.float64)
    alpha, alpha_reason = eng.alpha(freq)
    pa = eng.percent_agreement(freq)
    alpha_reps, pa_reps = [], []
    if n_bootstrap and prof.freq.size:
        rng = np.random.default_rng(seed)
        total = int(prof.freq.sum())
        p = freq / total
        for _ in range(int(n_bootstrap)):
            w = rng.multinomial(total, p).astype(np.float64)
            alpha_reps.append(eng.alpha(w)[0] if alpha is not None else None)
            pa_reps.append(eng.percent_agreement(w))
    out = {
        "engine": eng,
        "prof": prof,
        "alpha": alpha,
        "alpha_reason": alpha_reason,
        "alpha_ci": _ci(alpha_reps, confidence) if alpha is not None else None,
        "percent_agreement": pa,
        "percent_agreement_ci": _ci(pa_reps, confidence) if pa is not None else None,
    }
    # HLP: both estimates where each can be computed; the headline is gold when any
    # label lies on a gold item (a reference outside the labelers), else pairwise.
    hlp: dict = {"reasons": {}}
    hlp["pairwise"] = {
        "value": pa if pa is not None else None,
        "n_items": int(prof.n_pairable_items) if pa is not None else 0,
    }
    hlp["gold"] = {"value": None, "n_items": 0}
    if gold_lab is not None and gold_lab[0].any():
        has, correct = gold_lab
        n_i = np.bincount(iv.pos[has], minlength=iv.n_items)
        c_i = np.bincount(iv.pos[has], weights=correct[has], minlength=iv.n_items)
        g = n_i > 0
        n_i, c_i = n_i[g], c_i[g].astype(np.int64)
        hlp["value"] = float(c_i.sum() / n_i.sum())
        hlp["method"] = "gold"
        hlp["n_items"] = int(g.sum())
        hlp["gold"] = {"value": hlp["value"], "n_items": hlp["n_items"]}
        hlp["weighting"] = "every label on a gold item counts once (label-weighted accuracy)"
        reps = []
        if n_bootstrap:
            base = int(n_i.max()) + 1
            _, first, cnt = np.unique(n_i * base + c_i, return_index=True, return_counts=True)
            gn, gc = n_i[first].astype(np.float64), c_i[first].astype(np.float64)
            rng = np.random.default_rng([seed, 1])
            tot = int(cnt.sum())
            for _ in range(int(n_bootstrap)):
                w = rng.multinomial(tot, cnt / tot)
                reps.append(float(np.dot(w, gc) / np.dot(w, gn)))
        hlp["ci"] = _ci(reps, confidence)
    else:
        hlp["value"] = pa
        hlp["method"] = "pairwise"
        hlp["n_items"] = prof.n_pairable_items
        hlp["weighting"] = (
            "per item: agreeing pairs of labels / pairs; mean over items with >= 2 labels, "
            "each item weighted equally"
        )
        hlp["ci"] = out["percent_agreement_ci"]
        if gold_lab is not None:
            hlp["reasons"]["gold"] = "no label on a gold item: pairwise agreement used"
        if pa is None:
            hlp["reasons"]["value"] = "no item has two or more labels"
    out["hlp"] = hlp
    return out


def _fleiss(eng: AlphaEngine, pa: float | None):
    if pa is None:
        return None, "no item has two or more labels"
    nc = eng.marginals(eng.prof.freq.astype(np.float64))
    p = nc / nc.sum()
    pe = float(np.dot(p, p))
    if pe >= 1.0:
        return None, "only one class used: chance agreement is 1"
    return (pa - pe) / (1.0 - pe), None


def _pairwise(stats: AgreementStats, iv: _Items):
    """Cohen's kappa matrix, n_shared matrix and per-labeler mean kappa."""
    L = stats.n_labelers
    kappa = np.full((L, L), np.nan)
    shared = np.zeros((L, L), dtype=np.int64)
    items_per_labeler = np.bincount(iv.labeler, minlength=L)
    shared[np.arange(L), np.arange(L)] = items_per_labeler
    a, b, va, vb, cnt = stats.pair_a, stats.pair_b, stats.pair_va, stats.pair_vb, stats.pair_n
    pid = a * max(L, 1) + b
    upid, inv = np.unique(pid, return_inverse=True)
    pa_, pb_ = np.divmod(upid, max(L, 1))
    n_ab = np.bincount(inv, weights=cnt, minlength=upid.size)
    shared[pa_, pb_] = n_ab.astype(np.int64)
    shared[pb_, pa_] = n_ab.astype(np.int64)
    if stats.categorical and upid.size:
        K = max(stats.n_values, 1)
        agree = np.bincount(inv, weights=cnt * (va == vb), minlength=upid.size)
        row = np.bincount(inv * K + va, weights=cnt, minlength=upid.size * K).reshape(-1, K)
        col = np.bincount(inv * K + vb, weights=cnt, minlength=upid.size * K).reshape(-1, K)
        po = agree / n_ab
        pe = (row * col).sum(axis=1) / (n_ab * n_ab)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)
        kappa[pa_, pb_] = k
        kappa[pb_, pa_] = k
    return kappa, shared


_LOO_BLOCK = 1 << 20  # labels per block when mapping labels to their (item, value) entry


def _loo_consensus(iv: _Items):
    """Per label: 1 agree / 0 disagree with the majority of the OTHER labels, -1 tie,
    -2 no other label.  Shape (N,), int8.

    The answer depends only on the label's (item, value) count and its item's counts, so
    it is decided once per (item, value) entry (T <= N) and then gathered per label in
    blocks: a few bytes per label instead of several int64 temporaries per label."""
    n = iv.item.size
    if iv.t_pos.size == 0:
        return np.full(n, -2, dtype=np.int8)
    tstart = _runs(iv.t_pos)
    t1 = np.maximum.reduceat(iv.t_n, tstart)
    c1 = np.add.reduceat((iv.t_n == t1[iv.t_pos]).astype(np.int64), tstart)
    t2 = np.maximum.reduceat(np.where(iv.t_n < t1[iv.t_pos], iv.t_n, 0), tstart)
    tp = iv.t_pos
    top = iv.t_n == t1[tp]
    entry = np.where(
        top,
        np.where(
            c1[tp] == 1,
            np.where(t1[tp] - 1 > t2[tp], 1, -1),  # own value leads alone: keeps or ties
            np.where(c1[tp] == 2, 0, -1),  # two-way tie at top: the other one wins
        ),
        np.where(c1[tp] == 1, 0, -1),  # own value not on top
    ).astype(np.int8)
    entry[iv.m[tp] < 2] = -2  # no other label on the item
    V = iv.n_values
    tkey = iv.t_pos * V + iv.t_val
    dense = iv.n_items * V <= 4 * n + 1_000_000
    if dense:  # entry index by (item, value), O(I V) int32
        table = np.zeros(iv.n_items * V, dtype=np.int32 if tkey.size < 2**31 else np.int64)
        table[tkey] = np.arange(tkey.size)
    res = np.empty(n, dtype=np.int8)
    for lo in range(0, n, _LOO_BLOCK):
        hi = min(lo + _LOO_BLOCK, n)
        lkey = iv.pos[lo:hi] * V + iv.value[lo:hi]
        res[lo:hi] = entry[table[lkey] if dense else np.searchsorted(tkey, lkey)]
    return res


def _conventions(eng, classes, iv, L, labeler_names):
    """Class pairs used interchangeably (large symmetric off-diagonal coincidence).

    A pair (c, k) is reported when at least ``CONVENTION_MIN_SHARE`` of the pairings of
    c-or-k values are c-vs-k (``2 o_ck / (n_c + n_k)``) and ``o_ck >= 5``.  Labelers
    are then grouped by the share of c among their c/k labels on items holding both
    (>= 2/3: prefer c, <= 1/3: prefer k; at least 5 such labels): two non-empty groups
    mean two conventions.
    """
    K = eng.V
    if K < 2 or K > MAX_DENSE_VALUES:
        return [], []
    o = eng.coincidences(eng.prof.freq.astype(np.float64))
    nc = o.sum(axis=1)
    found, warnings = [], []
    iu, ju = np.triu_indices(K, 1)
    share = np.zeros(iu.size)
    denom = nc[iu] + nc[ju]
    np.divide(2 * o[iu, ju], denom, out=share, where=denom > 0)
    for idx in np.argsort(-share, kind="stable"):
        c, k, q = int(iu[idx]), int(ju[idx]), float(share[idx])
        if q < CONVENTION_MIN_SHARE or o[c, k] < CONVENTION_MIN_COINCIDENCE:
            continue
        # per labeler: share of c among its c/k labels on items that hold both c and k
        both = np.zeros(iv.n_items, dtype=bool)
        has_c = np.zeros(iv.n_items, dtype=bool)
        has_c[iv.t_pos[iv.t_val == c]] = True
        both[iv.t_pos[iv.t_val == k]] = True
        both &= has_c
        on = both[iv.pos]
        n_c_lab = np.bincount(iv.labeler[on & (iv.value == c)], minlength=L)
        nck = n_c_lab + np.bincount(iv.labeler[on & (iv.value == k)], minlength=L)
        active = nck >= CONVENTION_MIN_LABELS
        s = np.divide(n_c_lab, nck, out=np.zeros(L), where=nck > 0)
        prefer_c = [labeler_names[i] for i in np.flatnonzero(active & (s >= 2 / 3))]
        prefer_k = [labeler_names[i] for i in np.flatnonzero(active & (s <= 1 / 3))]
        split = bool(prefer_c and prefer_k)
        entry = {
            "classes": [classes[c], classes[k]],
            "confusion_share": round(q, 4),
            "coincidences": round(float(o[c, k]), 4),
            "labelers_preferring": {classes[c]: prefer_c, classes[k]: prefer_k},
            "labelers_split": split,
        }
        found.append(entry)
        how = (
            f"labelers split between them ({len(prefer_c)} mostly use {classes[c]!r}, "
            f"{len(prefer_k)} mostly use {classes[k]!r})"
            if split
            else "used interchangeably"
        )
        warnings.append(
            f"classes {classes[c]!r} and {classes[k]!r}: {q:.0%} of their pairings are "
            f"{classes[c]!r}-vs-{classes[k]!r}; {how} -- possibly two labeling conventions"
        )
    return found, warnings


def _item_counts(stats: AgreementStats, iv: _Items) -> np.ndarray:
    """``counts[i, k]``: labels of value ``k`` on the ``i``-th item (shape (I, V))."""
    counts = np.zeros((iv.n_items, max(stats.n_values, 1)), dtype=np.int64)
    counts[iv.t_pos, iv.t_val] = iv.t_n
    return counts


def _gwet(
    stats: AgreementStats,
    iv: _Items,
    reasons: dict,
    *,
    n_bootstrap,
    seed,
    confidence,
    by_profile: bool = False,
) -> dict:
    """Gwet's AC1 (unweighted; nominal and ordinal runs) and AC2 (the level's weights;
    ordinal, interval and ratio runs) over the run's items, ``q`` = every value of the
    scale, with item-bootstrap intervals (``gwet_ac1_ci`` / ``gwet_ac2_ci``); a null one
    gets its entry in ``reasons``. ``by_profile``: the profile bootstrap
    (:func:`~consistency.metrics.gwet.gwet_ac_bootstrap`), which the run uses overall,
    per class and per slice."""
    out = {"gwet_ac1": None, "gwet_ac1_ci": None, "gwet_ac2": None, "gwet_ac2_ci": None}
    if stats.n_values > MAX_DENSE_VALUES:
        why = f"more than {MAX_DENSE_VALUES} distinct values: the weight matrix is too large"
        for key in out:
            reasons[key] = why
        return out
    counts = _item_counts(stats, iv)
    wanted = {}
    if stats.categorical:
        wanted["gwet_ac1"] = None
    else:
        reasons["gwet_ac1"] = f"AC1 is for nominal/ordinal data, not {stats.level}: see gwet_ac2"
        reasons["gwet_ac1_ci"] = "AC1 is undefined"
    if stats.level == "nominal":
        reasons["gwet_ac2"] = "AC2 weighs ordinal/interval/ratio scales; nominal runs use AC1"
        reasons["gwet_ac2_ci"] = "AC2 is undefined"
    else:
        wanted["gwet_ac2"] = gwet_weights(stats.value_points, stats.level)
    for key, weights in wanted.items():
        res = gwet_ac(counts, weights)
        out[key] = _num(res.value)
        if out[key] is None:
            reasons[key] = res.reason
            reasons[f"{key}_ci"] = f"{key} is undefined"
        elif n_bootstrap == 0:
            reasons[f"{key}_ci"] = "no bootstrap requested (n_bootstrap=0)"
        else:
            out[f"{key}_ci"] = gwet_ac_bootstrap(
                counts,
                weights,
                n_bootstrap=n_bootstrap,
                seed=seed,
                confidence=confidence,
                by_profile=by_profile,
            )
            if out[f"{key}_ci"] is None:
                reasons[f"{key}_ci"] = "no bootstrap replicate is defined"
    return out


def _pair_tables(stats: AgreementStats) -> np.ndarray:
    """One-vs-rest 2 x 2 tables per labeler pair and class, shape (V, P, 2, 2):
    ``[c, p] = [[both c, first c only], [second c only, neither]]`` over the items the
    ``p``-th pair shares (categorical runs)."""
    V = max(stats.n_values, 1)
    L = max(stats.n_labelers, 1)
    pid = stats.pair_a * L + stats.pair_b
    upid, inv = np.unique(pid, return_inverse=True)
    P = upid.size
    n = stats.pair_n.astype(np.float64)
    tables = np.zeros((V, P, 2, 2))
    if P == 0:
        return tables
    total = np.bincount(inv, weights=n, minlength=P)
    both = np.zeros((V, P))
    first = np.zeros((V, P))
    second = np.zeros((V, P))
    same = stats.pair_va == stats.pair_vb
    np.add.at(both, (stats.pair_va[same], inv[same]), n[same])
    np.add.at(first, (stats.pair_va, inv), n)
    np.add.at(second, (stats.pair_vb, inv), n)
    tables[:, :, 0, 0] = both
    tables[:, :, 0, 1] = first - both
    tables[:, :, 1, 0] = second - both
    tables[:, :, 1, 1] = total[None, :] - first - second + both
    return tables


def _per_class_gwet(
    stats: AgreementStats, iv: _Items, per_class: list, *, n_bootstrap, seed, confidence
) -> None:
    """Adds to each per-class entry: one-vs-rest ``gwet_ac1`` (+ ``_ci``, profile
    bootstrap), ``percent_agreement`` (one-vs-rest), Byrt's ``prevalence_index`` and
    ``bias_index``, and a ``paradox`` reason where the kappa paradox applies."""
    counts = _item_counts(stats, iv)
    tables = _pair_tables(stats)
    total = counts.sum(axis=1)
    for c, entry in enumerate(per_class):
        r = entry["reasons"]
        binary = np.stack([counts[:, c], total - counts[:, c]], axis=1)
        res = gwet_ac(binary)
        entry["gwet_ac1"] = _num(res.value)
        entry["percent_agreement"] = _num(res.pa)
        entry["gwet_ac1_ci"] = None
        if entry["gwet_ac1"] is None:
            r["gwet_ac1"] = res.reason
            r["gwet_ac1_ci"] = "gwet_ac1 is undefined"
            if res.pa is None:
                r["percent_agreement"] = res.reason
        elif n_bootstrap == 0:
            r["gwet_ac1_ci"] = "no bootstrap requested (n_bootstrap=0)"
        else:
            entry["gwet_ac1_ci"] = gwet_ac_bootstrap(
                binary, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence, by_profile=True
            )
            if entry["gwet_ac1_ci"] is None:
                r["gwet_ac1_ci"] = "no bootstrap replicate is defined"
        pb = prevalence_bias_indices(tables[c]) if tables.shape[1] else None
        entry["prevalence_index"] = pb.prevalence_index if pb else None
        entry["bias_index"] = pb.bias_index if pb else None
        if entry["prevalence_index"] is None:
            why = pb.reason if pb else "no two labelers share an item"
            r["prevalence_index"] = r["bias_index"] = why
        warning = kappa_paradox(
            {"alpha (1-vs-rest)": entry["krippendorff_alpha"]},
            entry["percent_agreement"],
            entry["gwet_ac1"],
            "AC1 (1-vs-rest)",
        )
        if warning:
            r["paradox"] = warning


def summarize(
    stats: AgreementStats,
    *,
    classes: list | None = None,
    labeler_names: list | None = None,
    gold: dict | None = None,
    gold_labeler: dict | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """All agreement metrics of an agreement run, as JSON-serialisable plain data.

    Parameters
    ----------
    stats : AgreementStats
        Labels of the run (one pass, or merged chunks).
    classes : list of str, length n_classes, optional
        Class names (nominal / ordinal); default ``str(value)``.
    labeler_names : list of str, length ``stats.n_labelers``, optional
        Default ``str(code)``.
    gold : dict {item_code: class_code}, optional
        Gold labels (interval / ratio: gold values, compared exactly).
    gold_labeler : dict {item_code: labeler_code}, optional
        The labeler whose annotation carries the item's gold: that label is left out of the
        gold comparison (HLP, accuracy_vs_gold) but kept in every agreement metric.
    n_bootstrap : int
        Bootstrap replicates over items for the alpha / HLP intervals (0: no CI).
    seed : int
        Seed of the bootstrap; the same seed gives the same intervals.
    confidence : float
        Coverage of the percentile intervals.

    Returns
    -------
    dict
        Keys ``overall``, ``per_class``, ``per_labeler``, ``pairwise``, ``confusion``,
        ``hlp`` (see DESIGN.md "Results of an agreement run").  Every object holding a
        null metric holds ``reasons: {metric: why}``.
    """
    _validate_common(stats, n_bootstrap, confidence)
    L, V = stats.n_labelers, stats.n_values
    if classes is None:
        classes = (
            [str(i) for i in range(V)]
            if stats.categorical
            else [repr(float(x)) for x in stats.value_points]
        )
    classes = [str(c) for c in classes]
    if stats.categorical and len(classes) != V:
        raise ValueError(f"{len(classes)} class names for {V} classes")
    if labeler_names is None:
        labeler_names = [str(i) for i in range(L)]
    labeler_names = [str(x) for x in labeler_names]
    if len(labeler_names) != L:
        raise ValueError(f"{len(labeler_names)} labeler names for {L} labeler codes")

    iv = _Items(stats.item, stats.labeler, stats.value, V)
    gold_arr = _gold_arrays(gold, stats)
    gold_lab = _gold_per_label(iv, stats, gold_arr, gold_labeler) if gold_arr is not None else None
    core = _alpha_and_hlp(
        iv, stats, gold_lab, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence
    )
    eng: AlphaEngine = core["engine"]
    present = np.bincount(iv.labeler, minlength=L) > 0
    n_present = int(present.sum())

    # ---- overall
    reasons: dict = {}
    alpha = core["alpha"]
    if alpha is None:
        reasons["krippendorff_alpha"] = (
            "only one labeler: no pairable values" if n_present == 1 else core["alpha_reason"]
        )
        reasons["krippendorff_alpha_ci"] = "alpha is undefined"
    elif core["alpha_ci"] is None:
        reasons["krippendorff_alpha_ci"] = "no bootstrap requested (n_bootstrap=0)"
    pa = core["percent_agreement"]
    if pa is None:
        reasons["percent_agreement"] = "no item has two or more labels"
    fleiss = None
    if stats.categorical:
        fleiss, why = _fleiss(eng, pa)
        if why:
            reasons["fleiss_kappa"] = why
    else:
        reasons["fleiss_kappa"] = f"Fleiss' kappa is for nominal/ordinal data, not {stats.level}"

    kappa, shared = _pairwise(stats, iv)
    iu, ju = np.triu_indices(L, 1)
    pair_k = kappa[iu, ju]
    defined = np.isfinite(pair_k)
    mean_kappa = float(pair_k[defined].mean()) if defined.any() else None
    if mean_kappa is None:
        if not stats.categorical:
            reasons["mean_pairwise_cohen_kappa"] = (
                f"Cohen's kappa is for nominal/ordinal data, not {stats.level}"
            )
        elif not (shared[iu, ju] > 0).any():
            reasons["mean_pairwise_cohen_kappa"] = "no two labelers share an item"
        else:
            reasons["mean_pairwise_cohen_kappa"] = (
                "every labeler pair used a single identical class (chance agreement 1)"
            )
    # The profile bootstrap: the same distribution as resampling items, at O(profiles)
    # per replicate instead of O(items) -- the item draw took 80 s of a 1M-label run.
    gwet = _gwet(
        stats,
        iv,
        reasons,
        n_bootstrap=n_bootstrap,
        seed=seed,
        confidence=confidence,
        by_profile=True,
    )
    # Byrt's indices of the whole run when the scale is binary (else per class).
    prevalence = bias = None
    if stats.categorical and V == 2:
        pb = prevalence_bias_indices(_pair_tables(stats)[1])
        prevalence, bias = pb.prevalence_index, pb.bias_index
        if pb.reason:
            reasons["prevalence_index"] = reasons["bias_index"] = pb.reason
    else:
        why = (
            "defined for two classes; see per_class[] (one class against the rest)"
            if stats.categorical
            else f"defined for binary class labels, not {stats.level} data"
        )
        reasons["prevalence_index"] = reasons["bias_index"] = why
    overall = {
        "krippendorff_alpha": _num(alpha),
        "krippendorff_alpha_ci": core["alpha_ci"],
        "fleiss_kappa": _num(fleiss),
        "percent_agreement": _num(pa),
        "percent_agreement_ci": core["percent_agreement_ci"],
        "mean_pairwise_cohen_kappa": mean_kappa,
        **gwet,
        "prevalence_index": prevalence,
        "bias_index": bias,
        "n_items": iv.n_items,
        "n_pairable_items": core["prof"].n_pairable_items,
        "n_annotations": int(iv.item.size),
        "n_labelers": n_present,
        "level": stats.level,
        "n_bootstrap": int(n_bootstrap),
        "reasons": reasons,
    }

    # ---- per class
    per_class = []
    confusion: dict
    if stats.categorical:
        a_c, n_c = eng.per_class_alpha(eng.prof.freq.astype(np.float64))
        support = np.bincount(iv.value, minlength=V)
        for c in range(V):
            entry = {
                "class": classes[c],
                "krippendorff_alpha": _num(a_c[c]),
                "support": int(support[c]),
                "n_pairable": int(round(n_c[c])),
                "reasons": {},
            }
            if entry["krippendorff_alpha"] is None:
                entry["reasons"]["krippendorff_alpha"] = (
                    "class never used on an item with two or more labels"
                    if n_c[c] == 0
                    else "only this class used: expected disagreement is 0"
                    if n_c[c] == n_c.sum()
                    else "no pairable values"
                )
            per_class.append(entry)
        _per_class_gwet(
            stats, iv, per_class, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence
        )
        counts = np.zeros((V, V), dtype=np.int64)
        np.add.at(counts, (stats.pair_va, stats.pair_vb), stats.pair_n)
        counts = counts + counts.T
        coinc = eng.coincidences(eng.prof.freq.astype(np.float64))
        confusion = {
            "classes": classes,
            "counts": counts.tolist(),
            "coincidences": np.round(coinc, 6).tolist(),
            "definition": (
                "counts[c][k]: ordered pairs of labels on the same item by two different "
                "labelers with values (c, k); coincidences: Krippendorff's o_ck"
            ),
            "reasons": {},
        }
    else:
        confusion = {
            "classes": None,
            "counts": None,
            "reasons": {"counts": f"class confusion is for nominal/ordinal data ({stats.level})"},
        }

    # ---- per labeler
    loo = _loo_consensus(iv)
    n_lab = np.bincount(iv.labeler, minlength=L)
    agree = np.bincount(iv.labeler, weights=loo == 1, minlength=L)
    disagree = np.bincount(iv.labeler, weights=loo == 0, minlength=L)
    ties = np.bincount(iv.labeler, weights=loo == -1, minlength=L)
    alone = np.bincount(iv.labeler, weights=loo == -2, minlength=L)
    if gold_lab is not None:
        has, correct = gold_lab
        g_n = np.bincount(iv.labeler, weights=has, minlength=L)
        g_c = np.bincount(iv.labeler, weights=correct, minlength=L)
    per_labeler = []
    for i in range(L):
        if not present[i]:
            continue
        r: dict = {}
        dec = agree[i] + disagree[i]
        a_w = agree[i] / dec if dec else None
        if a_w is None:
            r["agreement_with_consensus"] = (
                "no item where the other labels have a strict majority"
                if ties[i]
                else "no item labeled by anyone else"
            )
        row = kappa[i, np.arange(L) != i]
        row = row[np.isfinite(row)]
        k_mean = float(row.mean()) if row.size else None
        if k_mean is None:
            r["cohen_kappa_mean"] = (
                f"Cohen's kappa is for nominal/ordinal data, not {stats.level}"
                if not stats.categorical
                else "shares no item with another labeler (or chance agreement is 1)"
            )
        acc = None
        if gold_lab is None:
            r["accuracy_vs_gold"] = "no gold labels"
        elif g_n[i] == 0:
            r["accuracy_vs_gold"] = "no label on a gold item"
        else:
            acc = g_c[i] / g_n[i]
        per_labeler.append(
            {
                "labeler": labeler_names[i],
                "n": int(n_lab[i]),
                "agreement_with_consensus": _num(a_w),
                "consensus_ties": int(ties[i]),
                "consensus_decided": int(dec),
                "consensus_no_other_label": int(alone[i]),
                "cohen_kappa_mean": k_mean,
                "accuracy_vs_gold": _num(acc),
                "n_gold": int(g_n[i]) if gold_lab is not None else 0,
                "reasons": r,
            }
        )

    # ---- pairwise (labelers present only)
    idx = np.flatnonzero(present)
    sub_k = kappa[np.ix_(idx, idx)]
    pairwise = {
        "labelers": [labeler_names[i] for i in idx],
        "cohen_kappa": [[_num(x) for x in rowk] for rowk in sub_k],
        "n_shared": shared[np.ix_(idx, idx)].tolist(),
        "reasons": {}
        if stats.categorical
        else {"cohen_kappa": f"Cohen's kappa is for nominal/ordinal data, not {stats.level}"},
    }

    # ---- hlp
    hlp = core["hlp"]
    hlp_out = {
        "value": _num(hlp["value"]),
        "method": hlp["method"],
        "ci": hlp["ci"],
        "n_items": hlp["n_items"],
        "weighting": hlp["weighting"],
        "gold": {"value": _num(hlp["gold"]["value"]), "n_items": hlp["gold"]["n_items"]},
        "pairwise": {
            "value": _num(hlp["pairwise"]["value"]),
            "n_items": hlp["pairwise"]["n_items"],
        },
        "reasons": {**hlp["reasons"], "method": _hlp_method_reason(hlp)},
    }
    if hlp_out["gold"]["value"] is None and "gold" not in hlp_out["reasons"]:
        hlp_out["reasons"]["gold"] = "no ground truth: pairwise agreement used"
    if stats.categorical:
        conv, warns = _conventions(eng, classes, iv, L, labeler_names)
        hlp_out["conventions"] = conv
        hlp_out["warnings"] = warns
    top_reasons = {}
    warning = _paradox(overall)
    if warning:
        top_reasons["paradox"] = warning
    return {
        "overall": overall,
        "per_class": per_class,
        "per_labeler": per_labeler,
        "pairwise": pairwise,
        "confusion": confusion,
        "hlp": hlp_out,
        "reasons": top_reasons,
        "paradox_rule": PARADOX_RULE,
    }


def _paradox(figures: dict) -> str | None:
    """The kappa-paradox warning for an ``overall`` / slice dict (see ``PARADOX_RULE``):
    alpha and Fleiss' kappa against percent agreement and AC1 (AC2 where there is no
    AC1)."""
    ac_name = "AC1" if figures.get("gwet_ac1") is not None else "AC2"
    return kappa_paradox(
        {
            "Krippendorff's alpha": figures.get("krippendorff_alpha"),
            "Fleiss' kappa": figures.get("fleiss_kappa"),
        },
        figures.get("percent_agreement"),
        figures.get("gwet_ac1") if ac_name == "AC1" else figures.get("gwet_ac2"),
        ac_name,
    )


def _hlp_method_reason(hlp: dict) -> str:
    """Why the headline HLP is the estimate it is (``results.hlp.reasons.method``)."""
    if hlp["method"] == "gold":
        return (
            "gold: other labelers' labels on ground-truth items measured against it, a "
            "reference outside the labelers (pairwise agreement only measures them against "
            "each other)"
        )
    return "pairwise: no label of another labeler lies on a ground-truth item"


def slice_summary(
    stats: AgreementStats,
    item_mask,
    *,
    gold: dict | None = None,
    gold_labeler: dict | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Alpha and HLP (with bootstrap CIs) on a subset of items -- cheap enough to loop.

    Parameters
    ----------
    stats : AgreementStats
    item_mask : array_like of bool, shape (n_item_codes,)
        ``item_mask[code]`` selects item ``code`` (codes beyond its length: not selected).
    gold, gold_labeler, n_bootstrap, seed, confidence
        As in :func:`summarize`.

    Returns
    -------
    dict
        ``{n_items, n_annotations, krippendorff_alpha, krippendorff_alpha_ci,
        percent_agreement, gwet_ac1, gwet_ac1_ci, gwet_ac2, gwet_ac2_ci,
        hlp: {value, method, ci, ...}, reasons}``.
    """
    _validate_common(stats, n_bootstrap, confidence)
    mask = _as_1d("item_mask", item_mask).astype(bool)
    sel = np.zeros(stats.item.size, dtype=bool)
    inside = stats.item < mask.size
    sel[inside] = mask[stats.item[inside]]
    iv = _Items(stats.item[sel], stats.labeler[sel], stats.value[sel], stats.n_values)
    gold_arr = _gold_arrays(gold, stats)
    gold_lab = _gold_per_label(iv, stats, gold_arr, gold_labeler) if gold_arr is not None else None
    return _slice_figures(iv, stats, gold_lab, n_bootstrap, seed, confidence)


def item_value_counts(stats: AgreementStats, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-item value counts of a run's labels, for :func:`slice_summary_from_counts`.

    Parameters
    ----------
    stats : AgreementStats
    labels : array_like of bool, shape (N,), optional
        Only these labels (in ``stats`` order); default all.

    Returns
    -------
    item_ids : ndarray of int64, shape (I,)
        Every item code of ``stats``, sorted.
    counts : ndarray of int64, shape (I, V)
        ``counts[i, v]``: selected labels of value ``v`` on item ``item_ids[i]`` (a row
        of zeros for an item none of whose labels is selected).
    """
    starts = _runs(stats.item)
    item_ids = stats.item[starts]
    n_values = max(stats.n_values, 1)
    if n_values > MAX_DENSE_VALUES:
        raise ValueError(f"more than {MAX_DENSE_VALUES} distinct values: use slice_summary")
    key = np.repeat(
        np.arange(item_ids.size, dtype=np.int64), np.diff(np.append(starts, stats.item.size))
    )
    key *= n_values
    key += stats.value
    if labels is not None:
        key = key[_as_1d("labels", labels).astype(bool)]
    counts = np.bincount(key, minlength=item_ids.size * n_values)
    return item_ids, counts.reshape(item_ids.size, n_values)


def slice_summary_from_counts(
    counts,
    *,
    level: str = "nominal",
    value_points=None,
    n_bootstrap: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    gwet: bool = True,
) -> dict:
    """:func:`slice_summary` without gold, from the slice's per-item value counts.

    Every figure of the slice depends on its labels only through how many labels of each
    value each item has, so this gives the same dict, to the last bit and with the same
    bootstrap draws, as :func:`slice_summary` on the labels behind ``counts`` -- at the
    cost of the slice's items, not its labels (what flag detection loops over, on every
    slice value and on the rest of the project).

    Parameters
    ----------
    counts : array_like of int, shape (n_items, V)
        ``counts[i, v]``: labels of value ``v`` on the ``i``-th item of the slice (rows
        without a label are ignored).
    level : str
        Measurement level of the values.
    value_points : array_like of float, shape (V,), optional
        The values (interval / ratio); default ``arange(V)``.
    n_bootstrap, seed, confidence
        As in :func:`summarize`.
    gwet : bool
        False: skip Gwet's coefficients (null, with the reason), for callers that read
        alpha and HLP only (flag detection: most of the time and memory of a slice).
    """
    table = np.asarray(counts)
    if table.ndim != 2 or (table.size and not np.issubdtype(table.dtype, np.integer)):
        raise ValueError("counts must be a 2-D array of whole numbers (items x values)")
    if table.size and table.min() < 0:
        raise ValueError("counts must be non-negative")
    n_values = table.shape[1]
    categorical = level in ("nominal", "ordinal")
    header = AgreementStats.from_labels(
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64 if categorical and value_points is None else np.float64),
        level=level,
        n_classes=n_values if categorical and value_points is None else None,
        value_points=value_points,
    )
    if header.n_values != n_values:
        raise ValueError(f"{header.n_values} value points for {n_values} columns of counts")
    _validate_common(header, n_bootstrap, confidence)
    return _slice_figures(
        _Items.from_counts(table), header, None, n_bootstrap, seed, confidence, with_gwet=gwet
    )


def _slice_figures(
    iv: _Items, stats, gold_lab, n_bootstrap, seed, confidence, *, with_gwet: bool = True
) -> dict:
    core = _alpha_and_hlp(
        iv, stats, gold_lab, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence
    )
    reasons = {}
    if core["alpha"] is None:
        reasons["krippendorff_alpha"] = (
            "no item in the slice" if iv.n_items == 0 else core["alpha_reason"]
        )
    if iv.n_items and with_gwet:
        gwet = _gwet(
            stats,
            iv,
            reasons,
            n_bootstrap=n_bootstrap,
            seed=seed,
            confidence=confidence,
            by_profile=True,
        )
    else:
        gwet = {"gwet_ac1": None, "gwet_ac1_ci": None, "gwet_ac2": None, "gwet_ac2_ci": None}
        why = "no item in the slice" if not iv.n_items else "not computed (gwet=False)"
        reasons.update(dict.fromkeys(gwet, why))
    hlp = core["hlp"]
    figures = {
        "krippendorff_alpha": _num(core["alpha"]),
        "percent_agreement": _num(core["percent_agreement"]),
        **gwet,
    }
    warning = _paradox(figures)
    if warning:
        reasons["paradox"] = warning
    return {
        "n_items": iv.n_items,
        "n_annotations": iv.n_labels,
        "krippendorff_alpha": _num(core["alpha"]),
        "krippendorff_alpha_ci": core["alpha_ci"],
        **gwet,
        "percent_agreement": _num(core["percent_agreement"]),
        "hlp": {
            "value": _num(hlp["value"]),
            "method": hlp["method"],
            "ci": hlp["ci"],
            "n_items": hlp["n_items"],
            "reasons": hlp["reasons"],
        },
        "reasons": reasons,
    }
