"""ICC(2,1) and ICC(3,1): Shrout & Fleiss's published example, pingouin on complete data,
complete blocks chosen from long-form labels, and results.overall.icc of a rating run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest

from consistency import runs
from consistency.metrics.icc import icc_complete_blocks, icc_table
from consistency.models import RunStatus
from labeling import services as labeling_services

# Shrout & Fleiss (1979), Table 2: six targets (rows), four judges (columns).
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def pingouin_icc(table) -> tuple[float, float]:
    """ICC(2,1) and ICC(3,1) by pingouin (named ICC2/ICC3, or ICC(A,1)/ICC(C,1) in
    newer versions)."""
    rows = [(i, j, v) for i, r in enumerate(table) for j, v in enumerate(r)]
    frame = pd.DataFrame(rows, columns=["item", "rater", "rating"])
    out = pingouin.intraclass_corr(frame, targets="item", raters="rater", ratings="rating")
    icc = dict(zip(out["Type"], out["ICC"], strict=True))
    two = icc.get("ICC2", icc.get("ICC(A,1)"))
    three = icc.get("ICC3", icc.get("ICC(C,1)"))
    return float(two), float(three)


def test_shrout_and_fleiss_published_example():
    res = icc_table(SHROUT_FLEISS)
    assert (round(res.icc2_1, 2), round(res.icc3_1, 2)) == (0.29, 0.71)
    # their ANOVA table: BMS 11.24, JMS 32.49, EMS 1.02
    assert (res.bms, res.jms, res.ems) == (
        pytest.approx(11.24, abs=0.005),
        pytest.approx(32.49, abs=0.005),
        pytest.approx(1.02, abs=0.005),
    )
    assert (res.n_items, res.n_raters) == (6, 4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_pingouin_on_complete_data(seed):
    rng = np.random.default_rng(seed)
    n, k = rng.integers(5, 30), rng.integers(2, 6)
    truth = rng.normal(0, 2, size=(n, 1))
    offset = rng.normal(0, 1, size=(1, k))  # rater bias: lowers ICC(2,1), not ICC(3,1)
    table = np.round(truth + offset + rng.normal(0, 1, size=(n, k)), 1)
    res = icc_table(table)
    two, three = pingouin_icc(table)
    assert res.icc2_1 == pytest.approx(two, abs=1e-10)
    assert res.icc3_1 == pytest.approx(three, abs=1e-10)
    assert pingouin_icc(SHROUT_FLEISS) == pytest.approx(
        (icc_table(SHROUT_FLEISS).icc2_1, icc_table(SHROUT_FLEISS).icc3_1), abs=1e-10
    )


def test_a_constant_rater_offset_lowers_icc2_but_not_icc3():
    base = np.array([[1.0], [3.0], [2.0], [5.0], [4.0]])
    table = np.hstack([base, base + 2])
    res = icc_table(table)
    assert res.icc3_1 == pytest.approx(1.0)
    assert res.icc2_1 < 0.8


def test_the_largest_complete_block_is_used():
    # Raters 0,1,2 rate items 0..5 (the Shrout-Fleiss first three judges); items 6, 7
    # are rated by raters 0 and 3 only (another block); item 8 by one rater.
    rows = [(i, j, SHROUT_FLEISS[i][j]) for i in range(6) for j in range(3)]
    rows += [(6, 0, 1.0), (6, 3, 2.0), (7, 0, 4.0), (7, 3, 4.0), (8, 1, 3.0)]
    item, rater, value = map(np.asarray, zip(*rows, strict=True))
    order = np.random.default_rng(0).permutation(item.size)  # input order does not matter
    blocks = icc_complete_blocks(item[order], rater[order], value[order])
    expected = icc_table([r[:3] for r in SHROUT_FLEISS])
    assert blocks.raters == [0, 1, 2]
    assert (blocks.result.icc2_1, blocks.result.icc3_1) == (
        pytest.approx(expected.icc2_1),
        pytest.approx(expected.icc3_1),
    )
    assert (blocks.result.n_items, blocks.n_items_rated, blocks.n_blocks) == (6, 9, 2)


def test_not_computable_is_none_with_a_reason():
    none_shared = icc_complete_blocks([0, 0, 1, 1], [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])
    assert none_shared.result.icc2_1 is None and "same set" in none_shared.result.reason
    single = icc_complete_blocks([0, 1], [0, 0], [1.0, 2.0])
    assert single.result.icc3_1 is None and "two or more" in single.result.reason
    flat = icc_table([[2, 2], [2, 2], [2, 2]])
    assert flat.icc2_1 is None and "variance" in flat.reason
    assert icc_table([[1, 2]]).reason == "fewer than two items"


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: icc_table([1, 2, 3]), "2-D"),
        (lambda: icc_table([[1, np.nan], [2, 3]]), "finite"),
        (lambda: icc_complete_blocks([0, 0], [1, 1], [1.0, 2.0]), "one rating"),
        (lambda: icc_complete_blocks([0], [1, 2], [1.0]), "same length"),
    ],
)
def test_bad_input_is_a_value_error(call, word):
    with pytest.raises(ValueError, match=word):
        call()


@pytest.mark.django_db
def test_a_rating_run_reports_icc_equal_to_pingouin(labelers):
    rating = labeling_services.create_project(
        name="Image quality", task_type="rating", level="interval", overlap=3
    )
    # five items rated by all three labelers (the block), one item by two only
    scores = {"p": (1, 2, 1), "q": (4, 4, 5), "r": (3, 2, 3), "s": (5, 5, 5), "t": (2, 4, 3)}
    for external_id, values in scores.items():
        item = rating.items.create(external_id=external_id, kind="text", text=external_id)
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=float(value))
    extra = rating.items.create(external_id="u", kind="text", text="u")
    for labeler, value in zip(labelers[:2], (1.0, 5.0), strict=True):
        labeling_services.submit_annotation(item=extra, labeler=labeler, value=value)
    run = runs.start_agreement_run(project=rating, params={"n_bootstrap": 0, "slices": []})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    icc = run.results["overall"]["icc"]
    two, three = pingouin_icc(list(scores.values()))
    assert icc["icc2_1"] == pytest.approx(two, abs=1e-10)
    assert icc["icc3_1"] == pytest.approx(three, abs=1e-10)
    assert (icc["n_items"], icc["n_raters"], icc["n_items_rated"]) == (5, 3, 6)
    assert "outside the largest complete block" in icc["reasons"]["n_items"]


@pytest.mark.django_db
def test_a_classification_run_has_no_icc(project, labelers):
    item = project.items.create(external_id="a", kind="text", text="a")
    for labeler in labelers:
        labeling_services.submit_annotation(item=item, labeler=labeler, value="dent")
    run = runs.start_agreement_run(project=project, params={"n_bootstrap": 0, "slices": []})
    run = runs.execute_agreement_run(run.pk)
    assert "icc" not in run.results["overall"]
