"""Transcription agreement: normalisation rules, exact-match agreement and word error rate."""

from __future__ import annotations

import re

import numpy as np

from .alpha import AlphaEngine, _int_codes, _item_value_counts, build_profiles

DEFAULT_FILLERS = ("uh", "um", "uhm", "umm", "er", "erm", "ah", "hmm", "mm", "mhm")
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


def normalization_rules(
    *,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    collapse_whitespace: bool = True,
    remove_fillers: bool = False,
    fillers: tuple = DEFAULT_FILLERS,
) -> list[str]:
    """Human-readable list of the normalisation rules applied, in order.

    Examples
    --------
    >>> normalization_rules(remove_fillers=True, fillers=("uh", "um"))
    ['lowercase', 'remove punctuation and symbols (deleted, not replaced by a space)', \
'remove filler words: uh, um', 'collapse whitespace and trim']
    """
    rules = []
    if lowercase:
        rules.append("lowercase")
    if strip_punctuation:
        rules.append("remove punctuation and symbols (deleted, not replaced by a space)")
    if remove_fillers:
        rules.append("remove filler words: " + ", ".join(fillers))
    if collapse_whitespace:
        rules.append("collapse whitespace and trim")
    return rules


def normalize_transcript(
    text: str,
    *,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    collapse_whitespace: bool = True,
    remove_fillers: bool = False,
    fillers: tuple = DEFAULT_FILLERS,
) -> str:
    """Apply :func:`normalization_rules` to one transcript.

    Examples
    --------
    >>> normalize_transcript("  Well, uh -- it's   DONE! ", remove_fillers=True)
    'well its done'
    """
    if not isinstance(text, str):
        raise ValueError(f"transcript must be a str, got {type(text).__name__}")
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = _PUNCT.sub("", text)
    if remove_fillers:
        drop = {f.lower() if lowercase else f for f in fillers}
        text = " ".join(w for w in text.split() if w not in drop)
    if collapse_whitespace:
        text = _SPACE.sub(" ", text).strip()
    return text


def _edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance of two int sequences; one numpy row update per token of a."""
    if a.size == 0:
        return int(b.size)
    if b.size == 0:
        return int(a.size)
    ar = np.arange(b.size + 1)
    prev = ar.copy()
    for tok in a:
        sub = prev[:-1] + (b != tok)
        tmp = np.empty_like(prev)
        tmp[0] = prev[0] + 1
        tmp[1:] = np.minimum(prev[1:] + 1, sub)
        # insertions: row[j] = min_t<=j (tmp[t] + j - t)
        prev = np.minimum.accumulate(tmp - ar) + ar
    return int(prev[-1])


def _tokens(x, vocab: dict) -> np.ndarray:
    words = x.split() if isinstance(x, str) else list(x)
    return np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64)


def word_error_rate(reference, hypothesis) -> float:
    """Word error rate: word-level Levenshtein edits / number of reference words.

    Parameters
    ----------
    reference, hypothesis : str or sequence of str
        Strings are split on whitespace (normalise them first).

    Returns
    -------
    float
        0 for two empty transcripts.  ValueError if only the reference is empty.

    Examples
    --------
    >>> word_error_rate("the cat sat on the mat", "the cat sit on mat")
    0.3333333333333333
    """
    vocab: dict = {}
    r, h = _tokens(reference, vocab), _tokens(hypothesis, vocab)
    if r.size == 0:
        if h.size == 0:
            return 0.0
        raise ValueError("word error rate is undefined for an empty reference")
    return _edit_distance(r, h) / r.size


def _pair_wer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric WER of two labelers: mean of both directions (empty refs skipped)."""
    if a.size == 0 and b.size == 0:
        return 0.0
    d = _edit_distance(a, b)
    rates = [d / n for n in (a.size, b.size) if n > 0]
    return float(np.mean(rates))


def transcription_agreement(
    items,
    texts,
    *,
    normalize: bool = True,
    **rules,
) -> dict:
    """Agreement between transcripts of the same items.

    Parameters
    ----------
    items : array_like of int, shape (N,)
        Item of each transcript (one transcript per labeler and item).
    texts : sequence of str, length N
    normalize : bool
        Apply :func:`normalize_transcript` with ``rules`` first.
    **rules
        Keyword arguments of :func:`normalize_transcript`.

    Returns
    -------
    dict
        ``rules`` (list of str), ``n_items``, ``n_pairable_items``,
        ``percent_agreement`` and ``krippendorff_alpha`` (nominal) on the normalised
        strings, ``mean_pairwise_wer`` (per item: mean over pairs of labels of the
        symmetric WER -- mean of both directions; then mean over items with >= 2
        labels, each item weighted equally), ``hlp`` ``{value: 1 - mean_pairwise_wer,
        method: "wer"}`` and ``reasons``.
    """
    item = _int_codes("items", items)
    texts = list(texts)
    if len(texts) != item.size:
        raise ValueError(f"{item.size} items but {len(texts)} texts")
    norm = [normalize_transcript(t, **rules) if normalize else t for t in texts]
    uniq_text, codes = np.unique(np.asarray(norm, dtype=object).astype(str), return_inverse=True)
    uniq, pos = np.unique(item, return_inverse=True)
    t = _item_value_counts(pos, codes.astype(np.int64), uniq.size, uniq_text.size)
    prof = build_profiles(*t, uniq.size, uniq_text.size)
    eng = AlphaEngine(prof, "nominal", np.arange(uniq_text.size, dtype=np.float64))
    alpha, alpha_reason = eng.alpha(prof.freq)
    pa = eng.percent_agreement(prof.freq)
    # pairwise WER, item by item
    vocab: dict = {}
    toks = [_tokens(s, vocab) for s in norm]
    order = np.argsort(pos, kind="stable")
    bounds = np.flatnonzero(np.diff(pos[order])) + 1
    item_wer = []
    for grp in np.split(order, bounds):
        if grp.size < 2:
            continue
        rates = [
            _pair_wer(toks[grp[i]], toks[grp[j]])
            for i in range(grp.size)
            for j in range(i + 1, grp.size)
        ]
        item_wer.append(float(np.mean(rates)))
    reasons = {}
    mean_wer = float(np.mean(item_wer)) if item_wer else None
    if mean_wer is None:
        reasons["mean_pairwise_wer"] = "no item has two or more transcripts"
    if alpha is None:
        reasons["krippendorff_alpha"] = alpha_reason
    if pa is None:
        reasons["percent_agreement"] = "no item has two or more transcripts"
    return {
        "rules": normalization_rules(**rules) if normalize else [],
        "n_items": int(uniq.size),
        "n_pairable_items": int(prof.n_pairable_items),
        "percent_agreement": pa,
        "krippendorff_alpha": alpha,
        "mean_pairwise_wer": mean_wer,
        "hlp": {
            "value": None if mean_wer is None else 1.0 - mean_wer,
            "method": "wer",
            "definition": "1 - mean pairwise word error rate between labelers",
        },
        "reasons": reasons,
    }
