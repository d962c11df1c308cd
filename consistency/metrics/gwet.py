"""Gwet's AC1 (nominal) and AC2 (weighted) agreement coefficients.

Pure numpy. Follows the raw-data formulas of Gwet's *Handbook of Inter-Rater
Reliability* (4th ed., 2014), as implemented by ``irrCAC::gwet.ac1.raw``:

* ``r_ik``: raters who put item ``i`` in category ``k``; ``r_i = sum_k r_ik``;
  ``r*_ik = sum_l w_kl r_il`` (weighted counts);
* ``p_a = mean over items with r_i >= 2 of sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1))``;
* ``pi_k = mean over items with r_i >= 1 of r_ik / r_i``;
* ``p_e = sum(W) / (q (q - 1)) * sum_k pi_k (1 - pi_k)``;
* ``AC = (p_a - p_e) / (1 - p_e)``.

Unlike kappa and alpha, ``p_e`` stays small when one category dominates (mostly
"no defect"), so AC1 does not collapse when labelers almost always agree (the kappa
paradox). Any number of raters; missing ratings are items with fewer labels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

WEIGHT_LEVELS = ("nominal", "ordinal", "interval", "ratio")


class GwetResult(NamedTuple):
    """``value`` (None when undefined, ``reason`` says why), ``pa`` and ``pe``."""

    value: float | None
    pa: float | None
    pe: float | None
    reason: str | None


def gwet_weights(values, level: str) -> np.ndarray:
    """Gwet's agreement weights between the categories (irrCAC's ``weights.gen``).

    Parameters
    ----------
    values : array_like, shape (q,)
        The categories' numeric values in scale order (ranks for ordinal; only their
        order is used there).
    level : {"nominal", "ordinal", "interval", "ratio"}
        ``nominal``: identity; ``ordinal``: ``1 - C(n_kl, 2) / C(q, 2)`` with
        ``n_kl = |k - l| + 1`` positions between ranks; ``interval``: quadratic
        ``1 - (x_k - x_l)^2 / max (x_k - x_l)^2``; ``ratio``:
        ``1 - ((x_k - x_l) / (x_k + x_l))^2 / max(...)``.

    Returns
    -------
    ndarray, shape (q, q)
        Symmetric weights in [0, 1], ones on the diagonal.

    Raises
    ------
    ValueError
        Unknown level, values not 1-D finite, repeated values, or a negative value on a
        ratio scale.
    """
    if level not in WEIGHT_LEVELS:
        raise ValueError(f"level must be one of {', '.join(WEIGHT_LEVELS)}, not {level!r}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError("values must be a non-empty 1-D array of finite numbers")
    if np.unique(x).size != x.size:
        raise ValueError("values must be distinct")
    q = x.size
    if level == "nominal" or q == 1:
        return np.eye(q)
    if level == "ordinal":
        rank = np.argsort(np.argsort(x))
        n_kl = np.abs(rank[:, None] - rank[None, :]) + 1
        d = n_kl * (n_kl - 1) / 2.0
    elif level == "interval":
        d = (x[:, None] - x[None, :]) ** 2
    else:
        if (x < 0).any():
            raise ValueError("ratio values must be non-negative")
        total = x[:, None] + x[None, :]
        diff = x[:, None] - x[None, :]
        # x_k = x_l (the diagonal, or 0 with 0) is full agreement
        d = np.divide(diff, total, out=np.zeros_like(diff), where=total > 0) ** 2
    return 1.0 - d / d.max()


def _check_counts(counts) -> np.ndarray:
    r = np.asarray(counts)
    if r.ndim != 2:
        raise ValueError("counts must be a 2-D (items x categories) array")
    if r.size and (not np.issubdtype(r.dtype, np.number) or (r < 0).any()):
        raise ValueError("counts must be non-negative numbers")
    if r.size and not np.issubdtype(r.dtype, np.integer) and not np.array_equal(r, np.round(r)):
        raise ValueError("counts must be whole numbers of raters")
    return r.astype(np.float64)


def _check_weights(weights, q: int) -> np.ndarray:
    w = np.eye(q) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (q, q) or not np.isfinite(w).all():
        raise ValueError(f"weights must be a finite ({q}, {q}) array")
    return w


def _rated(r: np.ndarray) -> np.ndarray:
    """Rows with at least one rating (no copy when every row has one: a run's counts)."""
    keep = r.sum(axis=1) > 0
    return r if keep.all() else r[keep]


def _unique_rows(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(r, axis=0, return_counts=True)`` for rows of whole counts >= 0.

    Rows sort lexicographically (first column first), which is the order of one integer
    per row in base ``max + 1``: when that integer fits in 62 bits, one sort of integers
    replaces the sort of rows as records (~10x faster at 2M items), with the same unique
    rows in the same order and the same counts."""
    q = r.shape[1]
    base = int(r.max()) + 1 if r.size else 1
    if r.shape[0] == 0 or q * math.log2(max(base, 2)) >= 62:
        return np.unique(r, axis=0, return_counts=True)
    key = np.zeros(r.shape[0], dtype=np.int64)
    for j in range(q):
        key *= base
        key += r[:, j].astype(np.int64)
    _, first, freq = np.unique(key, return_index=True, return_counts=True)
    return r[first], freq


def gwet_ac(counts, weights=None) -> GwetResult:
    """Gwet's AC2 with ``weights`` (AC1 with identity weights, the default).

    Parameters
    ----------
    counts : array_like, shape (n_items, q)
        ``counts[i, k]``: raters who put item ``i`` in category ``k``. Items may have
        any number of raters (missing ratings); items with none are ignored. ``q`` is
        the number of categories of the scale, used or not.
    weights : array_like, shape (q, q), optional
        Agreement weights (:func:`gwet_weights`); default identity (AC1).

    Returns
    -------
    GwetResult
        ``value`` is None with a ``reason`` when no item has two ratings or the scale
        has fewer than two categories.

    Raises
    ------
    ValueError
        Counts not a 2-D array of non-negative whole numbers; weights not (q, q).
    """
    r = _check_counts(counts)
    q = r.shape[1]
    w = _check_weights(weights, q)
    r = _rated(r)
    if q < 2:
        return GwetResult(None, None, None, "fewer than two categories")
    ri = r.sum(axis=1)
    two = ri >= 2
    if not two.any():
        return GwetResult(None, None, None, "no item has two or more labels")
    # Boolean indexing copies: skipped when every item has two ratings (the usual case).
    r2, ri2 = (r, ri) if two.all() else (r[two], ri[two])
    r_star = r2 @ w.T  # r*_ik = sum_l w_kl r_il
    r_star -= 1.0
    r_star *= r2
    per_item = r_star.sum(axis=1) / (ri2 * (ri2 - 1.0))
    del r_star, r2
    pa = float(per_item.mean())
    pi = (r / ri[:, None]).mean(axis=0)
    pe = float(w.sum() * (pi * (1.0 - pi)).sum() / (q * (q - 1)))
    if pe >= 1.0:  # cannot happen with weights in [0, 1]; guards custom weights
        return GwetResult(None, pa, pe, "chance agreement is 1")
    return GwetResult(float((pa - pe) / (1.0 - pe)), pa, pe, None)


def gwet_ac1(counts) -> GwetResult:
    """Gwet's AC1 (nominal categories): :func:`gwet_ac` with identity weights."""
    return gwet_ac(counts)


def gwet_ac2(counts, values, level: str) -> GwetResult:
    """Gwet's AC2 on a weighted scale: :func:`gwet_ac` with
    ``gwet_weights(values, level)`` (``level`` ordinal, interval or ratio)."""
    if level == "nominal":
        raise ValueError("AC2 is for ordinal, interval or ratio data; use gwet_ac1")
    r = _check_counts(counts)
    if len(np.asarray(values)) != r.shape[1]:
        raise ValueError(f"{len(np.asarray(values))} values for {r.shape[1]} categories")
    return gwet_ac(r, gwet_weights(values, level))


def gwet_ac_bootstrap(
    counts,
    weights=None,
    *,
    n_bootstrap: int,
    seed: int = 0,
    confidence: float = 0.95,
    by_profile: bool = False,
) -> list[float] | None:
    """Percentile bootstrap interval of :func:`gwet_ac` over items.

    Replicate ``b`` draws ``f = rng.multinomial(n, [1/n] * n)`` (how often each rated
    item is drawn, ``rng = numpy.random.default_rng(seed)``) and computes AC on the
    items repeated ``f`` times; replicates where AC is undefined are left out.

    With ``by_profile`` the ``n`` rated items are first grouped by their row of counts
    ("profile": items with the same row contribute identically), and a replicate draws
    ``f = rng.multinomial(n, freq / n)`` over the ``P`` profiles: the same distribution
    as resampling items (the counts of a uniform item resample, summed by profile), at
    ``O(P)`` per replicate instead of ``O(n)`` -- what per-class (one-vs-rest, a handful
    of profiles) and per-slice intervals use. The random stream differs from the item
    draw, so the two modes give different (equally valid) intervals for one seed.

    Parameters
    ----------
    counts, weights
        As :func:`gwet_ac`.
    n_bootstrap : int
        Replicates (>= 1).
    seed : int
        The same seed gives the same interval.
    confidence : float
        Coverage, in (0, 1).

    Returns
    -------
    list of float or None
        ``[low, high]``, or None when no replicate is defined.
    """
    if int(n_bootstrap) < 1:
        raise ValueError("n_bootstrap must be at least 1")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    r = _check_counts(counts)
    q = r.shape[1]
    w = _check_weights(weights, q)
    r = _rated(r)
    n = r.shape[0]
    if q < 2 or n == 0:
        return None
    if by_profile:
        r, freq = _unique_rows(r)
        draw_p = freq / n
    else:
        draw_p = np.full(n, 1.0 / n)
    ri = r.sum(axis=1)
    two = ri >= 2
    # per-item terms: the item's p_a term (items with two ratings) and category shares
    pa_i = np.zeros(r.shape[0])
    pa_i[two] = (r[two] * (r[two] @ w.T - 1.0)).sum(axis=1) / (ri[two] * (ri[two] - 1.0))
    share = r / ri[:, None]
    scale = w.sum() / (q * (q - 1))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(int(n_bootstrap)):
        f = rng.multinomial(n, draw_p).astype(np.float64)
        n_two = (f * two).sum()
        if n_two == 0:
            continue
        pa = (f * pa_i).sum() / n_two
        pi = f @ share / n
        pe = scale * (pi * (1.0 - pi)).sum()
        if pe < 1.0:
            reps.append((pa - pe) / (1.0 - pe))
    if not reps:
        return None
    tail = (1.0 - float(confidence)) / 2.0 * 100.0
    lo, hi = np.percentile(np.asarray(reps), [tail, 100.0 - tail])
    return [float(lo), float(hi)]


# --------------------------------------------------------------------------- prevalence, bias
class PrevalenceBias(NamedTuple):
    """Byrt, Bishop & Carlin's (1993) indices; None with ``reason`` when undefined."""

    prevalence_index: float | None
    bias_index: float | None
    reason: str | None


def prevalence_bias_indices(tables) -> PrevalenceBias:
    """Prevalence and bias indices of binary ratings (Byrt, Bishop & Carlin 1993).

    For one pair of raters with the 2 x 2 table ``[[a, b], [c, d]]`` (``a``: both say
    positive, ``b``: the first positive and the second not, ``c``: the reverse, ``d``:
    both negative; ``n = a + b + c + d``) Byrt et al. define ``PI = (a - d) / n`` and
    ``BI = (b - c) / n``; reported here as magnitudes ``|a - d| / n`` and ``|b - c| / n``.
    With several raters the pairs' tables are pooled: ``PI = |sum a - sum d| / N`` (the
    gap between the positive and negative shares of the pairable labels) and ``BI =
    sum |b - c| / N`` (each pair's bias counted in its own direction, so opposite biases
    of different pairs do not cancel). A large PI (one category dominates) holds kappa
    down at a given agreement; a large BI (raters differ in how often they say
    positive) holds it up.

    Parameters
    ----------
    tables : array_like, shape (P, 2, 2) or (2, 2)
        Non-negative counts of items per rater pair.

    Returns
    -------
    PrevalenceBias
        Both in [0, 1]; None with a reason when no pair shares an item.

    Raises
    ------
    ValueError
        Not (P, 2, 2) / (2, 2), or negative counts.

    Examples
    --------
    85 agreements in 100, 80 of them on the positive category (high prevalence):

    >>> prevalence_bias_indices([[80, 10], [5, 5]])
    PrevalenceBias(prevalence_index=0.75, bias_index=0.05, reason=None)
    """
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1:] != (2, 2):
        raise ValueError("tables must have shape (P, 2, 2) or (2, 2)")
    if (t < 0).any() or not np.isfinite(t).all():
        raise ValueError("tables must hold non-negative counts")
    n = float(t.sum())
    if n == 0:
        return PrevalenceBias(None, None, "no two raters share an item")
    pi = abs(float(t[:, 0, 0].sum() - t[:, 1, 1].sum())) / n
    bi = float(np.abs(t[:, 0, 1] - t[:, 1, 0]).sum()) / n
    return PrevalenceBias(pi, bi, None)


# --------------------------------------------------------------------------- the paradox
# The kappa paradox (Feinstein & Cicchetti 1990): labelers agree on nearly every item,
# yet kappa / alpha are low because one category dominates and chance agreement is
# high. The warning is given when all three hold:
PARADOX_MAX_CHANCE_CORRECTED = 0.4  # kappa or alpha below this ("fair" or worse)
PARADOX_MIN_PERCENT_AGREEMENT = 0.8  # while the labels agree at least this often
PARADOX_MIN_AC = 0.6  # and Gwet's AC, which does not collapse on skew, is at least this
PARADOX_RULE = (
    f"kappa or alpha < {PARADOX_MAX_CHANCE_CORRECTED} while percent agreement >= "
    f"{PARADOX_MIN_PERCENT_AGREEMENT} and Gwet's AC >= {PARADOX_MIN_AC}"
)


def kappa_paradox(
    chance_corrected: dict, percent_agreement: float | None, ac: float | None, ac_name: str
) -> str | None:
    """The paradox warning (:data:`PARADOX_RULE`), or None when it does not apply.

    Parameters
    ----------
    chance_corrected : dict {name: value or None}
        Kappa / alpha coefficients (e.g. ``{"Krippendorff's alpha": 0.21}``); None ones
        are ignored.
    percent_agreement : float or None
        Share of agreeing pairs of labels, in [0, 1].
    ac : float or None
        Gwet's AC1 (or AC2) on the same labels; ``ac_name`` names it in the message.

    Returns
    -------
    str or None
        A sentence naming the low coefficients and the figures that disagree with them.

    >>> kappa_paradox({"alpha": 0.2}, 0.92, 0.9, "AC1") is not None
    True
    >>> kappa_paradox({"alpha": 0.2}, 0.6, 0.9, "AC1") is None
    True
    """
    if percent_agreement is None or ac is None:
        return None
    low = {
        k: v
        for k, v in chance_corrected.items()
        if v is not None and v < PARADOX_MAX_CHANCE_CORRECTED
    }
    if not low or percent_agreement < PARADOX_MIN_PERCENT_AGREEMENT or ac < PARADOX_MIN_AC:
        return None
    names = ", ".join(f"{k} {v:.2f}" for k, v in low.items())
    return (
        f"kappa paradox: {names} while labels agree {percent_agreement:.0%} of the time and "
        f"Gwet's {ac_name} is {ac:.2f} -- one class dominates, so chance agreement is high "
        "and kappa/alpha understate agreement; read AC1/AC2 and the per-class figures "
        f"(rule: {PARADOX_RULE})"
    )
