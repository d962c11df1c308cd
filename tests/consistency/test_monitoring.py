"""Monitoring runs end to end on the database: planted changes are found where they were
planted and nowhere else, tiny slices get no verdict, drift flags are raised once, the
REST contract holds and no response carries NaN or Infinity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient as _APIClient

from consistency import monitoring
from consistency.models import Flag, FlagKind, FlagStatus, MonitoringRun, RunStatus
from labeling import services
from labeling.models import (
    Annotation,
    GoldLabel,
    GoldSource,
    ImageStatsStatus,
    Item,
    PayloadKind,
    Role,
)

pytestmark = pytest.mark.django_db

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
SHIFT_DAY = 28  # the last two of six weeks are the default current window
CLASSES = ("no_defect", "scratch", "dent")


class APIClient(_APIClient):
    """Requests over https, as production serves them (SECURE_SSL_REDIRECT is on)."""

    def generic(self, method, path, data="", content_type=None, secure=True, **extra):
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def strict(content: bytes):
    def refuse(name):
        raise ValueError(f"non-finite number {name} in the response")

    return json.loads(content, parse_constant=refuse)


def build(
    project,
    labelers,
    *,
    seed: int = 0,
    n_items: int = 600,
    dark_camera: str | None = "cam-2",
    confused_labeler=None,
    tiny_camera_items: int = 0,
    gold_every: int = 0,
):
    """Six weeks of items over three cameras (+ an optional camera with only a few items
    in the last two weeks), three labels per item from ``labelers``.

    ``dark_camera``'s images lose 30 % of their brightness from day 28 on; from the same
    day ``confused_labeler`` calls most dents scratches."""
    rng = np.random.default_rng(seed)
    classes = {c.key: c for c in project.classes.all()}
    items, day_of = [], []
    for i in range(n_items):
        day = float(rng.uniform(0, 42))
        cam = ["cam-1", "cam-2", "cam-3"][i % 3]
        brightness = float(rng.normal(120, 12))
        if cam == dark_camera and day >= SHIFT_DAY:
            brightness *= 0.7
        items.append(
            Item(
                project=project,
                external_id=f"img-{i}",
                kind=PayloadKind.IMAGE_URL,
                image_url=f"https://example.org/{i}.png",
                metadata={
                    "camera": cam,
                    "factory": "A" if cam != "cam-3" else "B",
                    "captured_at": (START + timedelta(days=day)).isoformat(),
                },
                stats_status=ImageStatsStatus.DONE,
                mean_brightness=brightness,
                width=640,
                height=480,
            )
        )
        day_of.append(day)
    for j in range(tiny_camera_items):
        day = 30 + j
        items.append(
            Item(
                project=project,
                external_id=f"tiny-{j}",
                kind=PayloadKind.IMAGE_URL,
                image_url=f"https://example.org/t{j}.png",
                metadata={
                    "camera": "cam-9",
                    "captured_at": (START + timedelta(days=day)).isoformat(),
                },
                stats_status=ImageStatsStatus.DONE,
                mean_brightness=30.0,
                width=640,
                height=480,
            )
        )
        day_of.append(float(day))
    Item.objects.bulk_create(items)
    items = list(Item.objects.filter(project=project).order_by("id"))
    truth_keys = rng.choice(CLASSES, size=len(items), p=[0.5, 0.3, 0.2])
    annotations, gold = [], []
    for n, (item, day, truth) in enumerate(zip(items, day_of, truth_keys, strict=True)):
        chosen = rng.choice(len(labelers), size=3, replace=False)
        for j in chosen:
            labeler = labelers[j]
            t = START + timedelta(days=day, hours=float(rng.uniform(1, 20)))
            value = str(truth)
            if rng.random() < 0.08:
                value = str(rng.choice(CLASSES))
            confused = labeler == confused_labeler and day >= SHIFT_DAY and truth == "dent"
            if confused and rng.random() < 0.85:
                value = "scratch"
            annotations.append(
                Annotation(
                    project=project,
                    item=item,
                    labeler=labeler,
                    label_class=classes[value],
                    created_at=t,
                )
            )
        if gold_every and n % gold_every == 0:
            gold.append(
                GoldLabel(item=item, label_class=classes[str(truth)], source=GoldSource.IMPORT)
            )
    Annotation.objects.bulk_create(annotations)
    GoldLabel.objects.bulk_create(gold)


@pytest.fixture
def six_labelers(project, make_user):
    users = [make_user(f"lab{i}") for i in range(1, 7)]
    for user in users:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    return users


def run_now(project, **params) -> MonitoringRun:
    run = monitoring.start_monitoring_run(project=project, params=params or None)
    return monitoring.execute_monitoring_run(run.pk)


def find(checks, metric, *, key=None, value=None, labeler=None, field=None):
    out = [
        c
        for c in checks
        if c["metric"] == metric
        and (key is None or (c["slice"] or {}).get("key") == key)
        and (value is None or (c["slice"] or {}).get("value") == value)
        and (labeler is None or c["labeler"] == labeler)
        and (field is None or c.get("field") == field)
    ]
    assert len(out) == 1, (metric, key, value, labeler, [c["slice"] for c in out])
    return out[0]


def test_default_windows_are_the_last_two_weeks_and_four_before(project, six_labelers):
    build(project, six_labelers, n_items=60, dark_camera=None)
    params = monitoring.validate_params(project, None)
    # latest data is on day 42 at the latest: the windows end at the next midnight
    end = datetime.fromisoformat(params["current"]["end"])
    assert params["current"]["start"] == (end - timedelta(days=14)).isoformat().replace(
        "+00:00", "Z"
    )
    assert params["baseline"]["end"] == params["current"]["start"]
    assert datetime.fromisoformat(params["baseline"]["start"]) == end - timedelta(days=42)
    assert params["slices"] == ["camera", "factory"]


def test_brightness_shift_on_one_camera_is_flagged_for_that_camera_only(project, six_labelers):
    build(project, six_labelers, tiny_camera_items=5)
    run = run_now(project, slices=["camera"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    checks = run.results["checks"]
    shifted = find(checks, "mean_brightness", key="camera", value="cam-2")
    assert shifted["drifted"] is True
    assert shifted["current"]["mean"] < 0.8 * shifted["baseline"]["mean"]
    assert shifted["series"]["since"] is not None
    # "since when", to the week: the first week (weeks start with the baseline window)
    # of the latest run of weeks outside the alarm band
    since = datetime.fromisoformat(shifted["series"]["since"]).replace(tzinfo=UTC)
    assert abs(since - (START + timedelta(days=SHIFT_DAY))) <= timedelta(days=7)
    for control in ("cam-1", "cam-3"):
        assert find(checks, "mean_brightness", key="camera", value=control)["drifted"] is False
    tiny = find(checks, "mean_brightness", key="camera", value="cam-9")
    assert tiny["drifted"] is None
    assert tiny["reasons"]["drifted"].startswith("too few items (")
    assert tiny["reasons"]["drifted"] == "too few items (0)"  # none in the baseline
    # the flags: for cam-2's brightness, none for the controls
    flags = Flag.objects.filter(project=project, kind=FlagKind.DRIFT)
    brightness = [f for f in flags if f.evidence["metric"] == "mean_brightness"]
    assert {(f.slice_key, f.slice_value) for f in brightness} <= {("camera", "cam-2"), ("", "")}
    assert ("camera", "cam-2") in {(f.slice_key, f.slice_value) for f in brightness}
    flag = next(f for f in brightness if f.slice_value == "cam-2")
    assert flag.monitoring_run_id == run.pk and flag.run_id is None
    assert flag.evidence["baseline"]["n"] > 30 and flag.evidence["current"]["mean"]


def test_five_item_slice_in_the_current_window_gets_too_few_items(project, six_labelers):
    build(project, six_labelers, dark_camera=None)
    # five items of a new camera in the current window, a full baseline for it
    current_start = datetime.fromisoformat(
        monitoring.validate_params(project, None)["current"]["start"]
    )
    cam = list(Item.objects.filter(project=project, metadata__camera="cam-3"))
    late = [i for i in cam if datetime.fromisoformat(i.metadata["captured_at"]) >= current_start]
    for item in late[5:]:
        item.metadata = {**item.metadata, "camera": "cam-3b"}
    Item.objects.bulk_update(late[5:], ["metadata"])
    run = run_now(project, slices=["camera"])
    check = find(run.results["checks"], "mean_brightness", key="camera", value="cam-3")
    assert check["current"]["n"] == 5
    assert check["drifted"] is None
    assert check["reasons"]["drifted"] == "too few items (5)"
    assert check["p_value"] is None and check["statistic"] is None


def test_labeler_whose_confusion_changes_is_flagged_and_the_others_are_not(project, six_labelers):
    confused = six_labelers[2]
    build(project, six_labelers, dark_camera=None, confused_labeler=confused, n_items=900)
    run = run_now(project, slices=["camera"])
    checks = run.results["checks"]
    for labeler in six_labelers:
        agreement = find(checks, "labeler_agreement", labeler=labeler.username)
        distribution = find(checks, "labeler_label_distribution", labeler=labeler.username)
        drifted = agreement["drifted"] or distribution["drifted"]
        assert drifted is (labeler == confused), (labeler.username, agreement, distribution)
    agreement = find(checks, "labeler_agreement", labeler=confused.username)
    assert agreement["current"]["value"] < agreement["baseline"]["value"] - 0.05
    flagged = set(
        Flag.objects.filter(project=project, kind=FlagKind.DRIFT)
        .exclude(labeler=None)
        .values_list("labeler__username", flat=True)
    )
    assert flagged == {confused.username}


def test_a_flag_is_not_raised_again_while_an_identical_one_is_open(project, six_labelers):
    build(project, six_labelers, n_items=450)
    run_now(project, slices=["camera"])
    first = Flag.objects.filter(project=project, kind=FlagKind.DRIFT).count()
    assert first >= 1
    run_now(project, slices=["camera"])
    assert Flag.objects.filter(project=project, kind=FlagKind.DRIFT).count() == first
    # once dismissed, the same drift is raised again by the next run
    flag = Flag.objects.filter(project=project, kind=FlagKind.DRIFT).first()
    flag.status = FlagStatus.DISMISSED
    flag.save(update_fields=["status"])
    run_now(project, slices=["camera"])
    assert Flag.objects.filter(project=project, kind=FlagKind.DRIFT).count() == first + 1


def test_gold_accuracy_per_week_leaves_out_the_gold_carrying_labeler(project, six_labelers):
    build(project, six_labelers, dark_camera=None, n_items=300, gold_every=3)
    carrier = six_labelers[0]
    # the carrier's own labels on gold items carry the ground truth: not scored
    gold_items = list(
        GoldLabel.objects.filter(item__project=project).values_list("item_id", flat=True)
    )
    GoldLabel.objects.filter(item__project=project).update(labeler=carrier)
    run = run_now(project, slices=["camera"])
    per = {e["labeler"]: e["weeks"] for e in run.results["labelers"]}
    assert sum(w["n_gold"] for w in per[carrier.username]) == 0
    other = six_labelers[1]
    expected = Annotation.objects.filter(labeler=other, item_id__in=gold_items).count()
    assert sum(w["n_gold"] for w in per[other.username]) == expected
    accuracies = [w["gold_accuracy"] for w in per[other.username] if w["n_gold"]]
    assert accuracies and all(0.6 < a <= 1.0 for a in accuracies)


def test_api_contract_and_no_nan_or_infinity(
    project, six_labelers, manager, django_capture_on_commit_callbacks
):
    build(project, six_labelers, n_items=120, tiny_camera_items=3)
    # a constant column and an empty one: width is constant, height missing everywhere
    Item.objects.filter(project=project).update(height=None)
    client = APIClient()
    client.force_authenticate(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("api-monitoring-runs", args=[project.pk]), {"slices": ["camera"]}, format="json"
        )
    assert response.status_code == 202, response.content
    run_id = strict(response.content)["id"]
    detail = client.get(reverse("api-monitoring-run", args=[run_id]))
    body = strict(detail.content)
    assert body["status"] == "succeeded", body["error"]
    assert set(body) >= {"status", "progress", "error", "params", "results"}
    assert set(body["params"]) >= {"baseline", "current", "slices"}
    for check in body["results"]["checks"]:
        assert set(check) >= {
            "metric", "slice", "labeler", "baseline", "current", "test", "statistic",
            "p_value", "q_value", "effect_size", "drifted", "reasons",
        }  # fmt: skip
        assert "n" in check["baseline"] and "n" in check["current"]
        if check["drifted"] is None:
            assert check["reasons"]["drifted"]
    width = next(c for c in body["results"]["checks"] if c["metric"] == "width" and not c["slice"])
    assert width["effect_size"] == 0.0 and width["drifted"] is False
    assert not any(c["metric"] == "height" for c in body["results"]["checks"])
    listing = strict(client.get(reverse("api-monitoring-runs", args=[project.pk])).content)
    assert listing["results"][0]["id"] == run_id
    flags = strict(client.get(reverse("api-flags", args=[project.pk]), {"kind": "drift"}).content)
    assert flags["results"] and all(f["kind"] == "drift" for f in flags["results"])
    assert all(f["monitoring_run"] == run_id and f["run"] is None for f in flags["results"])


def test_bad_windows_are_400_naming_the_field(project, six_labelers, manager):
    client = APIClient()
    client.force_authenticate(manager)
    url = reverse("api-monitoring-runs", args=[project.pk])
    bad = client.post(
        url, {"baseline": {"start": "2024-03-10", "end": "2024-03-01"}}, format="json"
    )
    assert bad.status_code == 400 and "baseline" in strict(bad.content)["errors"]
    bad = client.post(url, {"current": {"start": "yesterday", "end": "2024-03-01"}}, format="json")
    assert bad.status_code == 400 and "current.start" in strict(bad.content)["errors"]
    bad = client.post(url, {"slices": "camera"}, format="json")
    assert bad.status_code == 400 and "slices" in strict(bad.content)["errors"]


def test_schedule_starts_one_run_a_day_for_due_projects(
    project, six_labelers, django_capture_on_commit_callbacks
):
    build(project, six_labelers, n_items=90)
    with django_capture_on_commit_callbacks(execute=True):
        started = monitoring.start_due_monitoring_runs()
    assert len(started) == 1
    run = MonitoringRun.objects.get(pk=started[0])
    assert run.trigger == "scheduled" and run.status == RunStatus.SUCCEEDED
    assert monitoring.start_due_monitoring_runs() == []  # not due again the same day
    project.monitoring_schedule = "off"
    project.save(update_fields=["monitoring_schedule"])
    later = datetime.now(UTC) + timedelta(days=2)
    assert project not in monitoring.due_projects(later)


def test_slices_that_cut_the_same_items_raise_one_flag(project, six_labelers):
    build(project, six_labelers, n_items=450)
    # every camera has its own serial number: device cuts the same items as camera
    for item in Item.objects.filter(project=project):
        item.metadata = {**item.metadata, "device": "SN-" + item.metadata["camera"]}
        item.save(update_fields=["metadata"])
    run = run_now(project, slices=["camera", "device"])
    device = find(run.results["checks"], "mean_brightness", key="device", value="SN-cam-2")
    assert device["drifted"] is True
    assert device["same_as"] == {"key": "camera", "value": "cam-2"}
    flags = Flag.objects.filter(
        project=project, kind=FlagKind.DRIFT, evidence__metric="mean_brightness"
    )
    assert not flags.filter(slice_key="device").exists()
    camera = flags.get(slice_key="camera", slice_value="cam-2")
    assert camera.evidence["same_items_as"] == [{"key": "device", "value": "SN-cam-2"}]
