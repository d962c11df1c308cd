"""The manager's flag for a labeler paused by the ground-truth checks (issue 11, item 6):
raised with its evidence when the pause happens, never twice while open, resolved on
resume; pauses made on the labeling page get theirs when the manager reads the queue
or the periodic task runs."""

from __future__ import annotations

import pytest
from django.test import Client

from consistency import pause_flags
from consistency.models import Flag, FlagKind, FlagStatus
from consistency.tasks import sync_all_pause_flags
from labeling import assignment as A
from labeling import selectors, services
from provenance.models import Event
from tests.labeling.test_checks import make_checks, make_items, team, work  # noqa: F401
from tests.labeling.test_views_api import api, next_url

pytestmark = pytest.mark.django_db


def pause_flags_of(project):
    return Flag.objects.filter(project=project, kind=FlagKind.LABELER)


def set_policy(admin, project, **settings):
    response = admin.patch(f"/api/v1/projects/{project.pk}/checks/", settings, format="json")
    assert response.status_code == 200, response.content


def submit_via_api(client, project, value):
    handed = client.get(next_url(project))
    assert handed.status_code == 200, handed.content
    body = handed.json()
    response = client.post(
        f"/api/v1/items/{body['item']['id']}/annotations/",
        {"value": value, "assignment": body["assignment"]["id"]},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_a_labeler_paused_through_the_api_gets_a_flag_and_resume_resolves_it(
    project,
    team,  # noqa: F811
    manager,
):
    make_items(project, 20, "it")
    make_checks(project, manager, 8, value="dent")
    admin = api(manager)
    set_policy(admin, project, rate=1.0, min_accuracy=0.7, min_checks=3)
    labeler = api(team[0])
    submit_via_api(labeler, project, "dent")
    submit_via_api(labeler, project, "dent")
    assert not pause_flags_of(project).exists()  # 2/2: not paused, no flag
    submit_via_api(labeler, project, "scratch")  # 2/3 = 0.67 < 0.7 after 3 checks
    assert [p["labeler"] for p in selectors.paused_labelers(project)] == [team[0].username]
    flags = list(pause_flags_of(project))
    assert len(flags) == 1
    flag = flags[0]
    assert flag.status == FlagStatus.OPEN and flag.run_id is None
    assert flag.labeler_id == team[0].pk
    assert flag.evidence["n_checks"] == 3 and flag.evidence["n_correct"] == 2
    assert flag.evidence["accuracy"] == pytest.approx(2 / 3)
    assert flag.evidence["threshold"] == 0.7 and flag.evidence["min_checks"] == 3
    assert "2/3" in flag.summary and team[0].username in flag.summary
    # In the manager's queue (API), once: reading again raises nothing new.
    for _ in range(2):
        listed = admin.get(f"/api/v1/projects/{project.pk}/flags/?kind=labeler").json()
        assert [f["id"] for f in listed["results"]] == [flag.pk]
    assert pause_flags.sync_pause_flags(project) == []
    assert sync_all_pause_flags() == 0
    assert pause_flags_of(project).count() == 1
    # The manager resumes: the flag is resolved, with an event naming the manager.
    resume = admin.post(
        f"/api/v1/projects/{project.pk}/checks/labelers/{team[0].username}/resume/",
        {"reason": "talked it through"},
        format="json",
    )
    assert resume.status_code == 200, resume.content
    flag.refresh_from_db()
    assert flag.status == FlagStatus.RESOLVED and flag.closed_at is not None
    event = Event.objects.get(verb="flag.resolved", subject_id=str(flag.pk))
    assert event.actor_id == manager.pk and event.reason == "talked it through"
    assert not pause_flags_of(project).filter(status=FlagStatus.OPEN).exists()
    # A later pause is a new subject: a second flag, the first stays resolved.
    submit_via_api(labeler, project, "scratch")
    submit_via_api(labeler, project, "scratch")
    submit_via_api(labeler, project, "scratch")
    assert pause_flags_of(project).filter(status=FlagStatus.OPEN).count() == 1
    assert pause_flags_of(project).count() == 2


def test_a_pause_on_the_labeling_page_is_flagged_by_the_queue_and_the_periodic_task(
    project,
    team,  # noqa: F811
    manager,
):
    make_items(project, 20, "it")
    make_checks(project, manager, 8, value="dent")
    services.update_check_settings(
        project=project, actor=manager, rate=1.0, min_accuracy=0.5, min_checks=2
    )
    # Service-level submits (what the labeling page calls): paused, not yet flagged.
    work(project, team[0], 2, value="scratch")
    work(project, team[1], 2, value="scratch")
    work(project, team[2], 2, value="dent")  # 2/2: fine
    assert {p["labeler"] for p in selectors.paused_labelers(project)} == {
        team[0].username,
        team[1].username,
    }
    assert not pause_flags_of(project).exists()
    # The periodic task raises both; the manager's queue page raises nothing more.
    assert sync_all_pause_flags() == 2
    browser = Client()
    browser.force_login(manager)
    page = browser.get(f"/projects/{project.pk}/review/?kind=labeler", secure=True)
    assert page.status_code == 200
    assert {f.labeler_id for f in pause_flags_of(project)} == {team[0].pk, team[1].pk}
    assert pause_flags_of(project).count() == 2
    assert team[0].username in page.content.decode()
    for flag in pause_flags_of(project):
        assert flag.evidence["accuracy"] == 0.0 and flag.evidence["n_checks"] == 2
    # An SME dismisses one: the same pause is not flagged again (not a resurrection).
    first = pause_flags_of(project).get(labeler=team[0])
    dismissed = api(manager).post(
        f"/api/v1/flags/{first.pk}/resolve/",
        {"action": "dismiss", "rationale": "known, coaching"},
        format="json",
    )
    assert dismissed.status_code in (200, 201), dismissed.content
    first.refresh_from_db()
    assert first.status == FlagStatus.DISMISSED
    assert sync_all_pause_flags() == 0
    assert browser.get(f"/projects/{project.pk}/review/", secure=True).status_code == 200
    assert pause_flags_of(project).count() == 2


def test_the_queue_page_raises_the_flag_and_a_resume_outside_the_api_is_caught_up(
    project,
    team,  # noqa: F811
    manager,
):
    make_items(project, 20, "it")
    make_checks(project, manager, 8, value="dent")
    services.update_check_settings(
        project=project, actor=manager, rate=1.0, min_accuracy=0.5, min_checks=2
    )
    work(project, team[0], 2, value="scratch")
    browser = Client()
    browser.force_login(manager)
    assert browser.get(f"/projects/{project.pk}/review/", secure=True).status_code == 200
    flag = pause_flags_of(project).get()
    assert flag.status == FlagStatus.OPEN
    # Resumed by the labeling service directly (no flag handling there): the next sync
    # resolves the stale flag rather than leaving it open.
    A.resume_labeler(project=project, labeler=team[0], actor=manager)
    pause_flags.sync_pause_flags(project)
    flag.refresh_from_db()
    assert flag.status == FlagStatus.RESOLVED


def test_the_monitoring_page_shows_check_accuracy_by_week_and_marks_the_paused(
    project,
    team,  # noqa: F811
    manager,
):
    from datetime import timedelta

    from django.urls import reverse

    from labeling.models import CheckAnswer

    make_items(project, 20, "it")
    make_checks(project, manager, 8, value="dent")
    services.update_check_settings(
        project=project, actor=manager, rate=1.0, min_accuracy=0.6, min_checks=4
    )
    work(project, team[0], 2, value="dent")
    # The two right answers were a week earlier: two weekly points, 2/2 then 0/2.
    early = list(CheckAnswer.objects.filter(labeler=team[0]).order_by("pk"))
    for answer in early:
        answer.created_at -= timedelta(days=7)
        answer.save(update_fields=["created_at"])
    work(project, team[0], 2, value="scratch")  # 2/4 = 0.5 < 0.6 after 4: paused
    work(project, team[1], 1, value="dent")
    weeks = sorted(
        {
            (a.created_at.date() - timedelta(days=a.created_at.weekday())).isoformat()
            for a in CheckAnswer.objects.filter(labeler=team[0])
        }
    )
    assert len(weeks) == 2
    browser = Client()
    browser.force_login(manager)
    html = browser.get(reverse("consistency-monitoring", args=[project.pk]), secure=True)
    assert html.status_code == 200
    html = html.content.decode()
    section = html[html.index('data-testid="labelers"') :]
    flag = pause_flags_of(project).get()  # raised by the page at the latest
    first = section.index(f'data-labeler="{team[0].username}"')
    assert first < section.index(f'data-labeler="{team[1].username}"')  # paused first
    card = section[first : section.index("</article>", first)]
    assert 'data-paused="true"' in card and 'data-testid="paused"' in card
    assert f"/flags/{flag.pk}/" in card
    assert "Check accuracy by week (4 checks, 0.50 overall)" in card
    assert f"week of {weeks[0]}: 1 (n=2)" in card
    assert f"week of {weeks[1]}: 0 (n=2)" in card
    other = section[section.index(f'data-labeler="{team[1].username}"') :]
    other = other[: other.index("</article>")]
    assert 'data-paused="false"' in other and "(1 check, 1.00 overall)" in other


def test_check_figures_join_the_run_row_of_the_same_labeler():
    from consistency.monitoring_views import _add_checks

    run_rows = [
        {"labeler": "ann", "drifted": False, "agreement": None, "gold": None, "n_gold": 3},
        {"labeler": "bob", "drifted": True, "agreement": None, "gold": None, "n_gold": 0},
    ]
    checks = [
        {
            "labeler_id": 7,
            "labeler": "ann",
            "n_checks": 2,
            "accuracy": 0.5,
            "paused": True,
            "paused_at": None,
            "paused_reason": "low",
            "weekly": [{"week": "2026-11-30", "n_checks": 2, "n_correct": 1, "accuracy": 0.5}],
        },
        {
            "labeler_id": 8,
            "labeler": "cyd",
            "n_checks": 1,
            "accuracy": 1.0,
            "paused": False,
            "paused_at": None,
            "paused_reason": "",
            "weekly": [{"week": "2026-11-30", "n_checks": 1, "n_correct": 1, "accuracy": 1.0}],
        },
    ]
    rows = _add_checks(run_rows, checks, {7: "flag"}, 0.7, None)
    assert [r["labeler"] for r in rows] == ["ann", "bob", "cyd"]  # paused, drifted, rest
    ann = rows[0]
    assert ann["n_gold"] == 3 and ann["paused"] and ann["pause_flag"] == "flag"
    assert ann["checks"]["points"][0]["title"] == "week of 2026-11-30: 0.5 (n=2)"
    assert rows[1]["n_checks"] == 0 and not rows[1]["paused"] and "checks" not in rows[1]
    assert rows[2]["n_gold"] == 0 and rows[2]["pause_flag"] is None
