"""One order and one set of digit keys for the classes on every page and in the API: the
labeling page, the SME review page and the next-item payload choose the same class for the
same key (ranks differ from creation order; one class is merged away)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from consistency.models import AgreementRun, Flag, FlagKind, RunStatus
from labeling import selectors, services
from labeling.models import Item, LabelClass, MeasurementLevel, PayloadKind, Role, TaskType

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(manager):
    """Created in the order good, bad, ok, meh, unsure; ranked bad < ok = meh < good;
    meh is merged into ok; unsure is the borderline class."""
    project = services.create_project(
        name="Call quality",
        task_type=TaskType.RATING,
        level=MeasurementLevel.ORDINAL,
        overlap=2,
        created_by=manager,
        classes=[
            {"key": "good", "name": "Good", "rank": 3},
            {"key": "bad", "name": "Bad", "rank": 1},
            {"key": "ok", "name": "OK", "rank": 2},
            {"key": "meh", "name": "Meh", "rank": 2},
            {"key": "unsure", "name": "Unsure", "is_borderline": True},
        ],
    )
    LabelClass.objects.filter(project=project, key="meh").update(
        merged_into=LabelClass.objects.get(project=project, key="ok")
    )
    Item.objects.create(project=project, external_id="c1", kind=PayloadKind.TEXT, text="hi")
    return project


def test_display_classes_sort_by_rank_skip_merged_and_key_the_borderline_b(rated):
    rows = selectors.display_classes(rated)
    assert [(r["key"], r["kbd"]) for r in rows] == [
        ("bad", "1"),
        ("ok", "2"),
        ("good", "3"),
        ("unsure", "B"),
    ]


def test_nominal_projects_keep_the_creation_order(project):
    rows = selectors.display_classes(project)
    assert [(r["key"], r["kbd"]) for r in rows] == [
        ("no_defect", "1"),
        ("scratch", "2"),
        ("dent", "3"),
        ("borderline", "B"),
    ]


def _keys_on_labeling_page(html: str) -> dict[str, str]:
    buttons = re.findall(
        r'<button type="submit" name="value" value="([^"]+)"[^>]*data-key="([^"]*)"', html
    )
    return {kbd.upper(): key for key, kbd in buttons if kbd}


def _keys_on_review_page(html: str) -> dict[str, str]:
    choices = re.findall(
        r'<label class="label-choice" data-key="([^"]*)"><input type="radio" name="label" '
        r'value="([^"]+)"',
        html,
    )
    return {kbd: key for kbd, key in choices if kbd}


def test_labeling_page_review_page_and_api_choose_the_same_class_per_digit(
    rated, manager, make_user, client
):
    labeler, sme = make_user("lab"), make_user("expert")
    services.set_membership(project=rated, user=labeler, role=Role.LABELER)
    services.set_membership(project=rated, user=sme, role=Role.SME)
    now = timezone.now()
    run = AgreementRun.objects.create(
        project=rated, status=RunStatus.SUCCEEDED, results={}, started_at=now, finished_at=now
    )
    flag = Flag.objects.create(project=rated, run=run, kind=FlagKind.ITEM_DISAGREEMENT)
    flag.items.set(rated.items.all())

    client.force_login(labeler)
    labeling_html = client.get(reverse("label", args=[rated.pk]), secure=True).content.decode()
    client.force_login(sme)
    review_html = client.get(reverse("review-flag", args=[flag.pk]), secure=True).content.decode()
    api = APIClient()
    api.force_authenticate(labeler)
    payload = api.get(reverse("api-next-item", args=[rated.pk]), secure=True).json()

    # The API carries no keys: its n-th class that is not the first borderline one is
    # the n-th digit.
    api_keys = [c["key"] for c in payload["classes"] if not c["is_borderline"]]
    from_api = {str(n + 1): key for n, key in enumerate(api_keys)}
    expected = {"1": "bad", "2": "ok", "3": "good"}
    assert _keys_on_labeling_page(labeling_html) == {**expected, "B": "unsure"}
    assert _keys_on_review_page(review_html) == expected
    assert from_api == expected
