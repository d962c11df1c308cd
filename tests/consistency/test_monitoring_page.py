"""The monitoring page, server-rendered: drifted checks first with since when, the
per-slice small multiples, labelers with ground-truth accuracy; labelers are refused."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from consistency.models import MonitoringRun
from labeling import services
from labeling.models import Role
from tests.consistency.test_monitoring import build, run_now

pytestmark = pytest.mark.django_db


class SecureClient(Client):
    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


@pytest.fixture
def labelers6(project, make_user):
    users = [make_user(f"lab{i}") for i in range(1, 7)]
    for user in users:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    return users


def test_page_shows_drifted_checks_first_and_labelers(project, labelers6, manager):
    build(project, labelers6, confused_labeler=labelers6[1], gold_every=4, n_items=600)
    run = run_now(project, slices=["camera"])
    client = SecureClient()
    client.force_login(manager)
    html = client.get(reverse("consistency-monitoring", args=[project.pk])).content.decode()
    drifted = html.index('data-testid="drifted"')
    inputs = html.index('data-testid="inputs-mean_brightness"')
    assert drifted < inputs
    first_cards = html[drifted:inputs]
    assert 'data-subject="camera = cam-2"' in first_cards
    assert 'data-subject="camera = cam-1"' not in first_cards
    assert "since 20" in first_cards  # a week date
    assert re.search(r'data-labeler="lab2" data-drifted="true"', html)
    assert 'data-labeler="lab1" data-drifted="false"' in html
    assert "Ground-truth accuracy by week" in html and "<svg" in html
    assert f"#{run.pk}" in html
    # the dashboard links here
    dash = client.get(reverse("consistency-dashboard", args=[project.pk])).content.decode()
    assert reverse("consistency-monitoring", args=[project.pk]) in dash


def test_labelers_may_not_see_the_page_and_smes_may_start_a_run(
    project, labelers6, make_user, django_capture_on_commit_callbacks
):
    client = SecureClient()
    client.force_login(labelers6[0])
    assert client.get(reverse("consistency-monitoring", args=[project.pk])).status_code == 403
    sme = make_user("sme")
    services.set_membership(project=project, user=sme, role=Role.SME)
    build(project, labelers6, n_items=60)
    client.force_login(sme)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reverse("consistency-start-monitoring", args=[project.pk]))
    assert answer.status_code == 302
    assert MonitoringRun.objects.get(project=project).status == "succeeded"
    page = client.get(reverse("consistency-monitoring", args=[project.pk])).content.decode()
    assert "too few" in page  # 60 items: most windows below 30, no verdict, with the reason


def test_a_drift_flag_opens_in_the_review_queue_with_its_evidence(project, labelers6, manager):
    from consistency.models import Flag, FlagKind

    build(project, labelers6, n_items=450)
    run = run_now(project, slices=["camera"])
    flag = Flag.objects.get(
        project=project, kind=FlagKind.DRIFT, slice_key="camera", slice_value="cam-2"
    )
    client = SecureClient()
    client.force_login(manager)
    html = client.get(reverse("review-flag", args=[flag.pk])).content.decode()
    assert f"monitoring run #{run.pk}" in html
    assert "mean brightness" in html and "Since (week of)" in html
