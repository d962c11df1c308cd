"""The split allocator on its own (no database): proportions, groups, determinism."""

from collections import Counter

import pytest

from datasets.splits import Unit, assign_splits, largest_remainder, validate_ratios

RATIOS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def test_largest_remainder_matches_a_hand_worked_case():
    # 7 items at 0.5/0.3/0.2: exact 3.5/2.1/1.4 -> floors 3/2/1, one left for the largest
    # fraction (train's .5).
    counts = largest_remainder(7, {"train": 0.5, "dev": 0.3, "test": 0.2}, ["dev", "test", "train"])
    assert counts == {"train": 4, "dev": 2, "test": 1}


def test_every_stratum_is_split_in_proportion_within_one_item():
    units = [Unit(key=f"i{i}", stratum=("defect" if i < 30 else "ok",)) for i in range(100)]
    assignment = assign_splits(units, RATIOS, seed=7)
    per = Counter((u.stratum[0], assignment[u.key]) for u in units)
    assert per[("defect", "train")] == 18 and per[("defect", "dev")] == 6
    assert per[("defect", "test")] == 6
    assert (per[("ok", "train")], per[("ok", "dev")], per[("ok", "test")]) == (42, 14, 14)


def test_assignment_ignores_input_order_and_changes_with_the_seed():
    units = [Unit(key=f"i{i}", stratum=(i % 3,)) for i in range(60)]
    a = assign_splits(units, RATIOS, seed=1)
    assert assign_splits(list(reversed(units)), RATIOS, seed=1) == a
    assert assign_splits(units, RATIOS, seed=2) != a


def test_groups_are_never_split_and_sizes_stay_close():
    units = [Unit(key=f"g{i}", stratum=("x",), size=1 + i % 4) for i in range(40)]
    assignment = assign_splits(units, RATIOS, seed=3)
    sizes = Counter()
    for unit in units:
        sizes[assignment[unit.key]] += unit.size
    total = sum(u.size for u in units)
    for name, ratio in RATIOS.items():
        assert abs(sizes[name] - ratio * total) <= 4  # at most one group off


def test_a_zero_share_split_gets_nothing():
    units = [Unit(key=f"i{i}", stratum=()) for i in range(10)]
    assignment = assign_splits(units, {"train": 1.0, "test": 0.0}, seed=0)
    assert set(assignment.values()) == {"train"}


@pytest.mark.parametrize(
    "ratios, message",
    [
        ({"train": 0.8, "test": 0.1}, "sum to 1"),
        ({"train": 1.2, "test": -0.2}, "between 0 and 1"),
        ({"../x": 1.0}, "identifier"),
        ({"train": "all"}, "number"),
        ({}, "object"),
    ],
)
def test_bad_ratios_are_refused_with_a_reason(ratios, message):
    with pytest.raises(ValueError, match=message):
        validate_ratios(ratios)


def test_leftover_items_of_many_strata_keep_the_totals_balanced():
    # 60 items in two strata of 45 and 15 at 0.8/0.1/0.1: dev and test each get 4.5 and 1.5
    # items per stratum; the odd ones go to different splits, so the totals are 6 and 6.
    units = [Unit(key=f"i{i}", stratum=("ok" if i % 4 else "bad",)) for i in range(60)]
    for seed in range(5):
        totals = Counter(
            assign_splits(units, {"train": 0.8, "dev": 0.1, "test": 0.1}, seed).values()
        )
        assert totals == {"train": 48, "dev": 6, "test": 6}
