"""Error analysis of a model against reference labels, beside human-level performance.

Pure numerics (numpy in, plain data out; no Django). Items are integer ids; classes are
integer codes ``0..n_classes-1`` (merges already applied by the caller). A *group* is a
set of item ids -- the items of one tag or of one metadata value.

Definitions
-----------
* **model accuracy** of a group: correct predictions / scored items of the group, where
  a *scored* item is one the model predicted and that has a reference label.
* **HLP** of a group, measured as in the agreement run (``summary.slice_summary``):

  - ``gold`` when some label of the group's items lies on a ground-truth item: correct
    labels / labels on ground-truth items, every label counting once (label-weighted).
    The ground-truth labeler's own label on an item is left out: it *is* the ground
    truth, and counting it would inflate HLP;
  - else ``pairwise``: for each item with two or more labels, agreeing ordered pairs of
    labels / ordered pairs; the mean over those items, each item weighted equally.

* **gap to HLP** = HLP - model accuracy (negative when the model is above HLP);
  **potential gain** = max(gap, 0) x share, share = the group's scored items / all scored
  items: how much overall accuracy would move if the model reached HLP on the group.

Public functions
----------------
group_hlp                 HLP of each group (gold, else pairwise)
prioritisation            the table ranked by potential gain
tag_statistics            share of data, share of errors and error rate per tag
classification_report     per-class precision, recall, F1 and the confusion matrix
compare_groups            two models' accuracies per group, and how often they disagree
model_as_labeler          the model's kappa with each human and the consensus, against
                          the humans' own spread
label_errors              suspected label errors: the model confidently disagrees with
                          the final label and the humans are split (confident learning)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "classification_report",
    "compare_groups",
    "group_hlp",
    "label_errors",
    "model_as_labeler",
    "prioritisation",
    "tag_statistics",
]


def _ids(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers")
    return array.astype(np.int64, copy=False)


def _same_length(**arrays: np.ndarray) -> None:
    sizes = {k: v.size for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"arrays must have the same length, got {sizes}")


def group_hlp(
    label_item,
    label_labeler,
    label_value,
    groups: Sequence,
    *,
    gold_item=None,
    gold_value=None,
    gold_labeler=None,
) -> list[dict]:
    """HLP of each group of items: against ground truth where the group has it, else pairwise.

    Parameters
    ----------
    label_item, label_labeler, label_value : array_like of int, shape (N,)
        One human label per row: item id, labeler id, class code. At most one label per
        (item, labeler) (the current annotation).
    groups : sequence of array_like of int
        Item ids of each group (duplicates are ignored).
    gold_item, gold_value : array_like of int, shape (G,), optional
        Ground truth: item id and class code. Omitted or empty: pairwise everywhere.
    gold_labeler : array_like of int, shape (G,), optional
        The labeler whose label carries each ground truth (-1: none); that labeler's
        label on that item is left out of the gold comparison.

    Returns
    -------
    list of dict, one per group
        ``{value, method: "gold" | "pairwise", n_items, reasons}``: ``n_items`` is the
        number of items the estimate rests on (ground-truth items with at least one other
        label, or items with two or more labels); ``value`` is None with
        ``reasons["value"]`` when nothing can be measured.

    Examples
    --------
    Two items labeled twice; item 1 has ground truth 0 set by labeler 7, whose own label
    is left out, so HLP is labeler 8's accuracy there:

    >>> out = group_hlp([1, 1, 2, 2], [7, 8, 7, 8], [0, 1, 0, 0], [[1, 2]],
    ...                 gold_item=[1], gold_value=[0], gold_labeler=[7])
    >>> out[0]["value"], out[0]["method"], out[0]["n_items"]
    (0.0, 'gold', 1)
    >>> group_hlp([1, 1, 2, 2], [7, 8, 7, 8], [0, 1, 0, 0], [[1, 2]])[0]["value"]
    0.5
    """
    item = _ids("label_item", label_item)
    labeler = _ids("label_labeler", label_labeler)
    value = _ids("label_value", label_value)
    _same_length(label_item=item, label_labeler=labeler, label_value=value)

    # Gold: per label, whether it sits on a ground-truth item (not the gold labeler's own)
    # and whether it matches.
    on_gold = np.zeros(item.size, dtype=bool)
    gold_correct = np.zeros(item.size, dtype=bool)
    has_gold = gold_item is not None and len(gold_item) > 0
    if has_gold:
        g_item = _ids("gold_item", gold_item)
        g_value = _ids("gold_value", gold_value)
        g_labeler = (
            np.full(g_item.size, -1, dtype=np.int64)
            if gold_labeler is None
            else _ids("gold_labeler", gold_labeler)
        )
        _same_length(gold_item=g_item, gold_value=g_value, gold_labeler=g_labeler)
        if np.unique(g_item).size != g_item.size:
            raise ValueError("gold_item must not repeat an item")
        order = np.argsort(g_item)
        g_item, g_value, g_labeler = g_item[order], g_value[order], g_labeler[order]
        pos = np.minimum(np.searchsorted(g_item, item), max(g_item.size - 1, 0))
        matched = g_item[pos] == item
        on_gold = matched & (labeler != g_labeler[pos])
        gold_correct = on_gold & (value == g_value[pos])

    # Pairwise: per item, agreeing ordered pairs / ordered pairs (items with >= 2 labels).
    pair_items = np.zeros(0, dtype=np.int64)
    pair_share = np.zeros(0)
    if item.size:
        pairs = np.unique(np.stack([item, value], axis=1), axis=0, return_counts=True)
        (iv, counts) = pairs
        uitems, inverse = np.unique(iv[:, 0], return_inverse=True)
        m = np.bincount(inverse, weights=counts)
        agree = np.bincount(inverse, weights=counts * (counts - 1.0))
        pairable = m >= 2
        pair_items = uitems[pairable]
        pair_share = agree[pairable] / (m[pairable] * (m[pairable] - 1.0))

    out = []
    for group in groups:
        members = np.unique(_ids("group", group))
        entry: dict = {"value": None, "method": "pairwise", "n_items": 0, "reasons": {}}
        in_group = np.isin(item, members)
        gold_labels = in_group & on_gold
        if gold_labels.any():
            entry["method"] = "gold"
            entry["value"] = float(gold_correct[gold_labels].sum() / gold_labels.sum())
            entry["n_items"] = int(np.unique(item[gold_labels]).size)
        else:
            selected = np.isin(pair_items, members)
            entry["n_items"] = int(selected.sum())
            if selected.any():
                entry["value"] = float(pair_share[selected].mean())
            else:
                entry["reasons"]["value"] = "no item of the slice has two or more labels"
            if has_gold:
                entry["reasons"]["gold"] = (
                    "no label on a ground-truth item of the slice (other than the "
                    "ground-truth labeler's own): pairwise agreement used"
                )
        out.append(entry)
    return out


def prioritisation(
    slices: Sequence[dict],
    *,
    n_scored: int,
    min_items: int = 5,
) -> list[dict]:
    """The prioritisation table: model accuracy beside HLP per slice, ranked by potential gain.

    Parameters
    ----------
    slices : sequence of dict
        ``{key, value, n_items, n_correct, hlp: {value, method, n_items, reasons}}``:
        ``n_items`` scored items of the slice, ``n_correct`` of them predicted right,
        ``hlp`` as returned by :func:`group_hlp`.
    n_scored : int
        Items scored in the whole run (the denominator of ``share``).
    min_items : int
        Fewer scored items than this (or an HLP resting on fewer items) gives a null
        figure with a reason saying how many there are.

    Returns
    -------
    list of dict
        ``{key, value, n_items, share, model_accuracy, hlp, hlp_method, hlp_n_items,
        gap_to_hlp, potential_gain, reasons}`` sorted by ``potential_gain`` (largest
        first, nulls last), then by share (largest first), key and value. Accuracies,
        shares and gains are fractions in [0, 1]; the gap lies in [-1, 1].

    Examples
    --------
    >>> rows = prioritisation(
    ...     [{"key": "tag", "value": "car", "n_items": 10, "n_correct": 8,
    ...       "hlp": {"value": 0.9, "method": "gold", "n_items": 10, "reasons": {}}}],
    ...     n_scored=40)
    >>> rows[0]["share"], rows[0]["model_accuracy"], round(rows[0]["potential_gain"], 6)
    (0.25, 0.8, 0.025)
    """
    if int(n_scored) < 0:
        raise ValueError("n_scored must be >= 0")
    if int(min_items) < 1:
        raise ValueError("min_items must be >= 1")
    rows = []
    for s in slices:
        n, n_correct = int(s["n_items"]), int(s["n_correct"])
        if not 0 <= n_correct <= n:
            raise ValueError(f"n_correct must lie in 0..n_items ({s['key']}={s['value']})")
        hlp_in = s["hlp"]
        reasons: dict[str, str] = {}
        share = n / n_scored if n_scored else None
        if share is None:
            reasons["share"] = "no item of the run is scored (none has a reference label)"
        accuracy = None
        if n == 0:
            reasons["model_accuracy"] = "no scored item in this slice"
        elif n < min_items:
            reasons["model_accuracy"] = (
                f"too few items: {n} scored item{'s' if n != 1 else ''} "
                f"(at least {min_items} needed)"
            )
        else:
            accuracy = n_correct / n
        hlp = hlp_in.get("value")
        hlp_n = int(hlp_in.get("n_items") or 0)
        if hlp is None:
            reasons["hlp"] = (hlp_in.get("reasons") or {}).get("value", "no HLP for this slice")
        elif hlp_n < min_items:
            reasons["hlp"] = (
                f"too few items: HLP ({hlp_in.get('method')}) rests on {hlp_n} "
                f"item{'s' if hlp_n != 1 else ''} (at least {min_items} needed)"
            )
            hlp = None
        if "gold" in (hlp_in.get("reasons") or {}):
            reasons["hlp_method"] = hlp_in["reasons"]["gold"]
        gap = gain = None
        if accuracy is None or hlp is None:
            missing = "model_accuracy" if accuracy is None else "hlp"
            reasons["gap_to_hlp"] = f"{missing} is null"
            reasons["potential_gain"] = f"{missing} is null"
        else:
            gap = hlp - accuracy
            if share is None:
                reasons["potential_gain"] = "share is null"
            else:
                gain = max(gap, 0.0) * share
        rows.append(
            {
                "key": s["key"],
                "value": s["value"],
                "n_items": n,
                "share": share,
                "model_accuracy": accuracy,
                "hlp": hlp,
                "hlp_method": hlp_in.get("method"),
                "hlp_n_items": hlp_n,
                "gap_to_hlp": gap,
                "potential_gain": gain,
                "reasons": reasons,
            }
        )
    rows.sort(
        key=lambda r: (
            r["potential_gain"] is None,
            -(r["potential_gain"] or 0.0),
            -(r["share"] or 0.0),
            str(r["key"]),
            str(r["value"]),
        )
    )
    return rows


def tag_statistics(correct, tags: dict) -> list[dict]:
    """Per tag: how much of the data carries it, how much of the error, and its error rate.

    Parameters
    ----------
    correct : array_like of bool, shape (S,)
        Whether the model is right on each scored item (position = scored item index).
    tags : dict {tag: array_like of int}
        Positions (into ``correct``) of the scored items carrying each tag. An item with
        several tags counts in each.

    Returns
    -------
    list of dict, sorted by tag
        ``{tag, n_items, share_of_data, share_of_errors, error_rate, n_errors, reasons}``:
        ``share_of_data`` = tagged items / scored items; ``share_of_errors`` = errors on
        tagged items / all errors; ``error_rate`` = errors on tagged items / tagged items.

    Examples
    --------
    >>> stats = tag_statistics([True, False, False, True], {"car": [1, 3]})
    >>> stats[0]["share_of_data"], stats[0]["share_of_errors"], stats[0]["error_rate"]
    (0.5, 0.5, 0.5)
    """
    ok = np.asarray(correct, dtype=bool)
    if ok.ndim != 1:
        raise ValueError("correct must be one-dimensional")
    n_scored = int(ok.size)
    n_errors = int((~ok).sum())
    out = []
    for tag in sorted(tags):
        positions = np.unique(_ids(f"tags[{tag!r}]", tags[tag]))
        if positions.size and (positions.min() < 0 or positions.max() >= n_scored):
            raise ValueError(f"tags[{tag!r}] holds positions outside 0..{n_scored - 1}")
        n = int(positions.size)
        errors = int((~ok[positions]).sum())
        reasons: dict[str, str] = {}
        share_of_data = n / n_scored if n_scored else None
        if share_of_data is None:
            reasons["share_of_data"] = "no scored item in the run"
        share_of_errors = errors / n_errors if n_errors else None
        if share_of_errors is None:
            reasons["share_of_errors"] = "the model makes no error on the scored items"
        error_rate = errors / n if n else None
        if error_rate is None:
            reasons["error_rate"] = "no scored item carries this tag"
        out.append(
            {
                "tag": tag,
                "n_items": n,
                "n_errors": errors,
                "share_of_data": share_of_data,
                "share_of_errors": share_of_errors,
                "error_rate": error_rate,
                "reasons": reasons,
            }
        )
    return out


def classification_report(reference, predicted, classes: Sequence[str]) -> dict:
    """Per-class precision, recall and F1 of predictions, and their confusion matrix.

    Parameters
    ----------
    reference, predicted : array_like of int, shape (S,)
        Class codes (``0..len(classes)-1``) of the reference label and of the prediction.
    classes : sequence of str
        Class keys in code order.

    Returns
    -------
    dict
        ``{per_class: [{class, support, n_predicted, precision, recall, f1, reasons}],
        confusion: {classes, counts, definition}, accuracy, macro_f1, reasons}``.
        ``counts[r][p]``: items with reference ``r`` predicted as ``p``. Precision is
        null for a class never predicted, recall for a class never in the reference, F1
        when either is null; ``macro_f1`` averages the non-null F1 values.

    Examples
    --------
    >>> r = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    >>> [(c["precision"], c["recall"]) for c in r["per_class"]]
    [(1.0, 0.5), (0.6666666666666666, 1.0)]
    >>> r["confusion"]["counts"]
    [[1, 1], [0, 2]]
    """
    ref = _ids("reference", reference)
    pred = _ids("predicted", predicted)
    _same_length(reference=ref, predicted=pred)
    k = len(classes)
    for name, codes in (("reference", ref), ("predicted", pred)):
        if codes.size and (codes.min() < 0 or codes.max() >= k):
            raise ValueError(f"{name} codes must lie in 0..{k - 1}")
    counts = np.bincount(ref * k + pred, minlength=k * k).reshape(k, k) if k else np.zeros((0, 0))
    tp = np.diag(counts)
    support = counts.sum(axis=1)
    n_predicted = counts.sum(axis=0)
    per_class = []
    f1s = []
    for c in range(k):
        reasons: dict[str, str] = {}
        precision = recall = f1 = None
        if n_predicted[c]:
            precision = float(tp[c] / n_predicted[c])
        else:
            reasons["precision"] = "the model never predicts this class"
        if support[c]:
            recall = float(tp[c] / support[c])
        else:
            reasons["recall"] = "no scored item has this class as reference"
        if precision is None or recall is None:
            reasons["f1"] = "precision or recall is null"
        elif precision + recall == 0:
            f1 = 0.0  # the limit of the harmonic mean: no true positive at all
        else:
            f1 = 2 * precision * recall / (precision + recall)
        if f1 is not None:
            f1s.append(f1)
        per_class.append(
            {
                "class": classes[c],
                "support": int(support[c]),
                "n_predicted": int(n_predicted[c]),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "reasons": reasons,
            }
        )
    reasons = {}
    accuracy = float(tp.sum() / ref.size) if ref.size else None
    if accuracy is None:
        reasons["accuracy"] = "no scored item"
    macro_f1 = float(np.mean(f1s)) if f1s else None
    if macro_f1 is None:
        reasons["macro_f1"] = "no class has both precision and recall"
    return {
        "per_class": per_class,
        "confusion": {
            "classes": list(classes),
            "counts": counts.astype(np.int64).tolist(),
            "definition": "counts[r][p]: scored items whose reference is class r and "
            "whose prediction is class p",
        },
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "reasons": reasons,
    }


def compare_groups(correct_a, correct_b, groups: Sequence[dict]) -> list[dict]:
    """Two models' accuracies on the same items, per group, and the difference.

    Parameters
    ----------
    correct_a, correct_b : array_like of bool, shape (S,)
        Whether model A (the run compared) and model B (the other run) are right on each
        item scored by both.
    groups : sequence of dict
        ``{key, value, positions}``: positions (into the arrays) of the group's items.

    Returns
    -------
    list of dict
        ``{key, value, n_items, model_accuracy, other_accuracy, difference, reasons}``
        with ``difference = other_accuracy - model_accuracy`` (positive: B is better).

    Examples
    --------
    >>> compare_groups([True, False], [True, True],
    ...                [{"key": None, "value": None, "positions": [0, 1]}])[0]["difference"]
    0.5
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError("correct_a and correct_b must be one-dimensional of the same length")
    out = []
    for g in groups:
        positions = np.unique(_ids("positions", g["positions"]))
        n = int(positions.size)
        entry = {
            "key": g["key"],
            "value": g["value"],
            "n_items": n,
            "model_accuracy": None,
            "other_accuracy": None,
            "difference": None,
            "reasons": {},
        }
        if n == 0:
            why = "no item of this slice is scored by both runs"
            entry["reasons"] = dict.fromkeys(
                ("model_accuracy", "other_accuracy", "difference"), why
            )
        else:
            entry["model_accuracy"] = float(a[positions].mean())
            entry["other_accuracy"] = float(b[positions].mean())
            entry["difference"] = entry["other_accuracy"] - entry["model_accuracy"]
        out.append(entry)
    return out


def _pair_kappas(item, rater, value, n_classes: int):
    """Cohen's kappa of every pair of raters on the items both rated.

    Returns (pairs (P, 2) of rater ids with a < b, kappa (P,) with NaN where chance
    agreement is 1, n_shared (P,)).
    """
    order = np.lexsort((rater, item))
    item, rater, value = item[order], rater[order], value[order]
    firsts, seconds = [], []
    for d in range(1, item.size):
        same = item[d:] == item[:-d]
        if not same.any():
            break
        firsts.append(np.flatnonzero(same))
        seconds.append(np.flatnonzero(same) + d)
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), empty
    i, j = np.concatenate(firsts), np.concatenate(seconds)
    # rater[i] < rater[j] within an item (sorted by rater), so the pair is ordered.
    pair_keys, inverse = np.unique(
        np.stack([rater[i], rater[j]], axis=1), axis=0, return_inverse=True
    )
    inverse = inverse.ravel()
    k = max(int(n_classes), 1)
    p = pair_keys.shape[0]
    table = (
        np.bincount(inverse * k * k + value[i] * k + value[j], minlength=p * k * k)
        .reshape(p, k, k)
        .astype(np.float64)
    )
    n = table.sum(axis=(1, 2))
    po = np.trace(table, axis1=1, axis2=2) / n
    pe = (table.sum(axis=2) * table.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)
    return pair_keys, kappa, n.astype(np.int64)


def model_as_labeler(
    label_item,
    label_labeler,
    label_value,
    predicted_item,
    predicted_value,
    *,
    n_classes: int,
    consensus_item=None,
    consensus_value=None,
) -> dict:
    """The model treated as one more labeler: its Cohen's kappa with each human, with the
    human consensus, and where it falls in the humans' own spread.

    Parameters
    ----------
    label_item, label_labeler, label_value : array_like of int, shape (N,)
        Human labels (one per item and labeler); labeler ids must be >= 0.
    predicted_item, predicted_value : array_like of int, shape (M,)
        The model's predictions (one per item).
    n_classes : int
        Number of class codes.
    consensus_item, consensus_value : array_like of int, shape (C,), optional
        The human consensus label of items.

    Returns
    -------
    dict
        ``{per_labeler: [{labeler, n_shared, agreement, cohen_kappa, reasons}],
        model_mean_kappa, human_mean_kappas: {labeler: mean kappa with the other humans},
        human_spread: [min, max] | None, position: "below" | "inside" | "above" | None,
        consensus: {n_shared, agreement, cohen_kappa, reasons}, reasons}``. A human's
        "mean kappa" averages its kappas with every other human it shares an item with;
        the model's averages its kappas with the humans. ``position`` compares the
        model's mean with the spread of the humans' means.

    Examples
    --------
    Two humans who agree on half the items, and a model that always sides with human 1:

    >>> out = model_as_labeler([1, 1, 2, 2, 3, 3, 4, 4], [0, 1] * 4, [0, 0, 1, 1, 0, 1, 1, 0],
    ...                        [1, 2, 3, 4], [0, 1, 0, 1], n_classes=2)
    >>> [e["cohen_kappa"] for e in out["per_labeler"]], out["human_spread"], out["position"]
    ([1.0, 0.0], [0.0, 0.0], 'above')
    """
    item = _ids("label_item", label_item)
    labeler = _ids("label_labeler", label_labeler)
    value = _ids("label_value", label_value)
    p_item = _ids("predicted_item", predicted_item)
    p_value = _ids("predicted_value", predicted_value)
    _same_length(label_item=item, label_labeler=labeler, label_value=value)
    _same_length(predicted_item=p_item, predicted_value=p_value)
    if labeler.size and labeler.min() < 0:
        raise ValueError("labeler ids must be >= 0")
    reasons: dict[str, str] = {}

    # Humans among themselves, then with the model as rater -1.
    pairs, kappa, _ = _pair_kappas(item, labeler, value, n_classes)
    humans = np.unique(labeler)
    human_means: dict[int, float] = {}
    for h in humans.tolist():
        mine = kappa[((pairs[:, 0] == h) | (pairs[:, 1] == h)) & np.isfinite(kappa)]
        if mine.size:
            human_means[h] = float(mine.mean())
    all_item = np.concatenate([item, p_item])
    all_rater = np.concatenate([labeler, np.full(p_item.size, -1, dtype=np.int64)])
    all_value = np.concatenate([value, p_value])
    m_pairs, m_kappa, m_n = _pair_kappas(all_item, all_rater, all_value, n_classes)
    with_model = m_pairs[:, 0] == -1
    per_labeler = []
    shared = {
        int(b): (float(k), int(n))
        for b, k, n in zip(
            m_pairs[with_model, 1], m_kappa[with_model], m_n[with_model], strict=True
        )
    }
    # Raw agreement with each human, from the same shared items.
    model_of = dict(zip(p_item.tolist(), p_value.tolist(), strict=True))
    for h in humans.tolist():
        sel = labeler == h
        on = np.fromiter(
            (i in model_of for i in item[sel].tolist()), dtype=bool, count=int(sel.sum())
        )
        entry = {
            "labeler": h,
            "n_shared": int(on.sum()),
            "agreement": None,
            "cohen_kappa": None,
            "reasons": {},
        }
        if on.any():
            theirs = value[sel][on]
            ours = np.fromiter((model_of[i] for i in item[sel][on].tolist()), dtype=np.int64)
            entry["agreement"] = float((theirs == ours).mean())
            k = shared.get(h, (np.nan, 0))[0]
            if np.isfinite(k):
                entry["cohen_kappa"] = k
            else:
                entry["reasons"]["cohen_kappa"] = (
                    "one class only on the shared items: chance agreement is 1"
                )
        else:
            entry["reasons"]["agreement"] = "no item labeled by this labeler is predicted"
            entry["reasons"]["cohen_kappa"] = entry["reasons"]["agreement"]
        per_labeler.append(entry)

    model_kappas = [e["cohen_kappa"] for e in per_labeler if e["cohen_kappa"] is not None]
    model_mean = float(np.mean(model_kappas)) if model_kappas else None
    if model_mean is None:
        reasons["model_mean_kappa"] = "no kappa with any labeler"
    spread = None
    position = None
    if len(human_means) >= 2:
        spread = [min(human_means.values()), max(human_means.values())]
    else:
        reasons["human_spread"] = "fewer than two labelers with a kappa among themselves"
    if spread is not None and model_mean is not None:
        position = (
            "below" if model_mean < spread[0] else "above" if model_mean > spread[1] else "inside"
        )
    else:
        reasons["position"] = "needs the model's mean kappa and the humans' spread"

    consensus = {"n_shared": 0, "agreement": None, "cohen_kappa": None, "reasons": {}}
    if consensus_item is not None and len(consensus_item):
        c_item = _ids("consensus_item", consensus_item)
        c_value = _ids("consensus_value", consensus_value)
        _same_length(consensus_item=c_item, consensus_value=c_value)
        common, ci, pi = np.intersect1d(c_item, p_item, return_indices=True)
        consensus["n_shared"] = int(common.size)
        if common.size:
            a, b = c_value[ci], p_value[pi]
            consensus["agreement"] = float((a == b).mean())
            k = max(int(n_classes), 1)
            table = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
            n = table.sum()
            pe = float(table.sum(axis=1) @ table.sum(axis=0)) / (n * n)
            if pe < 1.0:
                consensus["cohen_kappa"] = float((np.trace(table) / n - pe) / (1.0 - pe))
            else:
                consensus["reasons"]["cohen_kappa"] = "one class only: chance agreement is 1"
        else:
            consensus["reasons"]["agreement"] = "no predicted item has a consensus"
    else:
        consensus["reasons"]["agreement"] = "no human consensus"
    return {
        "per_labeler": per_labeler,
        "model_mean_kappa": model_mean,
        "human_mean_kappas": {int(h): v for h, v in human_means.items()},
        "human_spread": spread,
        "position": position,
        "consensus": consensus,
        "reasons": reasons,
    }


def label_errors(
    pred_item,
    pred_value,
    pred_confidence,
    final_item,
    final_value,
    label_item,
    label_value,
    *,
    n_classes: int,
) -> dict:
    """Suspected label errors, in the spirit of confident learning (Northcutt et al.,
    2021) and CROWDLAB (Goh et al., 2022).

    Inputs: the model's predictions (``pred_item`` ids, ``pred_value`` class codes,
    ``pred_confidence`` in [0, 1]: the model's probability of its predicted class), the
    items' final labels (``final_item``, ``final_value``) and the current human labels
    (``label_item``, ``label_value``); codes are ``0..n_classes-1``.

    * **per-class threshold** t_c = mean confidence of the predictions of class c, over
      every prediction given (Northcutt et al.'s per-class threshold: a class the model
      is generally unsure of needs less to count as confident);
    * **human agreement** of an item = its human labels equal to the final label / its
      human labels;
    * an item is a **suspected label error** when it has a final label, the model
      predicts another class with confidence >= t_(predicted class), and its human
      labels are not unanimous (two or more distinct values);
    * **score** = confidence x (1 - human agreement), in [0, 1].

    Returns ``{"thresholds": [t_c or None when the model never predicts c],
    "errors": [{item, predicted, final, confidence, threshold, human_agreement,
    n_labels, score}]}``, errors by score (highest first), then item id.

    >>> r = label_errors(
    ...     [1, 2, 3, 4], [1, 1, 0, 1], [0.9, 0.7, 0.6, 0.8],
    ...     [1, 2, 3, 4], [0, 0, 0, 1],
    ...     [1, 1, 1, 2, 2, 4, 4], [0, 0, 1, 0, 1, 1, 0], n_classes=2)
    >>> [round(t, 2) for t in r["thresholds"]]
    [0.6, 0.8]
    >>> [(e["item"], round(e["human_agreement"], 3), round(e["score"], 2)) for e in r["errors"]]
    [(1, 0.667, 0.3)]
    """
    pred_item = _ids("pred_item", pred_item)
    pred_value = _ids("pred_value", pred_value)
    confidence = np.asarray(pred_confidence, dtype=np.float64)
    final_item = _ids("final_item", final_item)
    final_value = _ids("final_value", final_value)
    label_item = _ids("label_item", label_item)
    label_value = _ids("label_value", label_value)
    _same_length(pred_item=pred_item, pred_value=pred_value, pred_confidence=confidence)
    _same_length(final_item=final_item, final_value=final_value)
    _same_length(label_item=label_item, label_value=label_value)
    if confidence.size and (
        not np.all(np.isfinite(confidence)) or confidence.min() < 0 or confidence.max() > 1
    ):
        raise ValueError("pred_confidence must lie in [0, 1]")

    thresholds: list[float | None] = []
    for c in range(n_classes):
        mine = confidence[pred_value == c]
        thresholds.append(float(mine.mean()) if mine.size else None)

    final = dict(zip(final_item.tolist(), final_value.tolist(), strict=True))
    labels: dict[int, list[int]] = {}
    for i, v in zip(label_item.tolist(), label_value.tolist(), strict=True):
        labels.setdefault(i, []).append(v)

    errors = []
    for i, p, conf in zip(
        pred_item.tolist(), pred_value.tolist(), confidence.tolist(), strict=True
    ):
        f = final.get(i)
        human = labels.get(i, [])
        if f is None or p == f or len(set(human)) < 2:
            continue
        threshold = thresholds[p]
        if threshold is None or conf < threshold:
            continue
        agreement = sum(1 for v in human if v == f) / len(human)
        errors.append(
            {
                "item": i,
                "predicted": p,
                "final": f,
                "confidence": conf,
                "threshold": threshold,
                "human_agreement": agreement,
                "n_labels": len(human),
                "score": conf * (1.0 - agreement),
            }
        )
    errors.sort(key=lambda e: (-e["score"], e["item"]))
    return {"thresholds": thresholds, "errors": errors}
