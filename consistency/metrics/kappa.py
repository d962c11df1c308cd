"""Stand-alone Fleiss' and Cohen's kappa (the same numbers :func:`summarize` reports)."""

from __future__ import annotations

import numpy as np

from .alpha import AlphaEngine, _int_codes, _item_value_counts, build_profiles


def fleiss_kappa(items, values, *, n_classes: int | None = None) -> float | None:
    """Fleiss' kappa for any number of labels per item.

    Uses the per-item generalisation: ``P_i = sum_j n_ij (n_ij - 1) / (m_i (m_i - 1))``
    over items with ``m_i >= 2``, ``Pbar`` their unweighted mean, ``p_j`` the share of
    class ``j`` among all labels of those items, ``P_e = sum_j p_j^2``.  With the same
    number of labels on every item this is Fleiss (1971) / statsmodels ``fleiss_kappa``.

    Parameters
    ----------
    items : array_like of int, shape (N,)
    values : array_like of int, shape (N,)
        Class codes ``0..n_classes-1`` (negative = missing).

    Returns
    -------
    float or None
        None when no item has two labels or a single class is used.

    Examples
    --------
    >>> fleiss_kappa([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 0, 1])
    0.333333...
    """
    item = _int_codes("items", items)
    codes = _int_codes("values", values)
    if item.shape != codes.shape:
        raise ValueError(f"items {item.shape} and values {codes.shape} differ in shape")
    keep = codes >= 0
    item, codes = item[keep], codes[keep]
    k = int(n_classes) if n_classes is not None else (int(codes.max()) + 1 if codes.size else 1)
    uniq, pos = np.unique(item, return_inverse=True)
    t = _item_value_counts(pos, codes, uniq.size, k)
    prof = build_profiles(*t, uniq.size, k)
    eng = AlphaEngine(prof, "nominal", np.arange(k, dtype=np.float64))
    pa = eng.percent_agreement(prof.freq)
    if pa is None:
        return None
    nc = eng.marginals(prof.freq.astype(np.float64))
    p = nc / nc.sum()
    pe = float(np.dot(p, p))
    if pe >= 1.0:
        return None
    return (pa - pe) / (1.0 - pe)


def cohen_kappa(x, y, *, n_classes: int | None = None) -> float | None:
    """Unweighted Cohen's kappa of two aligned label arrays.

    Parameters
    ----------
    x, y : array_like of int, shape (N,)
        Class codes given by two labelers to the same N items.

    Returns
    -------
    float or None
        None when there are no items or chance agreement is 1 (one shared class).

    Examples
    --------
    >>> round(cohen_kappa([0, 0, 1, 1], [0, 1, 1, 1]), 6)
    0.5
    """
    a = _int_codes("x", x)
    b = _int_codes("y", y)
    if a.shape != b.shape:
        raise ValueError(f"x {a.shape} and y {b.shape} differ in shape")
    if a.size == 0:
        return None
    k = int(n_classes) if n_classes is not None else int(max(a.max(), b.max())) + 1
    table = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    n = table.sum()
    po = np.trace(table) / n
    pe = float(np.dot(table.sum(axis=1), table.sum(axis=0))) / (n * n)
    if pe >= 1.0:
        return None
    return float((po - pe) / (1.0 - pe))
