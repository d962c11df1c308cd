"""The rules of labeling.selectors: doctests, and the hand-worked cases of each rule."""

from __future__ import annotations

import doctest

from labeling import selectors


def test_selectors_doctests():
    assert doctest.testmod(selectors).failed == 0


def test_class_roots_follow_chains_and_stop_at_a_cycle_or_the_edge():
    # 3 -> 2 -> 1; 5 -> 6 -> 5 is a cycle (a data error); 7 points outside the project.
    parent = {1: None, 2: 1, 3: 2, 4: None, 5: 6, 6: 5, 7: 99}
    assert selectors.class_roots(parent) == {1: 1, 2: 1, 3: 1, 4: 4, 5: 6, 6: 5, 7: 7}
