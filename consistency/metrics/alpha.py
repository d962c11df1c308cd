"""Krippendorff's alpha and the mergeable sufficient statistics behind every metric.

Notation (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011):
``n_ic`` is the number of labels of value ``c`` on item ``i``, ``m_i = sum_c n_ic``;
only items with ``m_i >= 2`` are *pairable*.  The coincidence matrix is
``o_ck = sum_i n_ic (n_ik - [c == k]) / (m_i - 1)`` (i.e. ``C^T diag(1/(m_i-1)) C``
without the self-pairs), its marginals ``n_c`` and ``n = sum_c n_c``, and

    alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_i d_i / E
    d_i = sum_{c,k} n_ic n_ik delta2(c, k) / (m_i - 1)        (per item, O(m_i))
    E   = sum_{c,k} n_c n_k delta2(c, k)                     (O(V) or O(V^2))

Metric shortcuts, none of which builds an items x values x values array:

* nominal: ``sum_{c,k} n_c n_k [c != k] = m^2 - sum_c n_c^2``.
* interval: ``sum_{c,k} n_c n_k (x_c - x_k)^2 = 2 m sum_c n_c (x_c - xbar)^2`` with
  ``xbar`` the (weighted) mean -- O(V) for E, O(m_i) per item.
* ordinal: Krippendorff's ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2`` equals
  ``(M_k - M_c)^2`` with the mid-ranks ``M_c = sum_{g<=c} n_g - n_c / 2``, so ordinal
  alpha is interval alpha on mid-ranks (which depend on the marginals).
* ratio: ``((x_c - x_k) / (x_c + x_k))^2`` (0 when both are 0) is not separable; it
  uses a V x V matrix for E and within-item value pairs for d_i, for V <= 3000.

Items are grouped into *profiles* (distinct multisets of values): every per-item
quantity is a function of the profile, so alpha, percent agreement and their
bootstrap replicates are computed from (profile, frequency) pairs.

>>> import numpy as np
>>> nan = np.nan  # Krippendorff (2011), 4 coders x 12 units with missing values
>>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
...         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
>>> coder, item = np.nonzero(~np.isnan(data))
>>> values = np.asarray(data)[coder, item]
>>> [round(krippendorff_alpha(item, values, level=lv), 3)
...  for lv in ("nominal", "ordinal", "interval", "ratio")]
[0.743, 0.815, 0.849, 0.797]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Levels of measurement: the distance each level puts between two values is defined here.
LEVELS = ("nominal", "ordinal", "interval", "ratio")
CATEGORICAL_LEVELS = ("nominal", "ordinal")

MAX_DENSE_VALUES = 3000
_PAIR_CHUNK = 1_000_000  # labels per chunk when enumerating label pairs
_DENSE_PAIR_CELLS = 4_000_000


# --------------------------------------------------------------------------- helpers


def check_level(level: str) -> str:
    """Return ``level`` if it is a known level of measurement, else raise ValueError."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def _as_1d(name: str, a, dtype=None) -> np.ndarray:
    arr = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _int_codes(name: str, a) -> np.ndarray:
    arr = _as_1d(name, a)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr[np.isfinite(arr)] % 1 == 0):
            arr = np.where(np.isfinite(arr), arr, -1)
        else:
            raise ValueError(f"{name} must be integer codes, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _encode_values(values, level: str, n_classes, value_points):
    """Return (codes (N,), value_points (V,), keep mask (N,))."""
    if level in CATEGORICAL_LEVELS and value_points is None:
        codes = _int_codes("values", values)
        keep = codes >= 0
        if n_classes is None:
            n_classes = int(codes.max()) + 1 if keep.any() else 0
        if keep.any() and codes.max() >= n_classes:
            raise ValueError(f"value code {int(codes.max())} >= n_classes={n_classes}")
        return codes, np.arange(n_classes, dtype=np.float64), keep
    if value_points is not None:
        points = _as_1d("value_points", value_points, np.float64)
        if points.size > 1 and not np.all(np.diff(points) > 0):
            raise ValueError("value_points must be strictly increasing")
        codes = _int_codes("values", values)
        keep = codes >= 0
        if keep.any() and codes.max() >= points.size:
            raise ValueError(f"value code {int(codes.max())} >= len(value_points)")
        return codes, points, keep
    vals = _as_1d("values", values, np.float64)
    keep = np.isfinite(vals)
    if np.isinf(vals).any():
        raise ValueError("values must be finite (use NaN for a missing label)")
    points, codes = np.unique(vals[keep], return_inverse=True)
    full = np.full(vals.shape, -1, dtype=np.int64)
    full[keep] = codes
    return full, points, keep


def _runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Start offsets of runs of equal values in a sorted array (shape (R,))."""
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(([0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1))


def _item_value_counts(pos: np.ndarray, codes: np.ndarray, n_pos: int, n_values: int):
    """Sparse per-item value counts, sorted by (item, value).

    Parameters
    ----------
    pos : ndarray of int64, shape (N,)
        Item positions ``0..n_pos-1`` of each label.
    codes : ndarray of int64, shape (N,)
        Value codes ``0..n_values-1``.

    Returns
    -------
    t_pos, t_val, t_n : ndarray of int64, shape (T,)
        One entry per (item, value) present, with its label count.
    """
    n_values = max(int(n_values), 1)
    if pos.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    key = pos * n_values
    key += codes
    if n_pos * n_values <= 4 * pos.size + 1_000_000:
        dense = np.bincount(key, minlength=n_pos * n_values)
        del key
        nz = np.flatnonzero(dense)
        t_n = dense[nz]
        del dense
    else:
        nz, t_n = np.unique(key, return_counts=True)
        del key
    t_pos, t_val = np.divmod(nz, n_values)
    # copy=False: these are int64 already on 64-bit platforms; no second copy of each.
    return (
        t_pos.astype(np.int64, copy=False),
        t_val.astype(np.int64, copy=False),
        t_n.astype(np.int64, copy=False),
    )


@dataclass(frozen=True, eq=False)
class Profiles:
    """Pairable items grouped by their multiset of values.

    Attributes
    ----------
    m : ndarray of int64, shape (P,)
        Labels per profile (all >= 2).
    freq : ndarray of int64, shape (P,)
        Number of items with this profile.
    pos, val, n : ndarray of int64, shape (T,)
        Sparse value counts per profile, sorted by (profile, value).
    item_profile : ndarray of int64, shape (I,)
        Profile of every item position, -1 for items with fewer than 2 labels.
    n_values : int
    """

    m: np.ndarray
    freq: np.ndarray
    pos: np.ndarray
    val: np.ndarray
    n: np.ndarray
    item_profile: np.ndarray
    n_values: int

    @property
    def n_pairable_items(self) -> int:
        return int(self.freq.sum())


def _profile_ids(t_pos, t_val, t_n, n_items):
    """Integer id per item such that equal ids <=> equal (value, count) multisets."""
    length = np.bincount(t_pos, minlength=n_items)
    elem_base = int(t_n.max()) + 1 if t_n.size else 1
    # fast path: the whole count vector as one integer in base `elem_base`
    vmax = int(t_val.max()) + 1 if t_val.size else 1
    if vmax * np.log2(elem_base) < 62:
        weights = np.power(np.int64(elem_base), t_val)
        weights *= t_n
        key = np.zeros(n_items, dtype=np.int64)
        starts = np.cumsum(length) - length
        nonempty = length > 0
        key[nonempty] = np.add.reduceat(weights, starts[nonempty])
        return key
    # general path: hash-consing, one pass per distinct-value position
    elem = t_val * elem_base + t_n
    n_elem = int(elem.max()) + 1 if elem.size else 1
    if n_items * n_elem >= 2**62:
        raise ValueError("too many distinct (value, count) combinations to group items")
    starts = np.cumsum(length) - length
    state = np.zeros(n_items, dtype=np.int64)
    for j in range(int(length.max()) if n_items else 0):
        sel = np.flatnonzero(length > j)
        pair = state[sel] * n_elem + elem[starts[sel] + j]
        _, inv = np.unique(pair, return_inverse=True)
        state[sel] = inv
    return length * n_items + state


def build_profiles(t_pos, t_val, t_n, n_items: int, n_values: int) -> Profiles:
    """Group pairable items into profiles.

    Parameters
    ----------
    t_pos, t_val, t_n : ndarray of int64, shape (T,)
        Sparse per-item value counts sorted by (item, value), items ``0..n_items-1``.
    """
    m_item = np.bincount(t_pos, weights=t_n, minlength=n_items).astype(np.int64)
    pairable = m_item >= 2
    keep_t = pairable[t_pos]
    p_items = np.flatnonzero(pairable)
    item_profile = np.full(n_items, -1, dtype=np.int64)
    if p_items.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return Profiles(z, z, z, z, z, item_profile, n_values)
    # renumber pairable items 0..I'-1 (nothing to renumber, and no copies, when every
    # item has two labels)
    if p_items.size == n_items:
        tp, tv, tn = t_pos, t_val, t_n
    else:
        remap = np.cumsum(pairable) - 1
        tp, tv, tn = remap[t_pos[keep_t]], t_val[keep_t], t_n[keep_t]
        del remap
    del keep_t
    ids = _profile_ids(tp, tv, tn, p_items.size)
    _, first, inv, freq = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    item_profile[p_items] = inv
    # gather the triples of one representative item per profile
    length = np.bincount(tp, minlength=p_items.size)
    starts = np.cumsum(length) - length
    rep_len = length[first]
    offs = np.arange(rep_len.sum()) - np.repeat(np.cumsum(rep_len) - rep_len, rep_len)
    src = np.repeat(starts[first], rep_len) + offs
    pos = np.repeat(np.arange(first.size), rep_len)
    return Profiles(
        m=m_item[p_items[first]],
        freq=freq.astype(np.int64),
        pos=pos.astype(np.int64),
        val=tv[src],
        n=tn[src],
        item_profile=item_profile,
        n_values=n_values,
    )


# --------------------------------------------------------------------------- alpha core


def _ratio_delta(points: np.ndarray) -> np.ndarray:
    if points.size > MAX_DENSE_VALUES:
        raise ValueError(
            f"ratio alpha with {points.size} distinct values (> {MAX_DENSE_VALUES}) would need a "
            "V x V distance matrix; round or bin the values first"
        )
    s = points[:, None] + points[None, :]
    d = points[:, None] - points[None, :]
    out = np.zeros_like(s)
    np.divide(d, s, out=out, where=s != 0)
    return out * out


def _profile_pairs(prof: Profiles):
    """Within-profile pairs of distinct values (c != k), shape (Q,) each."""
    length = np.bincount(prof.pos, minlength=prof.m.size)
    starts = np.cumsum(length) - length
    reps = length[prof.pos]  # each triple pairs with every triple of its profile
    left = np.repeat(np.arange(prof.pos.size), reps)
    offs = np.arange(left.size) - np.repeat(np.cumsum(reps) - reps, reps)
    right = starts[prof.pos[left]] + offs
    keep = left != right
    return left[keep], right[keep]


class AlphaEngine:
    """Alpha, percent agreement and per-class alpha as functions of profile weights.

    ``weights`` (shape (P,)) are item counts per profile: the observed frequencies give
    the point estimate, a multinomial draw gives a bootstrap replicate.
    """

    def __init__(self, prof: Profiles, level: str, value_points: np.ndarray):
        check_level(level)
        self.prof = prof
        self.level = level
        self.points = np.asarray(value_points, dtype=np.float64)
        self.V = max(prof.n_values, 1)
        m = prof.m.astype(np.float64)
        self._m = m
        n = prof.n.astype(np.float64)
        sum_sq = np.bincount(prof.pos, weights=n * n, minlength=m.size)
        # pairwise agreement per profile: agreeing ordered pairs / all ordered pairs
        self.pair_agreement = (sum_sq - m) / (m * (m - 1)) if m.size else m
        self._d = None
        if level == "nominal":
            self._d = (m * m - sum_sq) / (m - 1)
        elif level == "interval":
            self._d = self._squared_spread(self.points)
        elif level == "ratio":
            self._delta = _ratio_delta(self.points)
            left, right = _profile_pairs(prof)
            contrib = n[left] * n[right] * self._delta[prof.val[left], prof.val[right]]
            self._d = np.bincount(prof.pos[left], weights=contrib, minlength=m.size) / (m - 1)

    def _squared_spread(self, x: np.ndarray) -> np.ndarray:
        """Per profile ``2 m sum_c n_c (x_c - xbar)^2 / (m - 1)``, shape (P,)."""
        prof, m = self.prof, self._m
        n = prof.n.astype(np.float64)
        xv = x[prof.val]
        mean = np.bincount(prof.pos, weights=n * xv, minlength=m.size) / m
        dev = xv - mean[prof.pos]
        ss = np.bincount(prof.pos, weights=n * dev * dev, minlength=m.size)
        return 2.0 * m * ss / (m - 1)

    def marginals(self, w: np.ndarray) -> np.ndarray:
        """Value marginals ``n_c`` of the coincidence matrix, shape (V,)."""
        return np.bincount(
            self.prof.val, weights=w[self.prof.pos] * self.prof.n, minlength=self.V
        ).astype(np.float64)

    def alpha(self, w: np.ndarray) -> tuple[float | None, str | None]:
        """Return (alpha, reason-if-None) for profile weights ``w`` (shape (P,))."""
        w = np.asarray(w, dtype=np.float64)
        if self.prof.m.size == 0 or w.sum() == 0:
            return None, "no item has two or more labels: no pairable values"
        nc = self.marginals(w)
        n = nc.sum()
        if self.level == "nominal":
            expected = n * n - float(np.dot(nc, nc))
        elif self.level == "ratio":
            expected = float(nc @ self._delta @ nc)
        else:
            x = self.points if self.level == "interval" else np.cumsum(nc) - nc / 2.0
            used = nc > 0
            mean = float(np.dot(nc, x)) / n
            dev = x[used] - mean
            expected = 2.0 * n * float(np.dot(nc[used], dev * dev))
        if expected <= 0 or np.count_nonzero(nc) < 2:
            return None, "only one value used: expected disagreement is 0"
        d = self._d if self._d is not None else self._squared_spread(np.cumsum(nc) - nc / 2.0)
        observed = float(np.dot(w, d))
        return float(1.0 - (n - 1.0) * observed / expected), None

    def percent_agreement(self, w: np.ndarray) -> float | None:
        """Mean over pairable items (each item weighted equally) of agreeing pairs / pairs."""
        w = np.asarray(w, dtype=np.float64)
        tot = w.sum()
        if tot == 0:
            return None
        return float(np.dot(w, self.pair_agreement) / tot)

    def per_class_alpha(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-vs-rest nominal alpha per value, shape (V,); NaN where undefined.

        Returns (alpha (V,), marginals n_c (V,)).
        """
        w = np.asarray(w, dtype=np.float64)
        prof, m = self.prof, self._m
        nc = self.marginals(w)
        n = nc.sum()
        k = prof.n.astype(np.float64)
        mm = m[prof.pos]
        d = 2.0 * k * (mm - k) / (mm - 1.0) * w[prof.pos]
        observed = np.bincount(prof.val, weights=d, minlength=self.V)
        expected = 2.0 * nc * (n - nc)
        out = np.full(self.V, np.nan)
        ok = expected > 0
        out[ok] = 1.0 - (n - 1.0) * observed[ok] / expected[ok]
        return out, nc

    def coincidences(self, w: np.ndarray) -> np.ndarray:
        """Krippendorff coincidence matrix ``o``, shape (V, V) (only for small V)."""
        prof = self.prof
        length = np.bincount(prof.pos, minlength=prof.m.size)
        starts = np.cumsum(length) - length
        reps = length[prof.pos]
        left = np.repeat(np.arange(prof.pos.size), reps)
        offs = np.arange(left.size) - np.repeat(np.cumsum(reps) - reps, reps)
        right = starts[prof.pos[left]] + offs
        p = prof.pos[left]
        nl, nr = prof.n[left].astype(np.float64), prof.n[right].astype(np.float64)
        val = nl * (nr - (left == right)) * w[p] / (self._m[p] - 1.0)
        key = prof.val[left] * self.V + prof.val[right]
        return np.bincount(key, weights=val, minlength=self.V * self.V).reshape(self.V, self.V)


def krippendorff_alpha(
    items,
    values,
    *,
    level: str = "nominal",
    n_values: int | None = None,
    value_metric_points=None,
) -> float | None:
    """Krippendorff's alpha from a long list of labels.

    Parameters
    ----------
    items : array_like of int, shape (N,)
        Item (unit) code of each label.  Codes need not be contiguous.
    values : array_like, shape (N,)
        Nominal / ordinal: int class codes ``0..n_values-1`` (negative = missing).
        Interval / ratio: float values (NaN = missing), or int codes into
        ``value_metric_points``.
    level : {"nominal", "ordinal", "interval", "ratio"}
    n_values : int, optional
        Number of classes (nominal / ordinal codes); default ``max(code) + 1``.
    value_metric_points : array_like of float, shape (V,), optional
        Strictly increasing metric value of each code (interval / ratio codes).

    Returns
    -------
    float or None
        None when alpha is undefined (no item with two labels; a single value used).

    Examples
    --------
    Perfect agreement, then a 2 x 2 case (two items, two coders, one disagreement):
    ``o_01 = o_10 = 1``, ``n_0 = 3``, ``n_1 = 1``, ``n = 4`` so ``D_o = 2/4`` and
    ``D_e = 2*3*1/(4*3)`` are equal and alpha is 0.

    >>> krippendorff_alpha([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> krippendorff_alpha([0, 0, 1, 1], [0, 0, 0, 1])
    0.0
    >>> krippendorff_alpha([0, 0, 1, 1], [1, 1, 1, 1]) is None
    True
    """
    check_level(level)
    codes, points, keep = _encode_values(
        values,
        level,
        n_values,
        None if value_metric_points is None else value_metric_points,
    )
    item_codes = _int_codes("items", items)
    if item_codes.shape != codes.shape:
        raise ValueError(f"items {item_codes.shape} and values {codes.shape} differ in shape")
    item_codes, codes = item_codes[keep], codes[keep]
    if item_codes.size and item_codes.min() < 0:
        raise ValueError("item codes must be non-negative")
    uniq, pos = np.unique(item_codes, return_inverse=True)
    t_pos, t_val, t_n = _item_value_counts(pos, codes, uniq.size, points.size)
    prof = build_profiles(t_pos, t_val, t_n, uniq.size, points.size)
    alpha, _ = AlphaEngine(prof, level, points).alpha(prof.freq)
    return alpha


# --------------------------------------------------------------------------- sufficient stats


def _pair_table(item, labeler, codes, n_labelers: int, k2: int, *, exact_flag: bool = False):
    """Count label pairs on shared items by (labeler a < b, value a, value b).

    Parameters
    ----------
    item, labeler, codes : ndarray of int64, shape (N,)
        Labels sorted by (item, labeler), one per (item, labeler).
    k2 : int
        Number of value codes (2 when ``exact_flag``).
    exact_flag : bool
        Record only whether the two values are equal (``va = 0``, ``vb = 0`` on an
        exact match, else 1) -- for interval / ratio data with many distinct values.

    Returns
    -------
    a, b, va, vb, count : ndarray of int64, shape (Q,)
        Sparse contingency, sorted by key; ``a < b``.
    """
    n_lab = item.size
    cells = n_labelers * n_labelers * k2 * k2
    if cells >= 2**62:
        raise ValueError("too many labelers x values for the pair table encoding")
    starts = _runs(item)
    m = np.diff(np.append(starts, n_lab))
    m_lab = np.repeat(m, m)
    r = np.arange(n_lab) - np.repeat(starts, m)
    npairs = m_lab - 1 - r
    dense = np.zeros(cells, dtype=np.int64) if cells <= _DENSE_PAIR_CELLS else None
    keys, counts = [], []
    for lo in range(0, n_lab, _PAIR_CHUNK):
        hi = min(n_lab, lo + _PAIR_CHUNK)
        cnt = npairs[lo:hi]
        tot = int(cnt.sum())
        if tot == 0:
            continue
        left = np.repeat(np.arange(lo, hi), cnt)
        right = left + 1 + (np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        if exact_flag:
            va, vb = 0, (codes[left] != codes[right]).astype(np.int64)
        else:
            va, vb = codes[left], codes[right]
        key = ((labeler[left] * n_labelers + labeler[right]) * k2 + va) * k2 + vb
        if dense is not None:
            dense += np.bincount(key, minlength=cells)
        else:
            u, c = np.unique(key, return_counts=True)
            keys.append(u)
            counts.append(c)
    if dense is not None:
        key = np.flatnonzero(dense)
        count = dense[key]
    else:
        key, count = _sum_sparse(keys, counts)
    rest, vb = np.divmod(key, k2)
    rest, va = np.divmod(rest, k2)
    a, b = np.divmod(rest, n_labelers)
    return a, b, va, vb, count.astype(np.int64)


def _sum_sparse(keys: list, counts: list):
    if not keys:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    key = np.concatenate(keys)
    cnt = np.concatenate(counts).astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, cnt = key[order], cnt[order]
    st = _runs(key)
    return key[st], np.add.reduceat(cnt, st) if st.size else cnt


@dataclass(frozen=True, eq=False)
class AgreementStats:
    """Mergeable sufficient statistics of a set of labels.

    Build with :meth:`from_labels` on all labels, or on chunks that partition the
    *items* and combine with :meth:`merge` / ``+``.  Merging sorts the per-label
    arrays by (item, labeler) and adds the integer pair tables, so the merged object
    holds exactly the arrays a single pass would build and every derived metric is
    bit-for-bit identical.

    Attributes
    ----------
    level : str
    value_points : ndarray of float64, shape (V,)
        ``arange(n_classes)`` for nominal / ordinal, the sorted distinct values for
        interval / ratio.
    n_labelers : int
        Size of the labeler code space.
    item, labeler, value : ndarray of int64, shape (N,)
        Labels sorted by (item, labeler); ``value`` codes into ``value_points``.
    pair_a, pair_b, pair_va, pair_vb, pair_n : ndarray of int64, shape (Q,)
        Pair contingency: ``pair_n`` items on which labeler ``a < b`` gave values
        ``(va, vb)``.  For interval / ratio data ``va = 0`` and ``vb`` is 0 for an exact
        match, 1 otherwise.
    """

    level: str
    value_points: np.ndarray
    n_labelers: int
    item: np.ndarray
    labeler: np.ndarray
    value: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_va: np.ndarray
    pair_vb: np.ndarray
    pair_n: np.ndarray

    @property
    def categorical(self) -> bool:
        return self.level in CATEGORICAL_LEVELS

    @property
    def n_values(self) -> int:
        return int(self.value_points.size)

    @property
    def n_annotations(self) -> int:
        return int(self.item.size)

    @classmethod
    def from_labels(
        cls,
        items,
        labelers,
        values,
        *,
        level: str,
        n_classes: int | None = None,
        value_points=None,
        n_labelers: int | None = None,
    ) -> AgreementStats:
        """Sufficient statistics of labels.

        Parameters
        ----------
        items, labelers : array_like of int, shape (N,)
            Non-negative item and labeler codes; at most one label per (item, labeler).
        values : array_like, shape (N,)
            Class codes (nominal / ordinal; negative = missing) or floats (interval /
            ratio; NaN = missing) or codes into ``value_points``.
        level : {"nominal", "ordinal", "interval", "ratio"}
        n_classes : int, optional
            Number of classes for nominal / ordinal codes.
        value_points : array_like of float, shape (V,), optional
            Metric value of each code, strictly increasing.
        n_labelers : int, optional
            Size of the labeler code space (default ``max(labelers) + 1``).
        """
        check_level(level)
        codes, points, keep = _encode_values(values, level, n_classes, value_points)
        item = _int_codes("items", items)
        lab = _int_codes("labelers", labelers)
        if not (item.shape == lab.shape == codes.shape):
            raise ValueError(
                f"items {item.shape}, labelers {lab.shape} and values {codes.shape} differ"
            )
        item, lab, codes = item[keep], lab[keep], codes[keep]
        if item.size and (item.min() < 0 or lab.min() < 0):
            raise ValueError("item and labeler codes must be non-negative")
        n_lab = int(lab.max()) + 1 if lab.size else 0
        n_labelers = n_lab if n_labelers is None else int(n_labelers)
        if n_labelers < n_lab:
            raise ValueError(f"labeler code {n_lab - 1} >= n_labelers={n_labelers}")
        item, lab, codes = _sort_labels(item, lab, codes, n_labelers)
        return cls._build(level, points, (item, lab, codes), n_labelers=n_labelers)

    @classmethod
    def _build(cls, level, points, labels, *, n_labelers, pairs=None):
        item, lab, codes = labels
        if pairs is None:
            cat = level in CATEGORICAL_LEVELS
            k2 = max(points.size, 1) if cat else 2
            pairs = _pair_table(item, lab, codes, max(n_labelers, 1), k2, exact_flag=not cat)
        return cls(level, points, n_labelers, item, lab, codes, *pairs)

    def merge(self, other: AgreementStats) -> AgreementStats:
        """Combine statistics of two disjoint sets of items (ValueError if they overlap)."""
        if not isinstance(other, AgreementStats):
            raise ValueError("can only merge AgreementStats")
        if self.level != other.level:
            raise ValueError(f"cannot merge levels {self.level!r} and {other.level!r}")
        if self.categorical and self.n_values != other.n_values:
            raise ValueError(f"n_classes differ: {self.n_values} vs {other.n_values}")
        if np.intersect1d(self.item, other.item).size:
            raise ValueError("chunks share items: chunks must partition the items")
        if self.categorical:
            points = self.value_points
            c1, c2 = self.value, other.value
        else:
            points = np.union1d(self.value_points, other.value_points)
            c1 = np.searchsorted(points, self.value_points)[self.value]
            c2 = np.searchsorted(points, other.value_points)[other.value]
        n_labelers = max(self.n_labelers, other.n_labelers)
        item, lab, codes = _sort_labels(
            np.concatenate([self.item, other.item]),
            np.concatenate([self.labeler, other.labeler]),
            np.concatenate([c1, c2]),
            n_labelers,
        )
        k2 = max(points.size, 1) if self.categorical else 2
        keys, counts = [], []
        for s in (self, other):
            keys.append(((s.pair_a * n_labelers + s.pair_b) * k2 + s.pair_va) * k2 + s.pair_vb)
            counts.append(s.pair_n)
        key, count = _sum_sparse(keys, counts)
        rest, vb = np.divmod(key, k2)
        rest, va = np.divmod(rest, k2)
        a, b = np.divmod(rest, max(n_labelers, 1))
        return self._build(
            self.level,
            points,
            (item, lab, codes),
            n_labelers=n_labelers,
            pairs=(a, b, va, vb, count),
        )

    __add__ = merge

    def subset(self, item_mask) -> AgreementStats:
        """Statistics of a subset of items.

        Parameters
        ----------
        item_mask : array_like of bool, shape (n_item_codes,)
            ``item_mask[code]`` selects item ``code``; codes beyond its length are
            not selected.
        """
        mask = _as_1d("item_mask", item_mask).astype(bool)
        sel = np.zeros(self.item.size, dtype=bool)
        inside = self.item < mask.size
        sel[inside] = mask[self.item[inside]]
        points = self.value_points
        return self._build(
            self.level,
            points,
            (self.item[sel], self.labeler[sel], self.value[sel]),
            n_labelers=self.n_labelers,
        )


def _sort_labels(item, lab, codes, n_labelers):
    key = item * max(n_labelers, 1) + lab
    if key.size > 1 and not np.all(key[1:] > key[:-1]):
        order = np.argsort(key, kind="stable")
        key, item, lab, codes = key[order], item[order], lab[order], codes[order]
        dup = np.flatnonzero(key[1:] == key[:-1])
        if dup.size:
            i = dup[0]
            raise ValueError(
                f"{dup.size} duplicate labels: labeler {int(lab[i])} labeled item "
                f"{int(item[i])} more than once (keep one label per item and labeler)"
            )
    return item, lab, codes
