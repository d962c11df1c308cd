"""Transcript normalisation, WER and transcription agreement on hand-worked strings."""

import doctest

import pytest

import consistency.metrics.transcription as tr_mod
from consistency.metrics import (
    normalization_rules,
    normalize_transcript,
    transcription_agreement,
    word_error_rate,
)


def test_transcription_doctests():
    assert doctest.testmod(tr_mod).failed == 0


def test_wer_hand_worked():
    # one substitution (sat->sit) + one deletion (the) over 6 reference words
    assert word_error_rate("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    # insertion: 1 edit over 2 words
    assert word_error_rate("hello world", "hello big world") == 0.5
    # complete mismatch with extra words: 3 edits / 1 word
    assert word_error_rate("yes", "no no no") == 3.0
    assert word_error_rate("a b c", "a b c") == 0.0
    assert word_error_rate("", "") == 0.0
    assert word_error_rate(["a", "b"], ["b", "a"]) == 1.0  # two substitutions
    with pytest.raises(ValueError):
        word_error_rate("", "something")


def test_wer_matches_plain_dynamic_programming():
    import random

    def ref_distance(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[-1]

    rnd = random.Random(0)
    for _ in range(200):
        a = [rnd.choice("abcd") for _ in range(rnd.randint(1, 12))]
        b = [rnd.choice("abcd") for _ in range(rnd.randint(0, 12))]
        assert word_error_rate(a, b) == pytest.approx(ref_distance(a, b) / len(a))


def test_normalisation_rules_and_fillers():
    assert normalize_transcript("Hello,   World!") == "hello world"
    assert normalize_transcript("Um, I think... uh yes", remove_fillers=True) == "i think yes"
    assert normalize_transcript("Um yes", lowercase=False, remove_fillers=True) == "Um yes"
    rules = normalization_rules(remove_fillers=True)
    assert rules[0] == "lowercase" and any(r.startswith("remove filler words") for r in rules)
    assert normalization_rules(lowercase=False, strip_punctuation=False) == [
        "collapse whitespace and trim"
    ]


def test_transcription_agreement_hand_worked():
    items = [0, 0, 1, 1, 2]
    texts = ["Hello, world!", "hello world", "the cat sat", "the cat sit", "alone"]
    res = transcription_agreement(items, texts)
    # item 0 agrees after normalisation, item 1 differs: percent agreement 1/2
    assert res["percent_agreement"] == 0.5
    # WER item 0: 0; item 1: 1/3 both directions -> mean 1/6
    assert res["mean_pairwise_wer"] == pytest.approx(1 / 6)
    assert res["hlp"]["value"] == pytest.approx(5 / 6)
    assert res["hlp"]["method"] == "wer"
    assert res["n_pairable_items"] == 2
    assert res["rules"] == normalization_rules()
    single = transcription_agreement([0], ["x"])
    assert single["mean_pairwise_wer"] is None and single["reasons"]["mean_pairwise_wer"]
