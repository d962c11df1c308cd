"""Consensus rows are stored exactly as computed, by whichever bulk path the database
uses (binary COPY on PostgreSQL, json_each on SQLite): every float to the last bit, NULL
classes, every status; storing again replaces the rows."""

from __future__ import annotations

import numpy as np
import pytest

from consistency import consensus_store, runs
from consistency.consensus_store import STATUSES, ConsensusBlock, _store_consensus
from consistency.models import Consensus
from tests.datasets.conftest import make_items

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("batch", [None, 1])
def test_consensus_rows_round_trip_exactly(project, monkeypatch, batch):
    if batch:  # groups split across several record arrays / statements
        monkeypatch.setattr(consensus_store, "CONSENSUS_COPY_BATCH", batch)
        monkeypatch.setattr(consensus_store, "CONSENSUS_INSERT_BATCH", batch)
    items = make_items(project, 5)
    classes = list(project.classes.order_by("pk").values_list("pk", flat=True))
    run = runs._claim(runs.start_agreement_run(project=project, params={}).pk)
    floats = np.array([1 / 3, 0.1 + 0.2, 5e-324, 1 - 2**-53, 0.0])
    # Two rows share (disputed, no class): batches of one row split that group.
    block = ConsensusBlock(
        method="majority",
        item_ids=np.array([i.pk for i in items], dtype=np.int64),
        class_ids=np.array([classes[0], -1, classes[2], -1, classes[1]], dtype=np.int64),
        support=floats,
        confidence=floats[::-1].copy(),
        entropy=np.sqrt(floats),
        n_labels=np.array([3, 2, 5, 1, 4], dtype=np.int64),
        status=np.array(
            [
                STATUSES.index(s)
                for s in ("agreed", "disputed", "borderline", "disputed", "resolved")
            ],
            dtype=np.int8,
        ),
    )
    other = ConsensusBlock(**{**block.__dict__, "method": "dawid_skene"})
    _store_consensus(run, [block, other])
    _store_consensus(run, [block, other])  # again: replaced, not added
    assert Consensus.objects.filter(run=run).count() == 10
    for method in ("majority", "dawid_skene"):
        rows = list(
            Consensus.objects.filter(run=run, method=method)
            .order_by("item_id")
            .values_list(
                "item_id", "label_class_id", "support", "confidence", "entropy", "n_labels"
            )
        )
        statuses = list(
            Consensus.objects.filter(run=run, method=method)
            .order_by("item_id")
            .values_list("status", "value_text")
        )
        for k, row in enumerate(rows):
            assert row[0] == block.item_ids[k]
            assert row[1] == (None if block.class_ids[k] < 0 else block.class_ids[k])
            # bit for bit: == on floats, not approx
            assert (row[2], row[3], row[4]) == (
                block.support[k],
                block.confidence[k],
                block.entropy[k],
            )
            assert row[5] == block.n_labels[k]
            assert statuses[k] == (STATUSES[block.status[k]], "")
