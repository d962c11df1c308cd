"""Drift tests between a baseline window and a current window (pure: numpy/scipy in,
plain data out; no Django).

One public function per kind of check, and the run-wide decision:

``numeric_check``        numbers (image brightness, width, height): Kolmogorov–Smirnov on
                         small samples, normalised Wasserstein distance on large ones
``categorical_check``    distributions (labels, slice volume, missing metadata):
                         chi-square on small samples, Jensen–Shannon distance on large ones
``agreement_check``      an agreement figure (alpha, AC1, a labeler's agreement with the
                         others' majority): the difference of the two windows' bootstrap
                         estimates
``rate_check``           items per day (volume): exact conditional binomial test
``benjamini_hochberg``   q-values (false discovery rate) of a run's p-values
``decide``               q-values and ``drifted`` for every check of a run

Why the rules are what they are (the three mistakes of common drift monitors):

* A verdict on a handful of rows is noise: below ``min_n`` in either window a check has
  ``drifted = None`` with the reason ``"too few items (n)"`` (or ``labels``).
* Hundreds of tests (metric x slice) at 5 % always fire: p-values are corrected across
  all checks of a run (Benjamini–Hochberg), and a check drifts only when its q-value is
  below the threshold *and* its effect size is at least the minimum. On large samples
  every difference is "significant", so the large-sample tests (Wasserstein,
  Jensen–Shannon) report no p-value and the effect size alone decides.
* Constant or empty columns: every figure is a finite float or ``None`` with a reason,
  never NaN or Infinity (``json.dumps(..., allow_nan=False)`` accepts every output).

Effect sizes (compared with one project minimum, default 0.1):

* numbers: Wasserstein-1 distance divided by the standard deviation of both windows
  pooled (0 when both windows hold the same constant);
* distributions: Jensen–Shannon distance, base 2 (0 = identical, 1 = disjoint);
* agreement: the absolute difference of the two windows' estimates;
* rates: ``|rate_current / rate_baseline - 1|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

# At or above this many values in *both* windows a check uses its large-sample test.
LARGE_N = 1000
HISTOGRAM_BINS = 12
DIGITS = 6


def _f(x) -> float | None:
    """A finite float rounded to ``DIGITS``, or None (never NaN / Infinity)."""
    if x is None:
        return None
    x = float(x)
    return round(x, DIGITS) if math.isfinite(x) else None


def too_few(n: int, unit: str = "items") -> str:
    """The reason given when a window holds fewer than the minimum: ``too few items (n)``."""
    return f"too few {unit} ({n})"


def _check(test: str, baseline: dict, current: dict) -> dict:
    return {
        "test": test,
        "statistic": None,
        "p_value": None,
        "q_value": None,
        "effect_size": None,
        "drifted": None,
        # "q_value_and_effect_size", or "effect_size" for the large-sample tests
        "decided_by": "q_value_and_effect_size",
        "baseline": baseline,
        "current": current,
        "reasons": {},
    }


def _small(n_b: int, n_c: int, min_n: int, unit: str, check: dict) -> bool:
    """Mark ``check`` undecidable when a window is below ``min_n``; True if it was."""
    n = min(n_b, n_c)
    if n < min_n:
        check["reasons"]["drifted"] = too_few(n, unit)
        for name in ("statistic", "p_value", "effect_size"):
            check["reasons"].setdefault(name, too_few(n, unit))
        return True
    return False


# --------------------------------------------------------------------------- numbers


def _finite(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def numeric_summary(values) -> dict:
    """``{n, mean, std, median, p10, p90}`` of the finite values (None and reason when
    there are none; ``std`` 0 for one value or a constant)."""
    a = _finite(values)
    out: dict = {"n": int(a.size)}
    if a.size == 0:
        out.update(dict.fromkeys(("mean", "std", "median", "p10", "p90")))
        out["reasons"] = {"mean": "no values in this window"}
        return out
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    out.update(
        {
            "mean": _f(a.mean()),
            "std": _f(a.std()),
            "median": _f(med),
            "p10": _f(p10),
            "p90": _f(p90),
        }
    )
    return out


def normalised_wasserstein(baseline, current) -> float | None:
    """Wasserstein-1 distance between two samples over the pooled standard deviation.

    Parameters
    ----------
    baseline, current : array_like of float, shape (n,), (m,)
        Non-finite values are dropped.

    Returns
    -------
    float or None
        None when either sample is empty; 0.0 when both hold the same constant (the
        distance is 0; dividing it by a zero spread would give NaN).

    >>> normalised_wasserstein([0, 0, 0], [0, 0])
    0.0
    >>> normalised_wasserstein([0, 1], [1, 2])  # W1 = 1, pooled std of 0,1,1,2 = 0.7071
    1.414214
    """
    b, c = _finite(baseline), _finite(current)
    if b.size == 0 or c.size == 0:
        return None
    w = stats.wasserstein_distance(b, c)
    if w == 0.0:
        return 0.0
    # w > 0 implies the pooled values are not all equal, so the spread is positive.
    spread = np.concatenate([b, c]).std()
    return _f(w / spread)


def _histogram(b: np.ndarray, c: np.ndarray) -> dict:
    pooled = np.concatenate([b, c])
    lo, hi = float(pooled.min()), float(pooled.max())
    if hi <= lo:
        hi = lo + 1.0  # a constant column: one bin around the value
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    return {
        "edges": [_f(e) for e in edges],
        "baseline": np.histogram(b, edges)[0].astype(int).tolist(),
        "current": np.histogram(c, edges)[0].astype(int).tolist(),
    }


def numeric_check(baseline, current, *, min_n: int = 30, large_n: int = LARGE_N) -> dict:
    """Drift of a number (brightness, width, height) between two windows.

    Parameters
    ----------
    baseline, current : array_like of float
        The values in each window; non-finite values are dropped and not counted.
    min_n : int
        Fewer values than this in either window: ``drifted`` None, "too few items (n)".
    large_n : int
        Both windows at least this large: normalised Wasserstein (no p-value); else the
        two-sample Kolmogorov–Smirnov test (statistic D, its p-value).

    Returns
    -------
    dict
        ``{test, statistic, p_value, q_value (None until decide), effect_size (normalised
        Wasserstein), drifted (None until decide), baseline: {n, mean, ...}, current,
        histogram: {edges, baseline, current}, reasons}``.
    """
    b, c = _finite(baseline), _finite(current)
    large = min(b.size, c.size) >= large_n
    check = _check("wasserstein" if large else "ks", numeric_summary(b), numeric_summary(c))
    if b.size and c.size:
        check["histogram"] = _histogram(b, c)
    if _small(b.size, c.size, min_n, "items", check):
        return check
    effect = normalised_wasserstein(b, c)
    check["effect_size"] = effect
    if large:
        check["statistic"] = effect
        check["decided_by"] = "effect_size"
        check["reasons"]["p_value"] = (
            f"large samples (>= {large_n} per window): the effect size decides, "
            "every difference would be significant"
        )
    else:
        res = stats.ks_2samp(b, c)
        check["statistic"] = _f(res.statistic)
        check["p_value"] = _f(res.pvalue)
    return check


# --------------------------------------------------------------------------- distributions


def js_distance(p, q) -> float | None:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two count or share vectors.

    None when either vector sums to 0.

    >>> js_distance([1, 0], [0, 1])
    1.0
    >>> js_distance([2, 2], [5, 5])
    0.0
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return None
    d = jensenshannon(p / p.sum(), q / q.sum(), base=2)
    return _f(max(float(d), 0.0)) if math.isfinite(d) else 0.0


def categorical_check(
    baseline: Mapping[str, int],
    current: Mapping[str, int],
    *,
    min_n: int = 30,
    large_n: int = LARGE_N,
    unit: str = "labels",
    n_clusters: tuple[int, int] | None = None,
) -> dict:
    """Drift of a distribution (label shares, items per slice value, missing metadata).

    Parameters
    ----------
    baseline, current : mapping of category -> count
        Counts in each window (categories missing from one window count 0 there).
    min_n, large_n : int
        As :func:`numeric_check`; large windows use the Jensen–Shannon distance alone,
        smaller ones the chi-square test of homogeneity (2 x K, categories empty in
        both windows dropped, no continuity correction).
    unit : str
        What is counted, for the "too few ..." reason.
    n_clusters : (int, int), optional
        Independent units behind the counts of each window when counts are clustered
        (several labels of one item). The chi-square statistic is divided by the design
        effect ``max(n / n_clusters)`` of the two windows -- its upper bound, reached
        when the labels of an item always agree (a first-order Rao-Scott correction) --
        so three labels of one item weigh as one observation, not three.

    Returns
    -------
    dict
        As :func:`numeric_check`, with ``baseline``/``current`` = ``{n, counts, shares}``
        and ``effect_size`` the Jensen–Shannon distance. One category in both windows:
        statistic 0, p-value 1, effect 0 (nothing can have shifted).
    """
    cats = sorted(set(baseline) | set(current), key=str)
    b = np.array([int(baseline.get(k, 0)) for k in cats], dtype=np.float64)
    c = np.array([int(current.get(k, 0)) for k in cats], dtype=np.float64)
    if (b < 0).any() or (c < 0).any():
        raise ValueError("counts must be non-negative")

    def side(x):
        n = int(x.sum())
        return {
            "n": n,
            "counts": {str(k): int(v) for k, v in zip(cats, x, strict=True)},
            "shares": {str(k): _f(v / n) for k, v in zip(cats, x, strict=True)} if n else {},
        }

    n_b, n_c = int(b.sum()), int(c.sum())
    large = min(n_b, n_c) >= large_n
    check = _check("jensen_shannon" if large else "chi_square", side(b), side(c))
    if _small(n_b, n_c, min_n, unit, check):
        return check
    effect = js_distance(b, c)
    check["effect_size"] = effect
    if large:
        check["statistic"] = effect
        check["decided_by"] = "effect_size"
        check["reasons"]["p_value"] = (
            f"large samples (>= {large_n} per window): the effect size decides, "
            "every difference would be significant"
        )
        return check
    used = (b + c) > 0
    if used.sum() < 2:
        check["statistic"], check["p_value"] = 0.0, 1.0
        check["reasons"]["statistic"] = "one category in both windows"
        return check
    chi2, p, dof, _ = stats.chi2_contingency(np.vstack([b[used], c[used]]), correction=False)
    if n_clusters is not None:
        deff = max(n_b / max(n_clusters[0], 1), n_c / max(n_clusters[1], 1), 1.0)
        check["design_effect"] = _f(deff)
        chi2 = chi2 / deff
        p = stats.chi2.sf(chi2, dof)
    check["statistic"] = _f(chi2)
    check["p_value"] = _f(p)
    return check


# --------------------------------------------------------------------------- agreement


def bootstrap_proportion(k: int, n: int, *, n_bootstrap: int, rng) -> np.ndarray:
    """Bootstrap replicates of a proportion ``k / n`` (resampling the ``n`` 0/1 outcomes
    with replacement is a binomial draw), shape (n_bootstrap,); empty when ``n`` is 0."""
    if n <= 0:
        return np.zeros(0)
    return rng.binomial(n, k / n, size=int(n_bootstrap)) / n


def agreement_check(
    baseline_value: float | None,
    baseline_reps: Sequence[float] | np.ndarray,
    current_value: float | None,
    current_reps: Sequence[float] | np.ndarray,
    *,
    n_baseline: int,
    n_current: int,
    min_n: int = 30,
    unit: str = "labels",
    baseline_extra: dict | None = None,
    current_extra: dict | None = None,
    reasons: Mapping[str, str] | None = None,
) -> dict:
    """Drift of an agreement figure: the difference of the windows' bootstrap estimates.

    Parameters
    ----------
    baseline_value, current_value : float or None
        The point estimates (None when undefined; ``reasons`` says why).
    baseline_reps, current_reps : array_like of float
        Bootstrap replicates of each estimate (independent resamples of each window;
        undefined replicates already left out).
    n_baseline, n_current : int
        What each estimate rests on (labels, or items with two labels).

    Returns
    -------
    dict
        ``test = "bootstrap_difference"``, ``statistic`` = current - baseline,
        ``difference_ci`` (95 % percentile interval of the replicate differences),
        ``standard_error`` (standard deviation of the replicate differences), ``p_value``
        two-sided normal ``2 (1 - Phi(|statistic| / standard_error))``,
        ``effect_size = |statistic|``.
    """
    base = {"n": int(n_baseline), "value": _f(baseline_value), **(baseline_extra or {})}
    cur = {"n": int(n_current), "value": _f(current_value), **(current_extra or {})}
    check = _check("bootstrap_difference", base, cur)
    check["reasons"].update(reasons or {})
    if _small(int(n_baseline), int(n_current), min_n, unit, check):
        return check
    if base["value"] is None or cur["value"] is None:
        why = check["reasons"].get("value") or "the estimate is undefined in a window"
        for name in ("statistic", "p_value", "effect_size", "drifted"):
            check["reasons"][name] = why
        return check
    rb = _finite(baseline_reps)
    rc = _finite(current_reps)
    diff = cur["value"] - base["value"]
    check["statistic"] = _f(diff)
    check["effect_size"] = _f(abs(diff))
    m = min(rb.size, rc.size)
    if m == 0:
        check["reasons"]["p_value"] = "no defined bootstrap replicate"
        return check
    d = rc[:m] - rb[:m]
    # The p-value uses the bootstrap standard error of the difference (a Wald test):
    # counting replicates beyond 0 cannot go below 1 / (m + 1), which no multiple-testing
    # correction over a run's checks would let through.
    se = float(d.std(ddof=1)) if m > 1 else 0.0
    if se > 0:
        check["p_value"] = _f(2.0 * stats.norm.sf(abs(diff) / se))
    else:
        check["p_value"] = 1.0 if diff == 0 else 0.0
    check["standard_error"] = _f(se)
    lo, hi = np.percentile(d, [2.5, 97.5])
    check["difference_ci"] = [_f(lo), _f(hi)]
    return check


def gwet_ac1_replicates(counts, *, n_bootstrap: int, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of Gwet's AC1 over items, shape (<= n_bootstrap,).

    The same resampling as :func:`consistency.metrics.gwet.gwet_ac_bootstrap` (items drawn
    with replacement), computed on the distinct rows of ``counts``: items with the same
    label counts are interchangeable, so drawing ``n`` items is a multinomial draw over
    the distinct rows with their frequencies -- a few hundred rows instead of every item,
    which is what makes a window of 100,000 items take milliseconds per replicate.

    Parameters
    ----------
    counts : array_like of int, shape (n_items, q)
        Raters per item and category (as :func:`~consistency.metrics.gwet.gwet_ac`).

    Returns
    -------
    ndarray
        The defined replicates (empty when AC1 is undefined on every one).
    """
    r = np.asarray(counts, dtype=np.int64)
    if r.ndim != 2:
        raise ValueError("counts must be a 2-D array (items x categories)")
    r = r[r.sum(axis=1) > 0]
    n, q = r.shape
    if n == 0 or q < 2:
        return np.zeros(0)
    rows, freq = np.unique(r, axis=0, return_counts=True)
    rows = rows.astype(np.float64)
    ri = rows.sum(axis=1)
    two = ri >= 2
    pa_i = np.zeros(len(rows))
    pa_i[two] = (rows[two] * (rows[two] - 1.0)).sum(axis=1) / (ri[two] * (ri[two] - 1.0))
    share = rows / ri[:, None]
    rng = np.random.default_rng(seed)
    f = rng.multinomial(n, freq / n, size=int(n_bootstrap)).astype(np.float64)  # (B, rows)
    n_two = f @ two.astype(np.float64)
    pa = (f @ pa_i) / np.where(n_two > 0, n_two, 1.0)
    pi = (f @ share) / n
    pe = (pi * (1.0 - pi)).sum(axis=1) / (q - 1)
    ok = (n_two > 0) & (pe < 1.0)
    return (pa[ok] - pe[ok]) / (1.0 - pe[ok])


# --------------------------------------------------------------------------- rates


def rate_check(
    n_baseline: int,
    days_baseline: float,
    n_current: int,
    days_current: float,
    *,
    min_n: int = 30,
) -> dict:
    """Drift of a volume (items per day) between two windows of given lengths.

    Under "same rate", given the total ``N = n_b + n_c`` the current count is
    ``Binomial(N, d_c / (d_b + d_c))``: the exact two-sided binomial test. Effect size
    ``|rate_c / rate_b - 1|``.
    """
    rb = n_baseline / days_baseline if days_baseline > 0 else None
    rc = n_current / days_current if days_current > 0 else None
    check = _check(
        "binomial_rate",
        {"n": int(n_baseline), "days": _f(days_baseline), "per_day": _f(rb)},
        {"n": int(n_current), "days": _f(days_current), "per_day": _f(rc)},
    )
    if _small(int(n_baseline), int(n_current), min_n, "items", check):
        return check
    if not (days_baseline > 0 and days_current > 0):
        for name in ("statistic", "p_value", "effect_size", "drifted"):
            check["reasons"][name] = "a window has no length"
        return check
    total = n_baseline + n_current
    res = stats.binomtest(int(n_current), int(total), days_current / (days_baseline + days_current))
    check["statistic"] = _f(rc / rb)
    check["p_value"] = _f(res.pvalue)
    check["effect_size"] = _f(abs(rc / rb - 1.0))
    return check


# --------------------------------------------------------------------------- the run


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order.

    ``q_(i) = min_{j >= i} p_(j) m / j`` over the ``m`` non-None p-values sorted
    ascending, capped at 1; None stays None (and does not count in ``m``).

    >>> benjamini_hochberg([0.01, 0.04, 0.03, None, 0.5])
    [0.04, 0.053333, 0.053333, None, 0.5]
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    p = np.array([float(p_values[i]) for i in idx])
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be finite and in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    for i, v in zip(idx, q, strict=True):
        out[i] = _f(v)
    return out


def decide(checks: list[dict], *, q_threshold: float = 0.05, min_effect: float = 0.1) -> None:
    """Fill ``q_value`` and ``drifted`` of every check of a run, in place.

    q-values are Benjamini–Hochberg over all checks with a p-value. A check drifts when
    its effect size is at least ``min_effect`` and, if it has a p-value, its q-value is
    below ``q_threshold``. ``drifted`` stays None (with its reason) when the check could
    not be judged (too few values, undefined estimate).
    """
    qs = benjamini_hochberg([c.get("p_value") for c in checks])
    for check, q in zip(checks, qs, strict=True):
        check["q_value"] = q
        if q is None and check.get("p_value") is None:
            check["reasons"].setdefault(
                "q_value", check["reasons"].get("p_value") or "no p-value to correct"
            )
        if "drifted" in check["reasons"] and check["reasons"]["drifted"]:
            check["drifted"] = None
            continue
        effect = check.get("effect_size")
        if effect is None:
            check["drifted"] = None
            check["reasons"]["drifted"] = check["reasons"].get(
                "effect_size", "no effect size could be computed"
            )
            continue
        big = effect >= min_effect
        if check.get("decided_by") == "effect_size":
            check["drifted"] = bool(big)
        elif q is None:
            check["drifted"] = None
            check["reasons"]["drifted"] = check["reasons"].get("p_value", "no p-value")
        else:
            check["drifted"] = bool(big and q < q_threshold)
