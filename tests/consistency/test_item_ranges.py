"""``scan.item_id_ranges``: the one rule that splits a project's items by id, for chunked
agreement runs and for the flag loader."""

from __future__ import annotations

import pytest

from consistency.scan import OPEN_END, item_id_ranges
from labeling.models import Item, PayloadKind

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("per_range", [1, 3, 7, 10, 50])
def test_ranges_hold_the_asked_number_of_items_and_cover_every_item(project, per_range):
    other = Item.objects.create(project=project, external_id="x", kind=PayloadKind.TEXT)
    ids = [
        Item.objects.create(project=project, external_id=f"i{n}", kind=PayloadKind.TEXT).pk
        for n in range(10)
    ]
    ids = sorted([other.pk, *ids])
    ranges = item_id_ranges(project.pk, per_range)
    assert ranges[0][0] == 0 and ranges[-1][1] == OPEN_END
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    sizes = [sum(first <= i <= last for i in ids) for first, last in ranges]
    assert sizes == [per_range] * (len(ids) // per_range) + (
        [len(ids) % per_range] if len(ids) % per_range else []
    )


def test_a_project_without_items_has_no_ranges(project):
    assert item_id_ranges(project.pk, 5) == []
