"""Agreement on bounding boxes (pure: numpy / scipy in, plain data out; no Django).

A box is ``{"class": key, "x", "y", "w", "h"}`` in image pixels, ``x``/``y`` the top-left
corner (``labeling.boxes``); an annotation is a list of boxes and ``[]`` is the explicit
answer "nothing there". Arrays of boxes are ``(n, 4)`` float arrays of ``x, y, w, h``.

Definitions used throughout
---------------------------
* **IoU** of two boxes: area of the intersection / area of the union (areas ``w * h``,
  as COCO computes them).
* **Matching** two labelers' boxes on an item: one-to-one, optimal (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``); a pair may match only when its IoU reaches
  the threshold. The assignment maximises first the number of matches, then their summed
  IoU (weights ``1 + IoU``: with a threshold above 0 one more match always outweighs any
  IoU gain). Agreement matching ignores classes (class agreement is measured separately
  on the matched boxes); per-class figures match within a class.
* **Pair scores** of boxes A against boxes B: ``tp`` matches, precision ``tp / |A|``,
  recall ``tp / |B|``, F1 ``2 tp / (|A| + |B|)``. Both empty is full agreement on
  "nothing there" (F1 = 1); one side empty is F1 = 0. Precision (recall) is undefined
  (None) when A (B) is empty.
* **box_f1** (runs): the mean F1 over every (item, pair of labelers) that labeled the
  item; **box_mean_iou**: the mean IoU over every matched pair of boxes.
* Intervals: percentile bootstrap over items (an item's boxes and labelers move
  together), ``confidence`` two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

Box = Mapping  # {"class", "x", "y", "w", "h"[, "score"]}

# Containment: a box lies inside another when this share of its area does.
DEFAULT_CONTAINMENT = 0.8


# --------------------------------------------------------------------------- geometry
def boxes_array(boxes: Sequence[Box]) -> np.ndarray:
    """``(n, 4)`` float array of ``x, y, w, h`` from box dicts (``(0, 4)`` when empty)."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[b["x"], b["y"], b["w"], b["h"]] for b in boxes], dtype=np.float64)


def _check(a) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4) of x, y, w, h; got {arr.shape}")
    if not np.isfinite(arr).all() or (arr[:, 2:] <= 0).any():
        raise ValueError("box coordinates must be finite, with positive w and h")
    return arr


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of ``a`` ``(n, 4)`` with every box of ``b`` ``(m, 4)``: ``(n, m)``.

    >>> float(iou_matrix([[0, 0, 2, 2]], [[1, 0, 2, 2]])[0, 0])  # 2 / (4 + 4 - 2)
    0.3333333333333333
    """
    return _iou(_check(a), _check(b))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`iou_matrix` of checked ``(n, 4)`` arrays (the hot path: no validation)."""
    if not a.shape[0] or not b.shape[0]:
        return np.zeros((a.shape[0], b.shape[0]))
    ax, ay, aw, ah = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    bx, by, bw, bh = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax + aw, bx + bw) - np.maximum(ax, bx)
    ih = np.minimum(ay + ah, by + bh) - np.maximum(ay, by)
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    return inter / (aw * ah + bw * bh - inter)


def containment_matrix(outer, inner) -> np.ndarray:
    """Share of each ``inner`` box's area inside each ``outer`` box: ``(n_outer, n_inner)``."""
    a, b = _check(outer), _check(inner)
    if not a.shape[0] or not b.shape[0]:
        return np.zeros((a.shape[0], b.shape[0]))
    iw = np.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None, :]) - np.maximum(
        a[:, 0][:, None], b[:, 0][None, :]
    )
    ih = np.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None, :]) - np.maximum(
        a[:, 1][:, None], b[:, 1][None, :]
    )
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    return inter / (b[:, 2] * b[:, 3])[None, :]


# --------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class Match:
    """One-to-one matches: ``a[i]`` with ``b[j]`` at ``iou`` (aligned arrays)."""

    i: np.ndarray
    j: np.ndarray
    iou: np.ndarray

    @property
    def n(self) -> int:
        return int(self.i.size)


def match_boxes(a, b, threshold: float = 0.5, *, ious: np.ndarray | None = None) -> Match:
    """Optimal one-to-one matching of boxes ``a`` ``(n, 4)`` and ``b`` ``(m, 4)``.

    Pairs with IoU >= ``threshold`` (0 < threshold <= 1) may match; the assignment
    maximises the number of matches, then their summed IoU. ``ious``: a precomputed
    ``(n, m)`` matrix to use instead (e.g. with cross-class pairs zeroed). Returns a
    :class:`Match` sorted by ``i``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    m = iou_matrix(a, b) if ious is None else np.asarray(ious, dtype=np.float64)
    empty = Match(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if m.size == 0:
        return empty
    allowed = m >= threshold
    if not allowed.any():
        return empty
    if allowed.sum(axis=0).max() == 1 and allowed.sum(axis=1).max() == 1:
        # Each box overlaps at most one other enough: the matching is forced.
        rows, cols = np.nonzero(allowed)
        return Match(rows.astype(np.int64), cols.astype(np.int64), m[rows, cols])
    weight = np.where(allowed, 1.0 + m, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(rows)
    return Match(rows[order].astype(np.int64), cols[order].astype(np.int64), m[rows, cols][order])


def class_aware_ious(a, b, classes_a: Sequence, classes_b: Sequence) -> np.ndarray:
    """IoU matrix with pairs of different classes set to 0 (they never match)."""
    m = iou_matrix(a, b)
    if m.size:
        same = np.asarray(classes_a, dtype=object)[:, None] == np.asarray(classes_b, dtype=object)
        m = np.where(same, m, 0.0)
    return m


@dataclass(frozen=True)
class PairScore:
    """Boxes A scored against boxes B on one item (see the module's definitions)."""

    tp: int
    n_a: int
    n_b: int
    iou_sum: float

    @property
    def f1(self) -> float:
        if self.n_a + self.n_b == 0:
            return 1.0  # both said "nothing there": full agreement
        return 2.0 * self.tp / (self.n_a + self.n_b)

    @property
    def precision(self) -> float | None:
        return self.tp / self.n_a if self.n_a else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.n_b if self.n_b else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.tp if self.tp else None


def pair_score(
    a: Sequence[Box], b: Sequence[Box], threshold: float = 0.5, *, by_class: bool = False
) -> PairScore:
    """Score box dicts ``a`` against ``b`` on one item.

    ``by_class``: boxes of different classes never match (per-class and model scoring);
    else classes are ignored (agreement on where the objects are).

    >>> s = pair_score([], [])
    >>> (s.f1, s.precision, s.recall)
    (1.0, None, None)
    """
    aa, bb = boxes_array(a), boxes_array(b)
    ious = (
        class_aware_ious(aa, bb, [x["class"] for x in a], [x["class"] for x in b])
        if by_class
        else _iou(aa, bb)
    )
    match = match_boxes(aa, bb, threshold, ious=ious)
    return PairScore(match.n, len(a), len(b), float(match.iou.sum()))


# --------------------------------------------------------------------------- consensus
def cluster_boxes(
    boxes_by_labeler: Sequence[np.ndarray], threshold: float = 0.5
) -> list[list[tuple[int, int]]]:
    """Group the boxes of several labelers on one item into objects.

    ``boxes_by_labeler``: one ``(n_l, 4)`` array per labeler. Labelers are taken in the
    given order; each one's boxes are matched (:func:`match_boxes`) to the running mean
    boxes of the clusters so far, a matched box joins its cluster, an unmatched one starts
    a new cluster. A cluster holds at most one box per labeler. Returns the clusters as
    lists of ``(labeler position, box index)``, in order of creation.
    """
    clusters: list[list[tuple[int, int]]] = []
    corners: list[np.ndarray] = []  # running sum of x1, y1, x2, y2 per cluster
    for lab, raw in enumerate(boxes_by_labeler):
        arr = _check(raw)
        if not arr.shape[0]:
            continue
        xyxy = np.column_stack([arr[:, 0], arr[:, 1], arr[:, 0] + arr[:, 2], arr[:, 1] + arr[:, 3]])
        matched: dict[int, int] = {}
        if clusters:
            means = np.array([c / len(m) for c, m in zip(corners, clusters, strict=True)])
            reps = np.column_stack([means[:, :2], means[:, 2:] - means[:, :2]])
            match = match_boxes(arr, reps, threshold, ious=_iou(arr, reps))
            matched = dict(zip(match.i.tolist(), match.j.tolist(), strict=True))
        for k in range(arr.shape[0]):
            if k in matched:
                c = matched[k]
                clusters[c].append((lab, k))
                corners[c] = corners[c] + xyxy[k]
            else:
                clusters.append([(lab, k)])
                corners.append(xyxy[k].copy())
    return clusters


def default_quorum(n_labelers: int) -> int:
    """A strict majority of the item's labelers (1 of 1, 2 of 2 or 3, 3 of 4 or 5)."""
    return n_labelers // 2 + 1


def consensus_boxes(
    labels: Mapping[object, Sequence[Box]],
    *,
    threshold: float = 0.5,
    quorum: int | None = None,
    weights: Mapping[object, float] | None = None,
) -> dict:
    """Consensus boxes of one item from every labeler's boxes.

    ``labels``: ``{labeler: [box dicts]}`` (an empty list is "nothing there" and counts
    towards the item's labelers). Boxes are clustered (:func:`cluster_boxes`, labelers in
    sorted order); a cluster is kept when at least ``quorum`` labelers (default a strict
    majority, :func:`default_quorum`) drew it. Its corners are averaged with the weights
    ``weights[labeler]`` (default 1; e.g. each labeler's agreement), its class is the
    most frequent (ties broken by summed weight, then by class key) and ``support`` is the
    number of labelers who drew it.

    Returns ``{"boxes": [{class, x, y, w, h, support, class_votes}], "dropped":
    [{class, x, y, w, h, support}], "n_labelers", "quorum", "status"}`` where status is
    ``disputed`` when a cluster fell below the quorum or a kept cluster's class has no
    strict majority, else ``agreed``. Coordinates are rounded to 2 decimals.
    """
    labelers = sorted(labels, key=str)
    n = len(labelers)
    q = default_quorum(n) if quorum is None else int(quorum)
    if n and not 1 <= q <= n:
        raise ValueError(f"quorum must be between 1 and {n}, got {q}")
    arrays = [boxes_array(labels[lab]) for lab in labelers]
    clusters = cluster_boxes(arrays, threshold)
    kept, dropped, disputed = [], [], False
    for members in clusters:
        w = np.array(
            [max(float((weights or {}).get(labelers[lab], 1.0)), 1e-6) for lab, _ in members]
        )
        xyxy = np.array(
            [
                [
                    arrays[lab][k, 0],
                    arrays[lab][k, 1],
                    arrays[lab][k, 0] + arrays[lab][k, 2],
                    arrays[lab][k, 1] + arrays[lab][k, 3],
                ]
                for lab, k in members
            ]
        )
        x1, y1, x2, y2 = (w[:, None] * xyxy).sum(axis=0) / w.sum()
        votes: dict[str, list[float]] = {}
        for (lab, k), wt in zip(members, w, strict=True):
            key = labels[labelers[lab]][k]["class"]
            entry = votes.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += wt
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        box = {
            "class": ranked[0][0],
            "x": round(float(x1), 2),
            "y": round(float(y1), 2),
            "w": round(float(x2 - x1), 2),
            "h": round(float(y2 - y1), 2),
            "support": len(members),
        }
        if len(members) >= q:
            if 2 * ranked[0][1][0] <= len(members) and len(ranked) > 1:
                disputed = True  # no strict class majority among those who drew it
            box["class_votes"] = {k: v[0] for k, v in ranked}
            kept.append(box)
        else:
            dropped.append(box)
            disputed = True
    return {
        "boxes": kept,
        "dropped": dropped,
        "n_labelers": n,
        "quorum": q,
        "status": "disputed" if disputed else "agreed",
    }


# --------------------------------------------------------------------------- alpha
def _alpha_from_parts(n_pairable, observed, expected_pairs) -> np.ndarray:
    """alpha = 1 - (N - 1) * observed / expected_pairs, NaN where undefined."""
    n_pairable = np.asarray(n_pairable, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    expected_pairs = np.asarray(expected_pairs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - (n_pairable - 1.0) * observed / expected_pairs
    return np.where((expected_pairs > 1e-12) & (n_pairable > 1), out, np.nan)


def interval_alpha_parts(units: Sequence[Sequence[float]]) -> np.ndarray:
    """Per unit ``(U, 4)``: ``m, sum v, sum v^2, within`` for interval alpha, where
    ``within = 2 (m sum v^2 - (sum v)^2) / (m - 1)`` (ordered pairs of the unit, squared
    differences, divided by ``m - 1``); units with fewer than 2 values are all zero."""
    out = np.zeros((len(units), 4))
    for u, values in enumerate(units):
        v = np.asarray(values, dtype=np.float64)
        if v.size < 2:
            continue
        s1, s2 = v.sum(), (v * v).sum()
        out[u] = (v.size, s1, s2, 2.0 * (v.size * s2 - s1 * s1) / (v.size - 1))
    return out


def interval_alpha(parts: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha (interval) from summed :func:`interval_alpha_parts` rows:
    ``parts`` shape ``(..., 4)``; NaN where undefined (fewer than 2 pairable values or
    one value throughout). Equal to ``krippendorff_alpha(level="interval")``."""
    p = np.asarray(parts, dtype=np.float64)
    n, s1, s2, within = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    return _alpha_from_parts(n, within, 2.0 * (n * s2 - s1 * s1))


def nominal_alpha_parts(units: Sequence[Sequence[int]], n_classes: int) -> np.ndarray:
    """Per unit ``(U, 2 + C)``: ``m, within, counts...`` for nominal alpha, with
    ``within = (m^2 - sum_c n_c^2) / (m - 1)``; units with fewer than 2 values are zero."""
    out = np.zeros((len(units), 2 + n_classes))
    for u, values in enumerate(units):
        v = np.asarray(values, dtype=np.int64)
        if v.size < 2:
            continue
        counts = np.bincount(v, minlength=n_classes).astype(np.float64)
        out[u, 0] = v.size
        out[u, 1] = (v.size**2 - (counts**2).sum()) / (v.size - 1)
        out[u, 2:] = counts
    return out


def nominal_alpha(parts: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha (nominal) from summed :func:`nominal_alpha_parts` rows."""
    p = np.asarray(parts, dtype=np.float64)
    n, within, counts = p[..., 0], p[..., 1], p[..., 2:]
    return _alpha_from_parts(n, within, n * n - (counts**2).sum(axis=-1))


# --------------------------------------------------------------------------- bootstrap
def bootstrap_weights(n_items: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(B, I)`` resampling counts of items (each row a multinomial draw summing to I)."""
    if n_items == 0 or n_bootstrap == 0:
        return np.zeros((0, n_items))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_bootstrap).astype(
        np.float64
    )


def percentile_ci(values: np.ndarray, confidence: float = 0.95) -> list[float] | None:
    """``[low, high]`` percentile interval of the finite replicates (None if under 10)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 10:
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(v, [tail, 100.0 - tail])
    return [round(float(low), 6), round(float(high), 6)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _num(value) -> float | None:
    """A finite float rounded to 6 places, else None."""
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


# --------------------------------------------------------------------------- AP (COCO)
REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)


def average_precision(
    ground_truth: Mapping[object, Sequence[Box]],
    predictions: Mapping[object, Sequence[Box]],
    *,
    iou_threshold: float = 0.5,
    max_dets: int = 100,
    items: Sequence | None = None,
) -> dict:
    """COCO-style average precision at one IoU threshold (``AP50`` at 0.5).

    ``ground_truth``: ``{item: [boxes]}``; ``predictions``: ``{item: [boxes with
    "score"]}``. ``items``: the items to evaluate (default: those of ``ground_truth``);
    predictions on other items are ignored. Follows ``pycocotools.cocoeval.COCOeval``
    (area range "all", no crowd boxes): per class and item, detections sorted by score
    (stable), the top ``max_dets`` kept, each matched greedily to the unmatched ground
    truth box of highest IoU >= threshold; per class, precision made monotone and read at
    101 recall points (0, 0.01, ..., 1; 0 past the highest recall), AP = their mean.
    Classes without ground truth boxes are left out; ``ap`` is the mean over the others.

    Returns ``{"ap": float | None, "per_class": {class: ap}, "n_gt": int, "n_pred": int,
    "reasons": {}}``.
    """
    keys = sorted(ground_truth if items is None else items, key=str)
    classes = sorted({b["class"] for k in keys for b in ground_truth.get(k, ())})
    per_class: dict[str, float] = {}
    n_gt = sum(len(ground_truth.get(k, ())) for k in keys)
    n_pred = sum(len(predictions.get(k, ())) for k in keys)
    for cls in classes:
        scores: list[np.ndarray] = []
        hits: list[np.ndarray] = []
        npig = 0
        for k in keys:
            g = [b for b in ground_truth.get(k, ()) if b["class"] == cls]
            d = [b for b in predictions.get(k, ()) if b["class"] == cls]
            if not g and not d:
                continue
            npig += len(g)
            s = np.array([float(b.get("score", 1.0)) for b in d], dtype=np.float64)
            order = np.argsort(-s, kind="mergesort")[:max_dets]
            d = [d[i] for i in order]
            ious = iou_matrix(boxes_array(d), boxes_array(g))
            taken = np.zeros(len(g), dtype=bool)
            tp = np.zeros(len(d), dtype=bool)
            for di in range(len(d)):
                best, m = min(iou_threshold, 1 - 1e-10), -1
                for gi in range(len(g)):
                    if taken[gi] or ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m >= 0:
                    taken[m], tp[di] = True, True
            scores.append(s[order])
            hits.append(tp)
        if npig == 0:
            continue
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        all_hits = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
        inds = np.argsort(-all_scores, kind="mergesort")
        tps = np.cumsum(all_hits[inds]).astype(np.float64)
        fps = np.cumsum(~all_hits[inds]).astype(np.float64)
        q = np.zeros(REC_THRESHOLDS.size)
        if tps.size:
            rc = tps / npig
            pr = tps / (fps + tps + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            pos = np.searchsorted(rc, REC_THRESHOLDS, side="left")
            ok = pos < pr.size
            q[ok] = pr[pos[ok]]
        per_class[cls] = float(q.mean())
    reasons = {}
    ap = None
    if per_class:
        ap = float(np.mean(list(per_class.values())))
    else:
        reasons["ap"] = "no ground-truth boxes on the evaluated items"
    return {
        "ap": _num(ap),
        "per_class": {k: _num(v) for k, v in per_class.items()},
        "n_gt": int(n_gt),
        "n_pred": int(n_pred),
        "reasons": reasons,
    }


def detection_scores(
    ground_truth: Mapping[object, Sequence[Box]],
    predictions: Mapping[object, Sequence[Box]],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    items: Sequence | None = None,
) -> dict:
    """Predictions with ``score >= score_threshold`` against ground truth, matched within
    classes (:func:`pair_score` with ``by_class``), over ``items`` (default: those of
    ``ground_truth``): micro ``precision`` (matches / predicted boxes), ``recall``
    (matches / ground-truth boxes) and ``box_f1`` (mean per-item F1, both empty = 1),
    ``n_items``; None with a reason when undefined."""
    keys = list(ground_truth if items is None else items)
    tp = n_pred = n_gt = 0
    f1s = []
    for k in keys:
        d = [b for b in predictions.get(k, ()) if float(b.get("score", 1.0)) >= score_threshold]
        s = pair_score(d, ground_truth.get(k, ()), iou_threshold, by_class=True)
        tp, n_pred, n_gt = tp + s.tp, n_pred + s.n_a, n_gt + s.n_b
        f1s.append(s.f1)
    reasons = {}
    if not n_pred:
        reasons["precision"] = "no predicted box at or above the score threshold"
    if not n_gt:
        reasons["recall"] = "no ground-truth box on the evaluated items"
    if not keys:
        reasons["box_f1"] = "no evaluated item"
    return {
        "precision": _num(tp / n_pred) if n_pred else None,
        "recall": _num(tp / n_gt) if n_gt else None,
        "box_f1": _num(np.mean(f1s)) if f1s else None,
        "n_items": len(keys),
        "n_matched": int(tp),
        "n_pred_boxes": int(n_pred),
        "n_gt_boxes": int(n_gt),
        "reasons": reasons,
    }


# --------------------------------------------------------------------------- runs
SIZE_BUCKETS = ("small", "medium", "large")


@dataclass
class _Tables:
    """Per-item sufficient statistics; every aggregate is a weighted sum over items."""

    pair_f1: np.ndarray  # (I,) sum of pair F1 over the item's labeler pairs
    n_pairs: np.ndarray  # (I,)
    iou_sum: np.ndarray  # (I,) IoU summed over matched pairs
    n_match: np.ndarray  # (I,)
    lab_f1: np.ndarray  # (I, L) F1 summed over pairs that include the labeler
    lab_pairs: np.ndarray  # (I, L)
    lab_tp: np.ndarray  # (I, L)
    lab_own: np.ndarray  # (I, L) the labeler's boxes, once per pair
    lab_other: np.ndarray  # (I, L) the other labeler's boxes, per pair
    lab_iou: np.ndarray  # (I, L)
    pair_f1_lab: np.ndarray  # (I, L, L)
    pair_n_lab: np.ndarray  # (I, L, L)
    log_ratio: np.ndarray  # (I, L, L) sum of log(area_a / area_b) over matches of a with b
    log_n: np.ndarray  # (I, L, L)
    class_tp: np.ndarray  # (I, C) class-aware matches per class, summed over pairs
    class_n: np.ndarray  # (I, C) boxes of the class on both sides, summed over pairs
    class_parts: np.ndarray  # (I, 2 + C) nominal alpha parts of matched clusters
    count_parts: np.ndarray  # (I, 4) interval alpha parts of the box counts
    n_boxes: np.ndarray  # (I, L) boxes per labeler (0 where not labeled)
    labeled: np.ndarray  # (I, L) bool
    group_boxes: np.ndarray  # (I, L) boxes containing >= 2 boxes of another labeler
    hlp_gold: np.ndarray  # (I, L) F1 against ground truth, NaN where none
    hlp_loo: np.ndarray  # (I, L) F1 against the other labelers' consensus, NaN where none
    confusion: np.ndarray  # (C, C) class coincidences of matched pairs (symmetric)


def _wsum(weights: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``weights`` (I,) or (B, I) times ``table`` (I, ...) summed over items."""
    return np.tensordot(weights, table, axes=([weights.ndim - 1], [0]))


class BoxAgreement:
    """Agreement on the boxes of several labelers over many items.

    Parameters
    ----------
    labels : mapping ``{item: {labeler: [box dicts]}}``
        Current labels; ``[]`` is "nothing there". Items with one labeler count for
        counts and HLP against ground truth only.
    classes : sequence of str
        Class keys (after merges); boxes of other classes raise ``ValueError``.
    threshold : float
        IoU at which two boxes are the same object.
    gold : mapping ``{item: [box dicts]}``, optional
        Ground-truth boxes; ``gold_labeler`` ``{item: labeler}`` names the labeler whose
        annotation carries them (left out of HLP on that item).
    containment : float
        Share of a box's area inside another for "contains" (group-vs-object).
    """

    def __init__(
        self,
        labels: Mapping[object, Mapping[object, Sequence[Box]]],
        *,
        classes: Sequence[str],
        threshold: float = 0.5,
        gold: Mapping[object, Sequence[Box]] | None = None,
        gold_labeler: Mapping[object, object] | None = None,
        containment: float = DEFAULT_CONTAINMENT,
    ):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.classes = list(classes)
        self.code = {c: n for n, c in enumerate(self.classes)}
        self.items = sorted(labels, key=str)
        self.labelers = sorted({lab for per in labels.values() for lab in per}, key=str)
        self.labels = labels
        self.gold = dict(gold or {})
        self.gold_labeler = dict(gold_labeler or {})
        self.containment = float(containment)
        for per in labels.values():
            for boxes in per.values():
                for b in boxes:
                    if b["class"] not in self.code:
                        raise ValueError(f"unknown box class {b['class']!r}")
        self.t = self._tables()

    # ------------------------------------------------------------------ per item
    def _tables(self) -> _Tables:
        n_i, n_l, n_c = len(self.items), len(self.labelers), len(self.classes)
        lpos = {lab: n for n, lab in enumerate(self.labelers)}

        def z1():
            return np.zeros(n_i)

        def zl():
            return np.zeros((n_i, n_l))

        def zll():
            return np.zeros((n_i, n_l, n_l))

        t = _Tables(
            pair_f1=z1(),
            n_pairs=z1(),
            iou_sum=z1(),
            n_match=z1(),
            lab_f1=zl(),
            lab_pairs=zl(),
            lab_tp=zl(),
            lab_own=zl(),
            lab_other=zl(),
            lab_iou=zl(),
            pair_f1_lab=zll(),
            pair_n_lab=zll(),
            log_ratio=zll(),
            log_n=zll(),
            class_tp=np.zeros((n_i, n_c)),
            class_n=np.zeros((n_i, n_c)),
            class_parts=np.zeros((n_i, 2 + n_c)),
            count_parts=np.zeros((n_i, 4)),
            n_boxes=zl(),
            labeled=np.zeros((n_i, n_l), dtype=bool),
            group_boxes=zl(),
            hlp_gold=np.full((n_i, n_l), np.nan),
            hlp_loo=np.full((n_i, n_l), np.nan),
            confusion=np.zeros((n_c, n_c)),
        )
        self._loo_refs: list[tuple[int, int, float, bool]] = []  # (item, labeler, area, hit)
        self._group_items: dict[int, list[int]] = {}
        for i, item in enumerate(self.items):
            per = self.labels[item]
            labs = sorted(per, key=str)
            pos = [lpos[lab] for lab in labs]
            arrays = [boxes_array(per[lab]) for lab in labs]
            cls = [
                np.array([self.code[b["class"]] for b in per[lab]], dtype=np.int64) for lab in labs
            ]
            for p, arr in zip(pos, arrays, strict=True):
                t.n_boxes[i, p] = arr.shape[0]
                t.labeled[i, p] = True
            t.count_parts[i] = interval_alpha_parts([[a.shape[0] for a in arrays]])[0]
            for x in range(len(labs)):
                for y in range(x + 1, len(labs)):
                    self._pair(t, i, pos[x], pos[y], arrays[x], arrays[y], cls[x], cls[y])
            for x in range(len(labs)):
                mask = np.zeros(arrays[x].shape[0], dtype=bool)
                for y in range(len(labs)):
                    if y != x:
                        mask |= self._group_box_mask(arrays[x], arrays[y])
                if mask.any():
                    t.group_boxes[i, pos[x]] = mask.sum()
                    self._group_items.setdefault(pos[x], []).append(i)
            # class agreement: clusters of all labelers' boxes, two or more boxes each
            units = [
                [int(cls[lab][k]) for lab, k in members]
                for members in cluster_boxes(arrays, self.threshold)
                if len(members) >= 2
            ]
            if units:
                t.class_parts[i] = nominal_alpha_parts(units, n_c).sum(axis=0)
            self._hlp(t, i, item, labs, pos)
        return t

    def _pair(self, t, i, a, b, boxes_a, boxes_b, cls_a, cls_b) -> None:
        ious = _iou(boxes_a, boxes_b)
        m = match_boxes(boxes_a, boxes_b, self.threshold, ious=ious)
        s = PairScore(m.n, boxes_a.shape[0], boxes_b.shape[0], float(m.iou.sum()))
        t.pair_f1[i] += s.f1
        t.n_pairs[i] += 1
        t.iou_sum[i] += s.iou_sum
        t.n_match[i] += s.tp
        for me, other, n_me, n_other in ((a, b, s.n_a, s.n_b), (b, a, s.n_b, s.n_a)):
            t.lab_f1[i, me] += s.f1
            t.lab_pairs[i, me] += 1
            t.lab_tp[i, me] += s.tp
            t.lab_own[i, me] += n_me
            t.lab_other[i, me] += n_other
            t.lab_iou[i, me] += s.iou_sum
            t.pair_f1_lab[i, me, other] += s.f1
            t.pair_n_lab[i, me, other] += 1
        if m.n:
            area_a = boxes_a[m.i, 2] * boxes_a[m.i, 3]
            area_b = boxes_b[m.j, 2] * boxes_b[m.j, 3]
            lr = float(np.log(area_a / area_b).sum())
            t.log_ratio[i, a, b] += lr
            t.log_ratio[i, b, a] -= lr
            t.log_n[i, a, b] += m.n
            t.log_n[i, b, a] += m.n
            np.add.at(t.confusion, (cls_a[m.i], cls_b[m.j]), 0.5)
            np.add.at(t.confusion, (cls_b[m.j], cls_a[m.i]), 0.5)
        if ious.size:
            same = cls_a[:, None] == cls_b[None, :]
            mc = match_boxes(boxes_a, boxes_b, self.threshold, ious=np.where(same, ious, 0.0))
            np.add.at(t.class_tp[i], cls_a[mc.i], 1.0)
        np.add.at(t.class_n[i], cls_a, 1.0)
        np.add.at(t.class_n[i], cls_b, 1.0)

    def _group_box_mask(self, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
        """Boxes of ``outer`` that each contain two or more boxes of ``inner``."""
        if outer.shape[0] == 0 or inner.shape[0] < 2:
            return np.zeros(outer.shape[0], dtype=bool)
        inside = containment_matrix(outer, inner) >= self.containment
        # An inner box that matches the outer one (IoU at the threshold) is the same object
        # drawn tighter, not a member of a group.
        inside &= _iou(outer, inner) < self.threshold
        return inside.sum(axis=1) >= 2

    def _hlp(self, t, i, item, labs, pos) -> None:
        per = self.labels[item]
        gold = self.gold.get(item)
        owner = self.gold_labeler.get(item)
        for x, lab in enumerate(labs):
            if gold is not None and lab != owner:
                t.hlp_gold[i, pos[x]] = pair_score(per[lab], gold, self.threshold).f1
            others = {o: per[o] for o in labs if o != lab}
            if not others:
                continue
            ref = consensus_boxes(others, threshold=self.threshold)["boxes"]
            t.hlp_loo[i, pos[x]] = pair_score(per[lab], ref, self.threshold).f1
            ref_arr, own = boxes_array(ref), boxes_array(per[lab])
            hit = np.zeros(ref_arr.shape[0], dtype=bool)
            hit[match_boxes(own, ref_arr, self.threshold, ious=_iou(own, ref_arr)).j] = True
            for r in range(ref_arr.shape[0]):
                self._loo_refs.append((i, pos[x], float(ref_arr[r, 2] * ref_arr[r, 3]), hit[r]))

    # ------------------------------------------------------------------ aggregates
    def _f1(self, w):
        t = self.t
        return _ratio(_wsum(w, t.pair_f1), _wsum(w, t.n_pairs))

    def _stats(self, w) -> dict[str, np.ndarray]:
        """Every bootstrapped figure for item weights ``w`` ((I,) or (B, I))."""
        t = self.t
        return {
            "box_f1": self._f1(w),
            "box_mean_iou": _ratio(_wsum(w, t.iou_sum), _wsum(w, t.n_match)),
            "count_alpha": interval_alpha(_wsum(w, t.count_parts)),
            "class_alpha": nominal_alpha(_wsum(w, t.class_parts)),
        }

    def summary(
        self,
        *,
        item_mask: np.ndarray | None = None,
        n_bootstrap: int = 1000,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> dict:
        """Overall figures on the items of ``item_mask`` (bool (I,); default all) with
        bootstrap intervals: ``{box_f1, box_mean_iou, count_alpha, class_alpha (+ _ci),
        n_items, n_annotations, n_boxes, n_labelers, n_item_pairs, n_matched_pairs,
        hlp: {...}, reasons}``."""
        t = self.t
        mask = np.ones(len(self.items), dtype=bool) if item_mask is None else item_mask
        w = mask.astype(np.float64)
        point = {k: v for k, v in self._stats(w).items()}
        idx = np.flatnonzero(mask)
        reps = bootstrap_weights(idx.size, n_bootstrap, seed)
        full = np.zeros((reps.shape[0], len(self.items)))
        full[:, idx] = reps
        boot = self._stats(full) if reps.size else {}
        out: dict = {}
        reasons: dict[str, str] = {}
        why = {
            "box_f1": "no item with two or more labelers",
            "box_mean_iou": f"no pair of boxes matched at IoU >= {self.threshold:g}",
            "count_alpha": "no item with two or more labelers, or every labeler drew the "
            "same number of boxes on every item (alpha is undefined without variation)",
            "class_alpha": "no object drawn by two or more labelers, or one class throughout",
        }
        for key, value in point.items():
            v = _num(value)
            out[key] = v
            if v is None:
                reasons[key] = why[key]
                out[f"{key}_ci"] = None
                continue
            ci = percentile_ci(boot[key], confidence) if boot else None
            out[f"{key}_ci"] = ci
            if ci is None:
                reasons[f"{key}_ci"] = (
                    "no bootstrap requested (n_bootstrap=0)"
                    if not n_bootstrap
                    else "too few defined bootstrap replicates"
                )
        labeled = t.labeled[mask]
        out.update(
            n_items=int(mask.sum()),
            n_annotations=int(labeled.sum()),
            n_boxes=int(t.n_boxes[mask].sum()),
            n_labelers=int(labeled.any(axis=0).sum()),
            n_item_pairs=int(t.n_pairs[mask].sum()),
            n_matched_pairs=int(t.n_match[mask].sum()),
        )
        out["hlp"] = self._hlp_summary(mask, reps, idx, confidence)
        out["reasons"] = reasons
        return out

    def _hlp_summary(self, mask, reps, idx, confidence) -> dict:
        t = self.t
        has_gold = bool(np.isfinite(t.hlp_gold[mask]).any())
        blocks = {}
        for name, table in (("gold", t.hlp_gold), ("pairwise", t.hlp_loo)):
            ok = np.isfinite(table)
            per_item_sum = np.where(ok, table, 0.0).sum(axis=1)
            per_item_n = ok.sum(axis=1).astype(np.float64)
            w = mask.astype(np.float64)
            value = _ratio(w @ per_item_sum, w @ per_item_n)
            ci = None
            if reps.size:
                ci = percentile_ci(
                    _ratio(reps @ per_item_sum[idx], reps @ per_item_n[idx]), confidence
                )
            blocks[name] = {
                "value": _num(value),
                "ci": ci,
                "n_items": int(((per_item_n > 0) & mask).sum()),
            }
        method = "gold" if has_gold else "pairwise"
        reasons = {}
        head = blocks[method]
        if head["value"] is None:
            reasons["value"] = (
                "no labeler could be scored (an item needs ground truth, or a second labeler)"
            )
        if not has_gold:
            reasons["gold"] = "no ground-truth boxes on these items"
        return {
            "value": head["value"],
            "ci": head["ci"],
            "method": method,
            "gold": blocks["gold"],
            "pairwise": blocks["pairwise"],
            "reasons": reasons,
        }

    def per_labeler(
        self, *, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> list[dict]:
        """Per labeler against the others: ``box_f1`` (mean over its item pairs, with CI),
        ``precision`` / ``recall`` (its boxes as predictions, the other labeler's as
        reference, pooled), ``box_mean_iou``, ``hlp_f1`` (against ground truth where the
        item has it, else the others' consensus), ``size_ratio`` (+ CI, see
        :meth:`size_ratios`), ``group_box_rate`` and ``recall_by_size``."""
        t = self.t
        n_i = len(self.items)
        reps = bootstrap_weights(n_i, n_bootstrap, seed)
        ones = np.ones(n_i)
        f1 = _ratio(ones @ t.lab_f1, ones @ t.lab_pairs)
        f1_boot = _ratio(reps @ t.lab_f1, reps @ t.lab_pairs) if reps.size else None
        sizes = self.size_ratios(n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)
        by_size = self.recall_by_size()
        out = []
        for p, lab in enumerate(self.labelers):
            reasons: dict[str, str] = {}
            gold_ok = np.isfinite(t.hlp_gold[:, p])
            loo_ok = np.isfinite(t.hlp_loo[:, p])
            if gold_ok.any():
                hlp, hlp_method = float(t.hlp_gold[gold_ok, p].mean()), "gold"
            elif loo_ok.any():
                hlp, hlp_method = float(t.hlp_loo[loo_ok, p].mean()), "pairwise"
            else:
                hlp, hlp_method = None, None
                reasons["hlp_f1"] = "no item with ground truth or another labeler"
            own, other, tp = t.lab_own[:, p].sum(), t.lab_other[:, p].sum(), t.lab_tp[:, p].sum()
            entry = {
                "labeler": lab,
                "n": int(t.labeled[:, p].sum()),
                "n_boxes": int(t.n_boxes[:, p].sum()),
                "n_shared_items": int((t.lab_pairs[:, p] > 0).sum()),
                "box_f1": _num(f1[p]),
                "box_f1_ci": percentile_ci(f1_boot[:, p], confidence)
                if f1_boot is not None
                else None,
                "precision": _num(tp / own) if own else None,
                "recall": _num(tp / other) if other else None,
                "box_mean_iou": _num(t.lab_iou[:, p].sum() / tp) if tp else None,
                "hlp_f1": _num(hlp),
                "hlp_method": hlp_method,
                "group_box_rate": _num(t.group_boxes[:, p].sum() / t.n_boxes[:, p].sum())
                if t.n_boxes[:, p].sum()
                else None,
                "n_group_boxes": int(t.group_boxes[:, p].sum()),
                "size_ratio": sizes[p]["ratio"],
                "size_ratio_ci": sizes[p]["ci"],
                "n_size_matches": sizes[p]["n_matches"],
                "recall_by_size": by_size[p],
                # contract names shared with class projects
                "agreement_with_consensus": _num(hlp),
                "cohen_kappa_mean": None,
            }
            if entry["box_f1"] is None:
                reasons["box_f1"] = "no item shared with another labeler"
            if entry["precision"] is None:
                reasons["precision"] = "drew no box on items shared with another labeler"
            if entry["recall"] is None:
                reasons["recall"] = "the other labelers drew no box on the shared items"
            if entry["box_mean_iou"] is None:
                reasons["box_mean_iou"] = "no matched box"
            if sizes[p]["reason"]:
                reasons["size_ratio"] = sizes[p]["reason"]
            reasons["cohen_kappa_mean"] = "boxes: see box_f1"
            entry["reasons"] = reasons
            out.append(entry)
        return out

    def size_ratios(
        self, *, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> list[dict]:
        """Each labeler's box size relative to the majority convention (loose vs tight).

        For labelers ``a, b``: ``d_ab`` = mean of ``log(area_a / area_b)`` over their
        matched boxes. Effects ``s``: the least-squares solution of ``d_ab = s_a - s_b``
        over the pairs that matched boxes, with sum zero, then shifted so that the median
        labeler is 0: one loose labeler among tight ones gets its full
        offset and the others none. ``ratio = exp(s)`` (area ratio; 1.44 = 20 % larger
        sides), with a bootstrap interval over items. Needs 3 labelers: with two, who is
        loose cannot be told from the data.
        """
        t = self.t
        n_l = len(self.labelers)
        n_matches = t.log_n.sum(axis=(0, 2))

        pairs = [(a, b) for a in range(n_l) for b in range(a + 1, n_l)]

        def effects(lr, ln):
            # Least squares d_ab = s_a - s_b over the pairs with matches (a loose and a
            # tight labeler may never match each other), sum(s) = 0; then the median
            # labeler is moved to 0.
            d = _ratio(lr, ln)
            rows = [(a, b) for a, b in pairs if np.isfinite(d[a, b])]
            design = np.zeros((len(rows) + 1, n_l))
            target = np.zeros(len(rows) + 1)
            for r, (a, b) in enumerate(rows):
                design[r, a], design[r, b], target[r] = 1.0, -1.0, d[a, b]
            design[-1] = 1.0
            s = np.linalg.lstsq(design, target, rcond=None)[0]
            return s - np.median(s)

        out = []
        if n_l < 3:
            return [
                {
                    "ratio": None,
                    "ci": None,
                    "n_matches": int(n_matches[p]),
                    "reason": "needs three or more labelers to tell who draws larger boxes",
                }
                for p in range(n_l)
            ]
        ones = np.ones(len(self.items))
        s = effects(_wsum(ones, t.log_ratio), _wsum(ones, t.log_n))
        reps = bootstrap_weights(len(self.items), n_bootstrap, seed)
        boot = None
        if reps.size:
            lr, ln = _wsum(reps, t.log_ratio), _wsum(reps, t.log_n)
            boot = np.array([effects(lr[r], ln[r]) for r in range(reps.shape[0])])
        for p in range(n_l):
            if n_matches[p] == 0:
                out.append({"ratio": None, "ci": None, "n_matches": 0, "reason": "no matched box"})
                continue
            ci = percentile_ci(np.exp(boot[:, p]), confidence) if boot is not None else None
            out.append(
                {
                    "ratio": _num(math.exp(s[p])),
                    "ci": ci,
                    "n_matches": int(n_matches[p]),
                    "reason": None,
                }
            )
        return out

    def size_edges(self) -> list[float] | None:
        """Area tertiles of the reference boxes (the others' consensus), for buckets."""
        areas = np.array([r[2] for r in self._loo_refs])
        if areas.size < 3:
            return None
        return [float(x) for x in np.quantile(areas, [1 / 3, 2 / 3])]

    def recall_by_size(self) -> list[dict]:
        """Per labeler: recall against the other labelers' consensus boxes, by size
        bucket (area tertiles of all such reference boxes, :meth:`size_edges`):
        ``{small: {recall, n}, medium: ..., large: ..., edges: [a1, a2] (pixels^2)}``."""
        edges = self.size_edges()
        out = []
        for p in range(len(self.labelers)):
            entry: dict = {"edges": edges}
            rows = [r for r in self._loo_refs if r[1] == p]
            for b, name in enumerate(SIZE_BUCKETS):
                if edges is None:
                    entry[name] = {"recall": None, "n": 0}
                    continue
                sel = [r[3] for r in rows if int(np.searchsorted(edges, r[2], side="right")) == b]
                entry[name] = {"recall": _num(np.mean(sel)) if sel else None, "n": len(sel)}
            out.append(entry)
        return out

    def per_class(
        self, *, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> list[dict]:
        """Per class: ``box_f1`` with class-aware matching, pooled over labeler pairs
        (``2 matches / boxes of the class on both sides``) with a bootstrap interval over
        items (``box_f1_ci``), ``support`` (boxes)."""
        t = self.t
        reps = bootstrap_weights(len(self.items), n_bootstrap, seed)
        boot = _ratio(2 * (reps @ t.class_tp), reps @ t.class_n) if reps.size else None
        out = []
        n_boxes = np.zeros(len(self.classes))
        for per in self.labels.values():
            for boxes in per.values():
                for b in boxes:
                    n_boxes[self.code[b["class"]]] += 1
        tp, n = t.class_tp.sum(axis=0), t.class_n.sum(axis=0)
        for c, key in enumerate(self.classes):
            entry = {
                "class": key,
                "support": int(n_boxes[c]),
                "box_f1": _num(2 * tp[c] / n[c]) if n[c] else None,
                "box_f1_ci": percentile_ci(boot[:, c], confidence)
                if boot is not None and n[c]
                else None,
                "krippendorff_alpha": None,
                "reasons": {"krippendorff_alpha": "boxes: see box_f1 and overall.class_alpha"},
            }
            if entry["box_f1"] is None:
                entry["reasons"]["box_f1"] = "no box of this class on an item with two labelers"
            out.append(entry)
        return out

    def pairwise(self) -> dict:
        """``{labelers, box_f1: [[...]], n_shared: [[...]]}`` (mean F1 of each pair over
        the items both labeled; None where they share no item)."""
        t = self.t
        f1, n = t.pair_f1_lab.sum(axis=0), t.pair_n_lab.sum(axis=0)
        grid = [
            [_num(f1[a, b] / n[a, b]) if n[a, b] else None for b in range(len(self.labelers))]
            for a in range(len(self.labelers))
        ]
        return {
            "labelers": list(self.labelers),
            "box_f1": grid,
            "n_shared": n.astype(int).tolist(),
            "cohen_kappa": None,
            "reasons": {"cohen_kappa": "boxes: see box_f1"},
        }

    def confusion(self) -> dict:
        """Class coincidences of class-agnostic matched boxes (symmetric, pairs)."""
        return {
            "classes": list(self.classes),
            "counts": [[_num(x) for x in row] for row in self.t.confusion],
            "definition": "pairs of matched boxes (IoU at or above the threshold) by the two "
            "labelers' classes, counted half in each direction",
        }

    def item_disagreement(self) -> list[dict]:
        """Per item with two or more labelers: ``{item, box_f1 (mean over pairs),
        counts: {labeler: n boxes}, count_range}``, most disagreeing first."""
        t = self.t
        out = []
        for i, item in enumerate(self.items):
            if not t.n_pairs[i]:
                continue
            counts = {self.labelers[p]: int(t.n_boxes[i, p]) for p in np.flatnonzero(t.labeled[i])}
            out.append(
                {
                    "item": item,
                    "box_f1": _num(t.pair_f1[i] / t.n_pairs[i]),
                    "counts": counts,
                    "count_range": max(counts.values()) - min(counts.values()),
                }
            )
        out.sort(key=lambda e: (-e["count_range"], e["box_f1"], str(e["item"])))
        return out

    def group_items(self, labeler) -> list:
        """Items where ``labeler`` drew a box containing two or more boxes of another."""
        p = self.labelers.index(labeler)
        rows = self._group_items.get(p, [])
        rows = sorted(rows, key=lambda i: (-self.t.group_boxes[i, p], str(self.items[i])))
        return [self.items[i] for i in rows]

    def size_items(self, labeler, *, larger: bool) -> list:
        """Items where ``labeler``'s matched boxes are most larger (smaller) than others'."""
        p = self.labelers.index(labeler)
        t = self.t
        n = t.log_n[:, p, :].sum(axis=1)
        mean = _ratio(t.log_ratio[:, p, :].sum(axis=1), n)
        order = [i for i in np.argsort(-mean if larger else mean, kind="stable") if n[i] > 0]
        keep = [i for i in order if (mean[i] > 0) == larger]
        return [self.items[i] for i in keep]


def box_conventions(
    agreement: BoxAgreement,
    per_labeler: Sequence[dict],
    *,
    min_group_boxes: int = 3,
    min_group_rate: float = 0.1,
    size_ratio_min: float = 1.15,
    min_size_matches: int = 10,
    small_recall_gap: float = 0.25,
    min_small_refs: int = 5,
    max_examples: int = 6,
) -> list[dict]:
    """Labeling conventions found in the boxes, one finding per labeler and convention.

    * ``group``: the labeler's boxes often contain two or more of another labeler's boxes
      (one box around a group where others box each object): at least
      ``min_group_boxes`` such boxes, a rate of at least ``min_group_rate`` of its boxes
      and three times the median rate of the other labelers.
    * ``loose`` / ``tight``: the size ratio (:meth:`BoxAgreement.size_ratios`) is at
      least ``size_ratio_min`` (at most its inverse) and its interval excludes 1, on at
      least ``min_size_matches`` matched boxes.
    * ``misses_small``: recall on the smallest third of the others' consensus boxes is
      ``small_recall_gap`` below the median labeler's, and below its own recall on large
      boxes by as much, on at least ``min_small_refs`` small boxes.

    Returns ``[{labeler, convention, statistic: {...}, items: [example items]}]``.
    """
    found = []
    rates = {e["labeler"]: e["group_box_rate"] or 0.0 for e in per_labeler}
    small = {e["labeler"]: (e["recall_by_size"]["small"] or {}).get("recall") for e in per_labeler}
    for e in per_labeler:
        lab = e["labeler"]
        others = [r for k, r in rates.items() if k != lab]
        median_other = float(np.median(others)) if others else 0.0
        rate = rates[lab]
        if (
            e["n_group_boxes"] >= min_group_boxes
            and rate >= min_group_rate
            and rate >= 3 * median_other
        ):
            found.append(
                {
                    "labeler": lab,
                    "convention": "group",
                    "statistic": {
                        "group_box_rate": rate,
                        "n_group_boxes": e["n_group_boxes"],
                        "n_boxes": e["n_boxes"],
                        "median_rate_of_others": _num(median_other),
                    },
                    "items": agreement.group_items(lab)[:max_examples],
                }
            )
        ratio, ci = e["size_ratio"], e["size_ratio_ci"]
        if ratio is not None and ci is not None and e["n_size_matches"] >= min_size_matches:
            loose = ratio >= size_ratio_min and ci[0] > 1.0
            tight = ratio <= 1.0 / size_ratio_min and ci[1] < 1.0
            if loose or tight:
                found.append(
                    {
                        "labeler": lab,
                        "convention": "loose" if loose else "tight",
                        "statistic": {
                            "size_ratio": ratio,
                            "size_ratio_ci": ci,
                            "n_matches": e["n_size_matches"],
                        },
                        "items": agreement.size_items(lab, larger=loose)[:max_examples],
                    }
                )
        if any(f["labeler"] == lab and f["convention"] == "group" for f in found):
            continue  # the small objects it "misses" are the members of its group boxes
        by_size = e["recall_by_size"]
        mine = by_size["small"]
        others_small = [v for k, v in small.items() if k != lab and v is not None]
        large = by_size["large"]["recall"]
        if (
            mine["recall"] is not None
            and mine["n"] >= min_small_refs
            and others_small
            and large is not None
            and mine["recall"] <= float(np.median(others_small)) - small_recall_gap
            and mine["recall"] <= large - small_recall_gap
        ):
            found.append(
                {
                    "labeler": lab,
                    "convention": "misses_small",
                    "statistic": {
                        "recall_small": mine["recall"],
                        "recall_large": large,
                        "median_recall_small_of_others": _num(np.median(others_small)),
                        "n_small": mine["n"],
                        "size_edges": by_size["edges"],
                    },
                    "items": [],
                }
            )
    return found
