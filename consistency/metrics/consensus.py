"""Per-item consensus: majority vote (ties reported, never broken) and Dawid-Skene EM."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .alpha import _int_codes, _item_value_counts, _runs

_EPS = 1e-10
_BLOCK = 1 << 20  # labels per block where Dawid-Skene sums over labels
_MAJORITY_STATUSES = ("disputed", "single", "unanimous", "majority")


def _prepare(items, values, n_classes, labelers=None):
    item = _int_codes("items", items)
    codes = _int_codes("values", values)
    if item.shape != codes.shape:
        raise ValueError(f"items {item.shape} and values {codes.shape} differ in shape")
    keep = codes >= 0
    lab = None
    if labelers is not None:
        lab = _int_codes("labelers", labelers)
        if lab.shape != item.shape:
            raise ValueError(f"labelers {lab.shape} and items {item.shape} differ in shape")
        lab = lab if keep.all() else lab[keep]
    if not keep.all():  # no copies when every label has a value (a run's statistics)
        item, codes = item[keep], codes[keep]
    k = int(n_classes) if n_classes is not None else (int(codes.max()) + 1 if codes.size else 0)
    if codes.size and codes.max() >= k:
        raise ValueError(f"value code {int(codes.max())} >= n_classes={k}")
    if item.size and bool(np.all(item[1:] >= item[:-1])):
        # Sorted by item already (a run's statistics are): the same ``np.unique`` result
        # without its sort and the sort's copies.
        starts = _runs(item)
        uniq = item[starts]
        pos = np.zeros(item.size, dtype=np.int64)
        pos[starts[1:]] = 1
        np.cumsum(pos, out=pos)
    else:
        uniq, pos = np.unique(item, return_inverse=True)
    return uniq, pos, codes, lab, k


def majority_consensus(items, values, *, n_classes: int | None = None) -> pd.DataFrame:
    """Majority vote per item; ties are reported as disputed, never broken.

    Parameters
    ----------
    items : array_like of int, shape (N,)
    values : array_like of int, shape (N,)
        Class codes (negative = missing).
    n_classes : int, optional

    Returns
    -------
    DataFrame, shape (n_items, 6)
        Columns ``item`` (code), ``label`` (nullable Int64; <NA> when disputed),
        ``status`` (categorical: ``"unanimous"``, ``"majority"``, ``"disputed"``; one
        label: ``"single"``), ``support`` (share of the item's labels for the winning value,
        or for each tied value when disputed), ``entropy`` (bits, of the item's label
        distribution) and ``n_labels``.

    Examples
    --------
    >>> majority_consensus([0, 0, 0, 1, 1], [2, 2, 1, 0, 1])[["item", "label", "status"]]
       item  label    status
    0     0      2  majority
    1     1   <NA>  disputed
    """
    uniq, pos, codes, _, k = _prepare(items, values, n_classes)
    n_items = uniq.size
    # Per (item, value) counts sorted by (item, value): a dense count when the table is
    # small (what np.unique(key, return_counts=True) gives, without sorting every label).
    t_pos, t_val, t_n = _item_value_counts(pos, codes, n_items, max(k, 1))
    st = _runs(t_pos)
    m = np.bincount(pos, minlength=n_items)
    del pos
    top = np.maximum.reduceat(t_n, st) if st.size else np.zeros(0, dtype=np.int64)
    is_top = t_n == top[t_pos] if st.size else np.zeros(0, dtype=bool)
    n_top = np.add.reduceat(is_top.astype(np.int64), st) if st.size else top
    winner = np.full(n_items, -1, dtype=np.int64)
    winner[t_pos[is_top]] = t_val[is_top]  # unique when n_top == 1
    p = t_n / m[t_pos]
    entropy = -np.bincount(t_pos, weights=p * np.log2(p), minlength=n_items) + 0.0
    n_distinct = np.diff(np.append(st, t_pos.size))
    # Status as a categorical: a byte per item, not a Python string per item.
    status_code = np.where(
        n_top > 1, 0, np.where(m == 1, 1, np.where(n_distinct == 1, 2, 3))
    ).astype(np.int8)
    status = pd.Categorical.from_codes(status_code, categories=_MAJORITY_STATUSES)
    label = pd.array(np.where(n_top > 1, 0, winner), dtype="Int64")
    label[n_top > 1] = pd.NA
    return pd.DataFrame(
        {
            "item": uniq,
            "label": label,
            "status": status,
            "support": top / m,
            "entropy": entropy,
            "n_labels": m,
        }
    )


@dataclass
class DawidSkeneResult:
    """Fitted Dawid-Skene model (crowd-kit style trailing underscores).

    Attributes
    ----------
    items_ : ndarray of int64, shape (I,)
        Item codes, in order.
    labels_ : ndarray of int64, shape (I,)
        Most probable class per item (lowest code on an exact tie of posteriors).
    probas_ : ndarray of float64, shape (I, K)
        Posterior class probabilities per item.
    confidence_ : ndarray of float64, shape (I,)
        Posterior probability of ``labels_``.
    priors_ : ndarray of float64, shape (K,)
    errors_ : ndarray of float64, shape (L, K, K)
        ``errors_[l, true, observed]``: probability that labeler ``l`` gives
        ``observed`` when the true class is ``true``.
    n_iter_ : int
    converged_ : bool
    loss_history_ : list of float
        Evidence lower bound per label, per iteration.
    """

    items_: np.ndarray
    labels_: np.ndarray
    probas_: np.ndarray
    confidence_: np.ndarray
    priors_: np.ndarray
    errors_: np.ndarray
    n_iter_: int
    converged_: bool
    loss_history_: list = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Columns ``item``, ``label``, ``confidence`` (one row per item)."""
        return pd.DataFrame(
            {"item": self.items_, "label": self.labels_, "confidence": self.confidence_}
        )


def dawid_skene(
    items,
    labelers,
    values,
    *,
    n_classes: int | None = None,
    max_iter: int = 100,
    tol: float = 1e-5,
) -> DawidSkeneResult:
    """Dawid & Skene (1979) EM over per-labeler confusion matrices.

    Deterministic (no random initialisation): the posteriors start from the majority
    vote shares, then M-step (priors, confusion matrices) and E-step alternate until
    the evidence lower bound per label improves by less than ``tol`` or ``max_iter``
    iterations -- the same scheme as crowd-kit's ``DawidSkene``.

    Parameters
    ----------
    items, labelers : array_like of int, shape (N,)
    values : array_like of int, shape (N,)
        Class codes (negative = missing).
    n_classes : int, optional
    max_iter : int
    tol : float

    Returns
    -------
    DawidSkeneResult
    """
    if int(max_iter) < 1:
        raise ValueError("max_iter must be >= 1")
    uniq, pos, codes, lab, k = _prepare(items, values, n_classes, labelers)
    if uniq.size == 0 or k == 0:
        raise ValueError("no labels")
    n_items, n_lab = uniq.size, int(lab.max()) + 1
    m = np.bincount(pos, minlength=n_items).astype(np.float64)
    probas = np.bincount(pos * k + codes, minlength=n_items * k).reshape(n_items, k) / m[:, None]
    lv = lab * k + codes  # (labeler, observed) cell of each label
    observed = np.bincount(lv, minlength=n_lab * k).reshape(n_lab, k) > 0

    def m_step(t):
        err = np.empty((n_lab, k, k))  # [labeler, observed, true] while accumulating
        for true in range(k):
            err[:, :, true] = np.bincount(lv, weights=t[pos, true], minlength=n_lab * k).reshape(
                n_lab, k
            )
        err = np.where(observed[:, :, None], np.maximum(err, _EPS), 0.0)
        err /= err.sum(axis=1, keepdims=True)
        return err

    def log_errors(err):
        with np.errstate(divide="ignore"):
            return np.log(err)

    def log_error_of_label(err, true):
        # log e[l, observed, true] of every label, one true class at a time: (N,), never
        # the (N, K) matrix (at 10M labels each (N, K) temporary is 480 MB).
        return log_errors(err)[:, :, true].reshape(-1)[lv]

    priors = probas.mean(axis=0)
    errors = m_step(probas)
    loss, history, converged, it = -np.inf, [], False, 0
    for it in range(1, int(max_iter) + 1):  # noqa: B007
        log_prior = np.log(np.maximum(priors, _EPS))
        # (I, K) filled a column at a time and exponentiated in place: one (I, K) array
        # per iteration instead of a list, its stack, the sum and the exponential.
        ll = np.empty((n_items, k))
        for t in range(k):
            ll[:, t] = np.bincount(pos, weights=log_error_of_label(errors, t), minlength=n_items)
        ll += log_prior[None, :]
        ll -= ll.max(axis=1, keepdims=True)
        probas = np.exp(ll, out=ll)
        del ll
        probas /= probas.sum(axis=1, keepdims=True)
        priors = probas.mean(axis=0)
        errors = m_step(probas)
        log_prior = np.log(np.maximum(priors, _EPS))
        # sum over labels and classes of probas[item, t] * (log e + log prior): per class,
        # in blocks of labels (the same terms as the (N, K) product, summed in another
        # order, so the loss may differ from it in the last bits).
        joint = 0.0
        for t in range(k):
            le_t = log_error_of_label(errors, t)
            for lo in range(0, pos.size, _BLOCK):
                hi = lo + _BLOCK
                joint += float(np.dot(probas[pos[lo:hi], t], le_t[lo:hi] + log_prior[t]))
            del le_t
        pc = np.maximum(probas, _EPS)
        log_pc = np.log(pc)
        log_pc *= pc
        entropy = -float(np.sum(log_pc))
        del pc, log_pc
        new_loss = (joint + entropy) / codes.size
        history.append(new_loss)
        if new_loss - loss < tol:
            converged = True
            break
        loss = new_loss
    labels = probas.argmax(axis=1)
    return DawidSkeneResult(
        items_=uniq,
        labels_=labels,
        probas_=probas,
        confidence_=probas[np.arange(n_items), labels],
        priors_=priors,
        errors_=np.transpose(errors, (0, 2, 1)).copy(),
        n_iter_=it,
        converged_=converged,
        loss_history_=history,
    )
