"""Ground-truth checks in the labeling stream (issue 11, item 6): mixed in at the set
rate, never revealed to the labeler, never counted toward overlap, pause and resume."""

from __future__ import annotations

import json
import math
import re

import pytest
from django.test import Client

from labeling import assignment as A
from labeling import handout, selectors, services
from labeling.models import Annotation, CheckAnswer, Item, PayloadKind, Role
from provenance.models import Event
from tests.labeling.test_views_api import api, next_url

pytestmark = pytest.mark.django_db


def make_items(project, n, prefix):
    return [
        Item.objects.create(
            project=project, external_id=f"{prefix}{i}", kind=PayloadKind.TEXT, text=f"text {i}"
        )
        for i in range(n)
    ]


def make_checks(project, manager, n, value="dent"):
    items = make_items(project, n, "gt")
    for item in items:
        services.set_gold_label(item=item, value=value, actor=manager)
    A.mark_checks(
        project=project, external_ids=[i.external_id for i in items], is_check=True, actor=manager
    )
    return items


@pytest.fixture
def team(project, make_user, manager):
    services.set_membership(project=project, user=manager, role=Role.MANAGER)
    users = [make_user(f"chk{i}") for i in range(3)]
    for u in users:
        services.set_membership(project=project, user=u, role=Role.LABELER)
    return users


def work(project, labeler, n, value="dent"):
    """n hand-out + submit cycles; returns the items handed, in order."""
    handed = []
    for _ in range(n):
        got = A.next_item_for(project, labeler)
        if got is None:
            break
        handed.append(got.item_id)
        A.submit_label(item=got.item, labeler=labeler, value=value, assignment_id=got.pk)
    return handed


def test_checks_are_mixed_in_at_the_set_rate(project, team, manager):
    """600 hand-outs at rate 0.2: the number of checks is Binomial(600, 0.2) (mean 120,
    sd 9.8); accepted within 4 sd. Each check is handed to the labeler once."""
    project.overlap = 1
    project.save(update_fields=["overlap"])
    make_items(project, 700, "it")
    checks = make_checks(project, manager, 250)
    services.update_check_settings(project=project, actor=manager, rate=0.2, min_checks=10_000)
    A.check_draw.seed(11)
    handed = work(project, team[0], 600)
    assert len(handed) == 600
    check_ids = {c.pk for c in checks}
    n_checks = sum(1 for i in handed if i in check_ids)
    mean, sd = 600 * 0.2, math.sqrt(600 * 0.2 * 0.8)
    assert abs(n_checks - mean) <= 4 * sd, n_checks
    assert len(set(handed)) == 600  # no check (nor anything) twice
    assert CheckAnswer.objects.filter(labeler=team[0]).count() == n_checks


def test_rate_zero_never_hands_a_check_and_rate_one_only_checks(project, team, manager):
    make_items(project, 10, "it")
    checks = {c.pk for c in make_checks(project, manager, 5)}
    assert not set(work(project, team[0], 10)) & checks  # default rate 0
    services.update_check_settings(project=project, actor=manager, rate=1.0, min_checks=100)
    assert set(work(project, team[1], 5)) == checks
    # Checks exhausted: the ordinary queue goes on.
    assert work(project, team[1], 1)[0] not in checks


def test_check_labels_never_count_toward_overlap(project, team, manager):
    project.overlap = 1
    project.save(update_fields=["overlap"])
    (check,) = make_checks(project, manager, 1)
    services.update_check_settings(project=project, actor=manager, rate=1.0, min_checks=100)
    assert work(project, team[0], 1) == [check.pk]
    check.refresh_from_db()
    assert (check.handout_labels, check.handout_open) == (0, False)
    # Unmarked, the item is an ordinary item that still needs its one label: the check
    # answer did not fill the slot.
    A.mark_checks(project=project, external_ids=[check.external_id], is_check=False, actor=manager)
    check.refresh_from_db()
    assert (check.handout_labels, check.handout_open) == (0, True)
    services.update_check_settings(project=project, actor=manager, rate=0.0)
    assert work(project, team[1], 1) == [check.pk]
    check.refresh_from_db()
    assert (check.handout_labels, check.handout_open) == (1, False)
    # ...and the first labeler is never handed it again.
    assert A.next_item_for(project, team[0]) is None
    assert handout.verify_project(project).ok


def test_a_check_is_indistinguishable_in_the_labelers_api_and_page(project, team, manager):
    make_items(project, 3, "it")
    make_checks(project, manager, 3)
    labeler = team[0]
    work(project, labeler, 1)  # a label before: both pages below offer "undo last"
    services.update_check_settings(project=project, actor=manager, rate=1.0, min_checks=100)
    client = api(labeler)
    check_body = client.get(next_url(project)).json()
    assert Item.objects.get(pk=check_body["item"]["id"]).is_check
    page = Client()
    page.force_login(labeler)
    check_page = page.get(f"/projects/{project.pk}/label/", secure=True).content.decode()
    client.post(
        f"/api/v1/items/{check_body['item']['id']}/annotations/",
        {"value": "dent", "assignment": check_body["assignment"]["id"]},
        format="json",
    )
    services.update_check_settings(project=project, actor=manager, rate=0.0)
    plain_body = client.get(next_url(project)).json()
    assert not Item.objects.get(pk=plain_body["item"]["id"]).is_check
    plain_page = page.get(f"/projects/{project.pk}/label/", secure=True).content.decode()

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value[:1]]
        return type(value).__name__

    # Same shape, same reason, same expiry time, no word of checks or ground truth.
    assert shape(check_body) == shape(plain_body)
    assert check_body["assignment"]["reason"] == plain_body["assignment"]["reason"] == "overlap"
    for text in (json.dumps(check_body), check_page):
        for word in ("is_check", "ground truth", "ground_truth", "gold", "honeypot"):
            assert word not in text.lower(), word

    # The pages have the same structure: the same elements with the same attributes,
    # whatever their values and texts (the item's own text, ids, progress and times).
    def structure(html):
        html = re.sub(r'="[^"]*"', '=""', html)
        return re.sub(r">[^<]*<", "><", html)

    assert structure(check_page) == structure(plain_page)
    # The labeler cannot ask which items are checks, nor see the accuracy table.
    assert client.get(f"/api/v1/projects/{project.pk}/checks/").status_code == 403
    # Their own annotation list shows the check answer like any label.
    own = client.get(f"/api/v1/projects/{project.pk}/annotations/").json()
    assert "check" not in json.dumps(own).lower().replace("checksum", "")


def test_a_labeler_below_the_threshold_is_paused_and_a_manager_resumes_them(project, team, manager):
    make_items(project, 20, "it")
    make_checks(project, manager, 8, value="dent")
    admin = api(manager)
    response = admin.patch(
        f"/api/v1/projects/{project.pk}/checks/",
        {"rate": 1.0, "min_accuracy": 0.7, "min_checks": 3},
        format="json",
    )
    assert response.status_code == 200 and response.json()["settings"]["min_checks"] == 3
    labeler = team[0]
    # Two right, then wrong: 2/3 = 0.67 < 0.7 after the third check: paused.
    work(project, labeler, 2, value="dent")
    assert not selectors.paused_labelers(project)
    work(project, labeler, 1, value="scratch")
    paused = selectors.paused_labelers(project)
    assert [p["labeler"] for p in paused] == [labeler.username]
    client = api(labeler)
    response = client.get(next_url(project))
    assert response.status_code == 403 and "paused" in response.json()["detail"]
    assert Event.objects.filter(verb="labeler.paused", subject_id=str(labeler.pk)).count() == 1
    # Others are not paused.
    assert api(team[1]).get(next_url(project)).status_code == 200
    # The manager sees the accuracy and resumes.
    table = {
        r["labeler"]: r
        for r in admin.get(f"/api/v1/projects/{project.pk}/checks/").json()["labelers"]
    }
    row = table[labeler.username]
    assert (row["n_checks"], row["n_correct"], row["paused"]) == (3, 2, True)
    assert row["accuracy"] == pytest.approx(2 / 3)
    assert row["weekly"][0]["n_checks"] == 3
    resume = admin.post(
        f"/api/v1/projects/{project.pk}/checks/labelers/{labeler.username}/resume/",
        {"reason": "talked it through"},
        format="json",
    )
    assert resume.status_code == 200 and resume.json()["paused"] is False
    assert resume.json()["since_resume"] == {"n_checks": 0, "n_correct": 0, "accuracy": None}
    assert resume.json()["n_checks"] == 3  # history kept
    assert client.get(next_url(project)).status_code == 200
    again = admin.post(
        f"/api/v1/projects/{project.pk}/checks/labelers/{labeler.username}/resume/",
        {},
        format="json",
    )
    assert again.status_code == 400 and "not paused" in again.json()["detail"]
    assert Event.objects.filter(verb="labeler.resumed").count() == 1


def test_marking_checks_is_validated_naming_rows_and_fields(project, team, manager):
    plain = make_items(project, 2, "p")
    (gold,) = make_checks(project, manager, 1)
    admin = api(manager)
    url = f"/api/v1/projects/{project.pk}/checks/"
    bad = admin.post(url, {"items": [gold.external_id, plain[0].external_id]}, format="json")
    assert bad.status_code == 400 and "rows [1]" in bad.json()["detail"]
    missing = admin.post(url, {"items": ["nope"]}, format="json")
    assert missing.status_code == 400 and "rows [0]" in missing.json()["detail"]
    rate = admin.patch(url, {"rate": 2}, format="json")
    assert rate.status_code == 400 and "rate" in rate.json()["errors"]
    listed = admin.get(url).json()
    assert listed["items"] == [gold.external_id]
    removed = admin.delete(url, {"items": [gold.external_id]}, format="json")
    assert removed.status_code == 200 and removed.json()["items"] == []
    gold.refresh_from_db()
    assert not gold.is_check and gold.handout_open
    assert Annotation.objects.count() == 0
