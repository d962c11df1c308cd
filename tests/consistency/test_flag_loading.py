"""``consistency.flags.load_label_data`` reads labels as columns (issue 14: 10M labels in
a worker below 1 GB). Checked here against a reference written again in the test, one
label row at a time, on a project with what makes the loading tricky: merged classes,
labels without a class, metadata values of every JSON kind, tags, capture dates, several
guideline versions (with ties per item), an SME decision, and usernames and external
ids whose text order differs from their primary-key order."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from consistency import flags
from labeling import services
from labeling.models import Annotation, Item, ItemDecision, PayloadKind, Role, Tag
from review import services as review

pytestmark = pytest.mark.django_db

SLICES = ["factory", "camera", "shift", "tag", "captured_week"]
METADATA_VALUES = [
    "penang",
    "Shenzhen",
    3,
    2.5,
    True,
    "",
    None,
    {"b": 1, "a": "x"},
    ["not", "a", "slice"],
]


def reference(project, slice_keys) -> dict:
    """What the loader must give, from model rows, the slow obvious way."""
    merged = {c.pk: (c.merged_into_id or c.pk) for c in project.classes.all()}
    active = list(project.classes.filter(merged_into__isnull=True).order_by("order", "id"))
    rows = [
        a
        for a in Annotation.objects.filter(project=project, is_current=True)
        .select_related("item", "labeler", "guideline")
        .order_by("item_id", "labeler_id")
        if a.label_class_id is not None
    ]
    item_keys = sorted({a.item.external_id for a in rows})
    names = sorted({a.labeler.username for a in rows})
    keys_of = {c.pk: c.key for c in active}
    item_slices = {}
    items = {i.external_id: i for i in Item.objects.filter(external_id__in=item_keys)}
    for key in slice_keys:
        if key in ("tag", "captured_week"):
            continue
        col = [flags._slice_value((items[e].metadata or {}).get(key)) for e in item_keys]
        if any(v is not None for v in col):
            item_slices[key] = col
    weeks = [flags._iso_week((items[e].metadata or {}).get("captured_at")) for e in item_keys]
    if any(weeks):
        item_slices["captured_week"] = weeks
    for tag in Tag.objects.filter(project=project):
        tagged = set(tag.items.values_list("external_id", flat=True))
        item_slices[f"tag:{tag.name}"] = [tag.name if e in tagged else None for e in item_keys]
    by_item: dict[str, list] = {}
    for a in rows:
        if a.guideline is not None:
            by_item.setdefault(a.item.external_id, []).append(a.guideline.version)
    if len({v for vs in by_item.values() for v in vs}) > 1:
        mode = {}
        for e, vs in by_item.items():
            counts = Counter(vs)
            top = max(counts.values())
            mode[e] = f"v{max(v for v, n in counts.items() if n == top)}"
        item_slices["guideline_version"] = [mode.get(e) for e in item_keys]
    decided = set(
        ItemDecision.objects.filter(item__project=project).values_list(
            "item__external_id", flat=True
        )
    )
    epoch = pd.Timestamp(0, tz="UTC")
    return {
        "items": [item_keys.index(a.item.external_id) for a in rows],
        "labelers": [names.index(a.labeler.username) for a in rows],
        "values": [[c.key for c in active].index(keys_of[merged[a.label_class_id]]) for a in rows],
        "times": [(pd.Timestamp(a.created_at) - epoch).total_seconds() for a in rows],
        "item_keys": item_keys,
        "labeler_names": names,
        "classes": [c.key for c in active],
        "item_slices": item_slices,
        "brightness": [items[e].mean_brightness for e in item_keys],
        "resolved": {item_keys.index(e) for e in decided if e in item_keys},
    }


@pytest.mark.parametrize("range_items", [None, 5])
@pytest.mark.parametrize("seed", [1, 2])
def test_columnar_loading_equals_a_row_by_row_reference(
    seed, range_items, project, make_user, manager, monkeypatch
):
    if range_items:  # read in item-id ranges of 5 items (24 items: 5 ranges)
        monkeypatch.setattr(flags, "LOAD_RANGE_ITEMS", range_items)
    rng = random.Random(seed)
    # Usernames and external ids whose text order is not their creation (pk) order.
    team = [make_user(f"{name}{seed}") for name in ["zoe", "Amy", "bob", "_x", "Émile"]]
    for user in team:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    ids = [f"{rng.choice(['B', 'a', 'é', '10', '9'])}-{n}" for n in range(24)]
    items = []
    for n, external_id in enumerate(ids):
        metadata = {key: rng.choice(METADATA_VALUES) for key in ("factory", "camera", "shift")} | {
            "captured_at": f"2026-0{1 + n % 3}-1{n % 10}T08:00:00"
        }
        if n % 5 == 0:
            metadata.pop("factory")
        items.append(
            Item.objects.create(
                project=project,
                external_id=external_id,
                kind=PayloadKind.TEXT,
                text="t",
                metadata=metadata,
                mean_brightness=None if n % 4 else rng.random() * 100,
            )
        )
    dark = Tag.objects.create(project=project, name="dark")
    glare = Tag.objects.create(project=project, name="glare")
    for item in items[::3]:
        item.tags.add(dark)
    for item in items[1::4]:
        item.tags.add(glare)
    keys = ["no_defect", "scratch", "dent", "borderline"]
    for round_ in range(2):
        if round_:
            services.publish_guideline(project=project, text="v2", published_by=manager)
        for item in items:
            for user in rng.sample(team, rng.randint(0, 4)):
                services.submit_annotation(item=item, labeler=user, value=rng.choice(keys))
    review.merge_classes(
        project=project, class_keys=["dent"], into="scratch", actor=manager, rationale="same"
    )
    labeled = [i for i in items if Annotation.objects.filter(item=i, is_current=True).exists()]
    services.set_item_decision(
        item=labeled[0],
        label_class=project.classes.get(key="scratch"),
        actor=manager,
        rationale="SME",
    )

    data = flags.load_label_data(project, slice_keys=SLICES)
    want = reference(project, SLICES)
    assert data.items.tolist() == want["items"]
    assert data.labelers.tolist() == want["labelers"]
    assert data.values.tolist() == want["values"]
    np.testing.assert_array_equal(data.times, np.asarray(want["times"]))
    assert data.item_keys == want["item_keys"]
    assert data.labeler_names == want["labeler_names"]
    assert data.classes == want["classes"]
    assert {k: list(v) for k, v in data.item_slices.items()} == want["item_slices"]
    if any(v is not None for v in want["brightness"]):
        assert list(data.item_numbers["mean_brightness"]) == want["brightness"]
    assert set(data.resolved_items) == want["resolved"]
    assert "guideline_version" in data.item_slices  # two versions were in use
    # The same rows through the pandas constructor the detection core documents.
    frame = pd.DataFrame(
        {
            "item": [want["item_keys"][i] for i in want["items"]],
            "labeler": [want["labeler_names"][i] for i in want["labelers"]],
            "value": [want["classes"][i] for i in want["values"]],
        }
    )
    framed = flags.detection.LabelData.from_frame(frame, classes=want["classes"])
    assert framed.items.tolist() == data.items.tolist()
    assert framed.labelers.tolist() == data.labelers.tolist()


def test_label_times_keep_every_microsecond_at_the_edges_of_a_second(project, make_user):
    """SQLite's date functions round to milliseconds: a time of hh:mm:57.9996 read whole
    by ``strftime('%s')`` became 58 s and, with its fraction added, 58.9996 (it failed
    a CI run whose random label times happened to hit such a fraction)."""
    from datetime import UTC, datetime

    from consistency.scan import scan_annotations

    labelers = [make_user(f"edge{n}") for n in range(5)]
    for user in labelers:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    stamps = [
        datetime(2026, 12, 7, 10, 0, 57, 999_961, tzinfo=UTC),
        datetime(2026, 12, 7, 10, 0, 57, 999_500, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 12, 7, 10, 0, 58, tzinfo=UTC),
        datetime(2026, 12, 7, 10, 0, 58, 1, tzinfo=UTC),
    ]
    item = Item.objects.create(project=project, external_id="edge", kind=PayloadKind.TEXT)
    for user, stamp in zip(labelers, stamps, strict=True):
        services.submit_annotation(item=item, labeler=user, value="scratch")
        Annotation.objects.filter(item=item, labeler=user).update(created_at=stamp)
    columns = scan_annotations(project.pk, with_time=True)
    got = sorted(zip(columns.labeler.tolist(), columns.time.tolist(), strict=True))
    want = sorted((u.pk, s.timestamp()) for u, s in zip(labelers, stamps, strict=True))
    assert got == want
