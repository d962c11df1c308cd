"""A manager edits the monitoring and ground-truth check settings (issue 11): the project
API's PATCH and the workspace settings page show and save them; bad values are a 400
naming the field, and nothing is saved."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from labeling import selectors, services
from labeling.models import Project
from provenance.models import Event
from tests.labeling.test_views_api import api

pytestmark = pytest.mark.django_db


def patch(client, project, body):
    return client.patch(
        f"/api/v1/projects/{project.pk}/", data=json.dumps(body), content_type="application/json"
    )


def test_patch_saves_monitoring_and_check_settings_and_shows_them(project, manager):
    client = api(manager)
    body = {
        "monitoring_min_window": 50,
        "monitoring_q_threshold": 0.01,
        "monitoring_min_effect": 0.25,
        "monitoring_schedule": "off",
        "check_rate": 0.05,
        "check_min_accuracy": 0.8,
        "check_min_checks": 20,
    }
    response = patch(client, project, body)
    assert response.status_code == 200, response.content
    shown = response.json()
    assert {k: shown[k] for k in body} == body
    project.refresh_from_db()
    assert (
        project.monitoring_min_window,
        project.monitoring_q_threshold,
        project.monitoring_min_effect,
        project.monitoring_schedule,
    ) == (50, 0.01, 0.25, "off")
    assert selectors.check_settings(project) == {
        "rate": 0.05,
        "min_accuracy": 0.8,
        "min_checks": 20,
    }
    # The check settings change is recorded by its own event, the rest by project.updated.
    assert Event.objects.filter(verb="checks.changed").count() == 1
    updated = Event.objects.filter(verb="project.updated").latest("id")
    assert updated.after["monitoring_schedule"] == "off"
    assert "check_rate" not in updated.after
    # GET shows the same; the checks API agrees.
    assert client.get(f"/api/v1/projects/{project.pk}/").json()["check_min_checks"] == 20
    assert client.get(f"/api/v1/projects/{project.pk}/checks/").json()["settings"]["rate"] == 0.05


@pytest.mark.parametrize(
    "field,value",
    [
        ("monitoring_min_window", 1),
        ("monitoring_min_window", 2_000_000),
        ("monitoring_q_threshold", 0),  # exclusive: a threshold of 0 never flags
        ("monitoring_q_threshold", 0.9),
        ("monitoring_min_effect", -0.1),
        ("monitoring_min_effect", 11),
        ("monitoring_schedule", "hourly"),
        ("check_rate", 1.5),
        ("check_min_accuracy", -1),
        ("check_min_checks", 0),
    ],
)
def test_out_of_bounds_settings_are_a_400_naming_the_field(project, manager, field, value):
    before = Project.objects.filter(pk=project.pk).values().get()
    policy = selectors.check_settings(project)
    response = patch(api(manager), project, {field: value, "name": "changed"})
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert Project.objects.filter(pk=project.pk).values().get() == before
    assert selectors.check_settings(project) == policy


@pytest.mark.parametrize(
    "field,value",
    [
        ("monitoring_q_threshold", 0.0),
        ("monitoring_min_window", 2.5),
        ("monitoring_min_effect", float("nan")),
        ("monitoring_min_effect", float("inf")),
        ("check_rate", float("nan")),
    ],
)
def test_the_service_refuses_what_the_serializer_might_let_through(project, field, value):
    with pytest.raises(services.ValidationError) as exc:
        services.update_project(project=project, **{field: value})
    assert field in exc.value.message_dict


def test_labelers_may_not_change_the_settings(project, labelers):
    response = patch(api(labelers[0]), project, {"check_rate": 1.0})
    assert response.status_code == 403
    assert selectors.check_settings(project)["rate"] == 0.0


def _settings_form(project) -> dict:
    form = {
        "name": project.name,
        "level": project.level,
        "overlap": str(project.overlap),
        "min_overlap": str(project.min_overlap),
        "max_overlap": str(project.max_overlap),
        "assignment_ttl_minutes": str(project.assignment_ttl_minutes),
    }
    for n, c in enumerate(project.classes.order_by("order", "id")):
        form.update(
            {
                f"class_{n}_id": str(c.pk),
                f"class_{n}_key": c.key,
                f"class_{n}_name": c.name,
                f"class_{n}_order": str(n),
            }
        )
    return form


def test_the_settings_page_shows_and_saves_monitoring_and_checks(client, manager, project):
    client.force_login(manager)
    url = reverse("project-settings", args=[project.pk])
    html = client.get(url, secure=True).content.decode()
    assert "<legend>Monitoring</legend>" in html and "<legend>Ground-truth checks</legend>" in html
    for name in (
        "monitoring_min_window",
        "monitoring_q_threshold",
        "monitoring_min_effect",
        "check_rate",
        "check_min_accuracy",
        "check_min_checks",
    ):
        assert f'name="{name}"' in html
    assert re.search(r'<select id="m-monitoring_schedule" name="monitoring_schedule">', html)
    assert re.search(r'name="check_min_checks" value="10"', html)  # the default policy
    form = {
        **_settings_form(project),
        "monitoring_min_window": "40",
        "monitoring_q_threshold": "0.02",
        "monitoring_min_effect": "0.3",
        "monitoring_schedule": "off",
        "check_rate": "0.1",
        "check_min_accuracy": "0.75",
        "check_min_checks": "12",
    }
    response = client.post(url, form, secure=True)
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert (project.monitoring_min_window, project.monitoring_q_threshold) == (40, 0.02)
    assert (project.monitoring_min_effect, project.monitoring_schedule) == (0.3, "off")
    assert selectors.check_settings(project) == {
        "rate": 0.1,
        "min_accuracy": 0.75,
        "min_checks": 12,
    }
    html = client.get(url, secure=True).content.decode()
    assert 'name="check_min_checks" value="12"' in html
    assert '<option value="off" selected>' in html
    # Saving again unchanged records no second checks.changed.
    assert client.post(url, form, secure=True).status_code == 302
    assert Event.objects.filter(verb="checks.changed").count() == 1


def test_the_settings_page_names_a_bad_field_and_saves_nothing(client, manager, project):
    client.force_login(manager)
    url = reverse("project-settings", args=[project.pk])
    form = {**_settings_form(project), "monitoring_q_threshold": "0.9", "check_rate": "0.2"}
    response = client.post(url, form, secure=True)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-field="monitoring_q_threshold"' in html
    project.refresh_from_db()
    assert project.monitoring_q_threshold == 0.05
    assert selectors.check_settings(project)["rate"] == 0.0
    bad_checks = {**_settings_form(project), "check_min_accuracy": "2"}
    response = client.post(url, bad_checks, secure=True)
    assert response.status_code == 400
    assert 'data-field="check_min_accuracy"' in response.content.decode()
