"""The demo generator is deterministic and its planted behaviours are really there.

Pure Python (no database): run with ``-p no:django``.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from labeling.demo import (
    DARK_CAMERA,
    IMAGE_PROJECT_SLUG,
    SPEECH_PROJECT_SLUG,
    build_demo,
    fingerprint,
)

LABELERS = [f"labeler{i}" for i in range(1, 9)]
CARELESS, DEEP_CALLER, DRIFTER = "labeler5", "labeler6", "labeler7"


@pytest.fixture(scope="module")
def demo():
    return build_demo(seed=7)


@pytest.fixture(scope="module")
def images(demo):
    return demo.project(IMAGE_PROJECT_SLUG)


@pytest.fixture(scope="module")
def speech(demo):
    return demo.project(SPEECH_PROJECT_SLUG)


def _summary(data):
    """What must be identical between two builds: image hashes, annotations, metadata."""
    out = []
    for p in data.projects:
        out.append(
            (
                [
                    (
                        it.external_id,
                        hashlib.sha256(it.image_png or b"").hexdigest(),
                        it.text,
                        it.metadata,
                        it.tags,
                        it.truth,
                        it.severity,
                    )
                    for it in p.items
                ],
                p.annotations,
                p.gold,
                p.guidelines,
            )
        )
    return out


def _truth(project):
    return {it.external_id: it for it in project.items}


def _rate(pairs):
    pairs = list(pairs)
    assert pairs, "no annotations to measure"
    return sum(pairs) / len(pairs)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_data(demo):
    again = build_demo(seed=7)
    assert _summary(again) == _summary(demo)
    assert again == demo
    assert fingerprint(again) == fingerprint(demo)


def test_different_seed_gives_different_data():
    a, b = build_demo(seed=7, n_images=40), build_demo(seed=8, n_images=40)
    assert fingerprint(a) != fingerprint(b)
    pa, pb = a.project(IMAGE_PROJECT_SLUG), b.project(IMAGE_PROJECT_SLUG)
    assert [it.image_png for it in pa.items] != [it.image_png for it in pb.items]
    assert [x.value for x in pa.annotations] != [x.value for x in pb.annotations]
    assert [it.metadata for it in pa.items] != [it.metadata for it in pb.items]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        build_demo(seed=-1)
    with pytest.raises(ValueError):
        build_demo(n_images=10)


# --------------------------------------------------------------------------- shape


def test_image_project_counts(images):
    assert images.task_type == "classification"
    assert images.level == "nominal"
    assert images.overlap == 3
    assert len(images.items) >= 300
    assert len({it.external_id for it in images.items}) == len(images.items)
    assert images.items[0].external_id == "img-00001"
    md = [it.metadata for it in images.items]
    assert len({m["factory"] for m in md}) == 2
    assert len({m["line"] for m in md}) == 3
    assert len({m["camera"] for m in md}) == 4
    assert len({m["phone_model"] for m in md}) == 3
    assert len({m["device"] for m in md}) == 4
    # Each line belongs to exactly one factory.
    line_factories = defaultdict(set)
    for m in md:
        line_factories[m["line"]].add(m["factory"])
    assert all(len(f) == 1 for f in line_factories.values())
    for m in md:
        assert set(m["camera_settings"]) == {"exposure_ms", "gain", "white_balance"}
        assert m["captured_at"].endswith("Z")


def test_classes_and_truth(images):
    keys = [c.key for c in images.classes]
    assert keys == [
        "no_defect",
        "shallow_scratch",
        "deep_scratch",
        "dent",
        "crack",
        "borderline",
    ]
    by_key = {c.key: c for c in images.classes}
    assert by_key["borderline"].is_borderline and by_key["borderline"].rank is None
    ranks = [by_key[k].rank for k in keys[:-1]]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5
    assert all(c.name and c.description for c in images.classes)
    truths = Counter(it.truth for it in images.items)
    assert set(truths) == set(keys) - {"borderline"}
    assert sum(it.is_faint for it in images.items) >= 20
    # Severity decides deep vs shallow, and some scratches sit close to the boundary.
    for it in images.items:
        if it.truth == "deep_scratch":
            assert it.severity >= 0.5
        elif it.truth == "shallow_scratch":
            assert it.severity < 0.5
    near = [
        it for it in images.items if it.truth.endswith("scratch") and 0.45 <= it.severity < 0.55
    ]
    assert len(near) >= 20


def test_overlap_and_balanced_workload(images):
    per_item = defaultdict(list)
    for a in images.annotations:
        per_item[a.item].append(a.labeler)
    assert set(per_item) == {it.external_id for it in images.items}
    assert all(len(v) == 3 and len(set(v)) == 3 for v in per_item.values())
    load = Counter(a.labeler for a in images.annotations)
    assert sorted(load) == LABELERS
    assert max(load.values()) - min(load.values()) <= 1
    valid = {c.key for c in images.classes}
    assert {a.value for a in images.annotations} <= valid


def test_annotation_times_and_guideline_versions(images):
    assert [g.version for g in images.guidelines] == [1, 2]
    v1, v2 = images.guidelines
    assert len(v2.text) > len(v1.text) and "deep" in v2.text.lower() and "px" in v2.text
    ids = {it.external_id for it in images.items}
    assert v1.examples and set(v1.examples) <= ids and set(v2.examples) <= ids
    truth = _truth(images)
    captured = {
        k: datetime.strptime(it.metadata["captured_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for k, it in truth.items()
    }
    first, last = min(captured.values()), max(captured.values())
    assert timedelta(days=35) <= last - first <= timedelta(days=43)
    for a in images.annotations:
        assert a.created_at.tzinfo is not None
        assert a.created_at > captured[a.item]
        assert a.guideline_version == (1 if captured[a.item] < v2.published_at else 2)
        # The version an annotation records was published when it was made.
        assert a.created_at >= images.guidelines[a.guideline_version - 1].published_at
        assert a.time_spent_s > 0
    assert {a.guideline_version for a in images.annotations} == {1, 2}
    assert images.annotations == sorted(images.annotations, key=lambda a: a.created_at)


def test_hard_items_take_longer(images):
    truth = _truth(images)
    careful = [a for a in images.annotations if a.labeler != CARELESS]
    easy = [
        a.time_spent_s
        for a in careful
        if truth[a.item].truth == "no_defect" and not truth[a.item].tags
    ]
    hard = [a.time_spent_s for a in careful if truth[a.item].is_faint]
    assert np.median(hard) > 1.3 * np.median(easy)
    hasty = [a.time_spent_s for a in images.annotations if a.labeler == CARELESS]
    assert np.median(hasty) < np.median([a.time_spent_s for a in careful])


def test_gold_labels(images):
    truth = _truth(images)
    assert len(images.gold) == 40
    assert all(g.value == truth[g.item].truth and g.annotator == "sme" for g in images.gold)
    assert len({g.item for g in images.gold}) == 40
    assert {g.value for g in images.gold} == {
        "no_defect",
        "shallow_scratch",
        "deep_scratch",
        "dent",
        "crack",
    }


def test_users_and_roles(demo):
    users = {u.username: u for u in demo.users}
    assert users["admin"].is_superuser
    assert set(users["admin"].roles.values()) == {"manager"}
    assert set(users["sme"].roles.values()) == {"sme"}
    labelers = [
        u
        for u in demo.users
        if IMAGE_PROJECT_SLUG in u.roles and u.roles[IMAGE_PROJECT_SLUG] == "labeler"
    ]
    assert sorted(u.username for u in labelers) == LABELERS
    speech_labelers = {
        u.username for u in demo.users if u.roles.get(SPEECH_PROJECT_SLUG) == "labeler"
    }
    assert 3 <= len(speech_labelers) <= 4
    assert not any(hasattr(u, "password") for u in demo.users)


# --------------------------------------------------------------------------- images


def test_images_are_small_valid_pngs(images):
    sizes = {Image.open(io.BytesIO(it.image_png)).size for it in images.items[:20]}
    assert len(sizes) == 1
    w, h = sizes.pop()
    assert h > w >= 200
    assert max(len(it.image_png) for it in images.items) < 60_000
    assert len({hashlib.sha256(it.image_png).digest() for it in images.items}) == len(images.items)


def test_dark_camera_is_clearly_darker(images):
    brightness = defaultdict(list)
    for it in images.items:
        grey = np.asarray(Image.open(io.BytesIO(it.image_png)).convert("L"), dtype=float)
        brightness[it.metadata["camera"]].append(grey.mean())
    means = {cam: float(np.mean(v)) for cam, v in brightness.items()}
    dark = means.pop(DARK_CAMERA)
    assert dark < 0.7 * min(means.values()), (dark, means)
    assert all("dark" in it.tags for it in images.items if it.metadata["camera"] == DARK_CAMERA)
    assert not any("dark" in it.tags for it in images.items if it.metadata["camera"] != DARK_CAMERA)
    assert any("glare" in it.tags for it in images.items)


# --------------------------------------------------------------------------- planted behaviour


def test_deep_caller_calls_shallow_scratches_deep(images):
    truth = _truth(images)
    rate = defaultdict(list)
    for a in images.annotations:
        it = truth[a.item]
        if it.truth == "shallow_scratch" and not it.is_faint:
            rate[a.labeler].append(a.value == "deep_scratch")
    assert _rate(rate.pop(DEEP_CALLER)) >= 0.6
    for labeler, calls in rate.items():
        assert _rate(calls) < 0.3, labeler


def test_deep_shallow_confusion_rises_near_boundary_for_everyone(images):
    """Not one labeler's quirk: the pair is confusable near the boundary, both ways."""
    truth = _truth(images)
    near, far = [], []
    flips = Counter()
    for a in images.annotations:
        it = truth[a.item]
        if (
            a.labeler == DEEP_CALLER
            or it.is_faint
            or it.truth not in ("shallow_scratch", "deep_scratch")
        ):
            continue
        other = "deep_scratch" if it.truth == "shallow_scratch" else "shallow_scratch"
        wrong = a.value == other
        (near if abs(it.severity - 0.5) < 0.05 else far).append(wrong)
        if wrong and abs(it.severity - 0.5) < 0.05:
            flips[it.truth] += 1
    assert _rate(near) > 2 * _rate(far)
    assert flips["shallow_scratch"] >= 5 and flips["deep_scratch"] >= 5


def test_careless_labeler_is_clearly_least_accurate(images):
    truth = _truth(images)
    acc = defaultdict(list)
    for a in images.annotations:
        acc[a.labeler].append(a.value == truth[a.item].truth)
    acc = {k: _rate(v) for k, v in acc.items()}
    careless = acc.pop(CARELESS)
    assert careless < min(acc.values()) - 0.04, (careless, acc)


def test_dark_camera_labels_are_less_accurate(images):
    truth = _truth(images)
    acc = defaultdict(list)
    for a in images.annotations:
        it = truth[a.item]
        if not it.is_faint:
            acc["dark" in it.tags].append(a.value == it.truth)
    assert _rate(acc[True]) < _rate(acc[False]) - 0.08


def test_drifting_labeler_gets_worse_later(images):
    truth = _truth(images)
    start = min(
        datetime.strptime(it.metadata["captured_at"], "%Y-%m-%dT%H:%M:%SZ") for it in images.items
    ).replace(tzinfo=UTC)
    early, late = defaultdict(list), defaultdict(list)
    for a in images.annotations:
        it = truth[a.item]
        if it.is_faint:
            continue
        bucket = late if a.created_at - start >= timedelta(days=29) else early
        bucket[a.labeler].append(a.value == it.truth)
    assert _rate(late[DRIFTER]) < _rate(early[DRIFTER]) - 0.2
    assert _rate(late["labeler1"]) > _rate(early["labeler1"]) - 0.1


def test_faint_scratches_are_split(images):
    truth = _truth(images)
    faint = [a.value for a in images.annotations if truth[a.item].is_faint]
    assert len(faint) >= 60
    shares = {k: v / len(faint) for k, v in Counter(faint).items()}
    assert max(shares.values()) <= 0.8, shares
    assert {"no_defect", "shallow_scratch", "borderline"} <= set(shares)
    # And they disagree per item, which is what ambiguity detection should flag.
    per_item = defaultdict(set)
    for a in images.annotations:
        if truth[a.item].is_faint:
            per_item[a.item].add(a.value)
    split = sum(len(v) > 1 for v in per_item.values())
    assert split >= 0.6 * len(per_item)


def test_some_annotations_carry_comments(images):
    comments = [a.comment for a in images.annotations if a.comment]
    assert 0 < len(comments) < 0.1 * len(images.annotations)
    assert "hard to see, dark image" in comments


# --------------------------------------------------------------------------- speech


def test_transcription_project(speech):
    assert speech.task_type == "transcription"
    assert speech.classes == []
    assert 25 <= len(speech.items) <= 40
    assert all(it.image_png is None and it.text for it in speech.items)
    devices = Counter(it.metadata["device"] for it in speech.items)
    assert set(devices) == {"headset", "phone", "car"}
    for it in speech.items:
        assert ("car_noise" in it.tags) == (it.metadata["device"] == "car")
    per_item = defaultdict(list)
    for a in speech.annotations:
        per_item[a.item].append(a.labeler)
    assert all(len(set(v)) == 3 == len(v) for v in per_item.values())
    assert len(per_item) == len(speech.items)


def test_weather_utterance_has_three_conventions(speech):
    weather = [
        it for it in speech.items if "weather" in it.truth.lower() and "today" in it.truth.lower()
    ]
    assert len(weather) == 1
    values = {a.value for a in speech.annotations if a.item == weather[0].external_id}
    assert {"Um, today's weather", "Um... today's weather", "Today's weather"} <= values


def test_word_errors_are_more_common_in_car_noise(speech):
    truth = _truth(speech)

    def words(s):
        return [
            w.strip(".,?!").lower()
            for w in s.split()
            if w.strip(".,?!").lower() not in {"um", "uh", "er", "um...", "uh...", "er..."}
        ]

    errors = defaultdict(list)
    for a in speech.annotations:
        it = truth[a.item]
        errors[it.metadata["device"] == "car"].append(words(a.value) != words(it.truth))
    assert _rate(errors[True]) > _rate(errors[False]) + 0.15
