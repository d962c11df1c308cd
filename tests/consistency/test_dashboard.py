"""The agreement dashboard: who may see it, starting a run, and numbers that match results."""

from __future__ import annotations

import functools
import re

import pytest
from django.test import Client
from django.urls import reverse

from consistency import charts, runs
from consistency.models import AgreementRun, RunStatus
from labeling import services as labeling_services
from labeling.demo import IMAGE_PROJECT_SLUG, loader
from labeling.demo.loader import seed_demo
from labeling.models import Project, Role

pytestmark = pytest.mark.django_db

_build_demo_once = functools.cache(loader.build_demo)


@pytest.fixture
def demo(settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setattr(loader, "build_demo", _build_demo_once)
    seed_demo(seed=11, n_images=60)
    return Project.objects.get(slug=IMAGE_PROJECT_SLUG)


@pytest.fixture
def finished_run(demo):
    run = runs.start_agreement_run(project=demo, params={"n_bootstrap": 100})
    run = runs.execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def get(client, url):
    return client.get(url, secure=True)


def url_for(project) -> str:
    return reverse("consistency-dashboard", args=[project.pk])


def user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def test_sme_sees_the_numbers_of_the_latest_run(finished_run):
    response = get(web(user("sme")), url_for(finished_run.project))
    assert response.status_code == 200
    html = response.content.decode()
    overall = finished_run.results["overall"]
    shown = dict(re.findall(r'data-metric="(\w+)">([^<]+)<', html))
    for key in ("krippendorff_alpha", "fleiss_kappa", "percent_agreement"):
        assert shown[key] == f"{overall[key]:.3f}"
    assert shown["mean_pairwise_cohen_kappa"] == f"{overall['mean_pairwise_cohen_kappa']:.3f}"
    assert shown["hlp"] == f"{finished_run.results['hlp']['value']:.3f}"
    low, high = overall["krippendorff_alpha_ci"]
    assert f"95% CI {low:.3f} – {high:.3f}" in html
    for chart in (
        "labeler-bars",
        "kappa-heatmap",
        "confusion-heatmap",
        "alpha-trend",
        "guideline-versions",
        "slice-camera",
    ):
        assert f'data-chart="{chart}"' in html
    assert "cdn" not in html.lower() and "https://" not in html
    # the careless labeler is the highlighted lowest one
    lowest = min(finished_run.results["per_labeler"], key=lambda e: e["agreement_with_consensus"])
    assert f"lowest: <strong>{lowest['labeler']}</strong>" in html
    assert 'data-testid="start-run"' in html


def test_per_class_table_matches_results(finished_run):
    html = get(web(user("sme")), url_for(finished_run.project)).content.decode()
    table = html.split('data-testid="per-class"')[1].split("</table>")[0]
    for entry in finished_run.results["per_class"]:
        assert f"<td>{entry['class']}</td>" in table
        if entry["krippendorff_alpha"] is not None:
            assert f"{entry['krippendorff_alpha']:.3f}" in table


def test_viewer_sees_the_dashboard_without_the_start_button(finished_run, make_user):
    viewer = make_user("viewer-1")
    labeling_services.set_membership(project=finished_run.project, user=viewer, role=Role.VIEWER)
    response = get(web(viewer), url_for(finished_run.project))
    assert response.status_code == 200
    assert b'data-testid="start-run"' not in response.content
    start = reverse("consistency-start-run", args=[finished_run.project.pk])
    assert web(viewer).post(start, secure=True).status_code == 403


def test_labeler_gets_403_and_a_non_member_404(demo, make_user):
    assert get(web(user("labeler1")), url_for(demo)).status_code == 403
    assert get(web(make_user("outsider")), url_for(demo)).status_code == 404


def test_anonymous_is_sent_to_login(demo):
    response = Client().get(url_for(demo), secure=True)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_sme_starts_a_run_with_one_click(demo, django_capture_on_commit_callbacks):
    client = web(user("sme"))
    start = reverse("consistency-start-run", args=[demo.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(start, secure=True)
    assert response.status_code == 302
    run = AgreementRun.objects.get(project=demo)
    assert run.status == RunStatus.SUCCEEDED, run.error
    html = get(client, url_for(demo)).content.decode()
    assert f"Run <strong>#{run.pk}</strong>" in html


def test_a_running_run_shows_progress_polling_the_api(demo):
    run = AgreementRun.objects.create(project=demo, status=RunStatus.RUNNING, progress=0.4)
    html = get(web(user("sme")), url_for(demo)).content.decode()
    assert f'data-poll-url="/api/v1/agreement-runs/{run.pk}/"' in html
    assert "40%" in html
    assert "disabled" in html.split('data-testid="start-run"')[1][:40]


def test_a_failed_run_shows_its_error(demo):
    AgreementRun.objects.create(
        project=demo, status=RunStatus.FAILED, error="ValueError: no labels to compare"
    )
    html = get(web(user("sme")), url_for(demo)).content.decode()
    assert "ValueError: no labels to compare" in html


def test_heatmap_colours_are_diverging_and_clamped():
    assert charts.diverging(None)[0] == "#eceff3"
    assert charts.diverging(1.0)[0] == "#1f6feb"
    assert charts.diverging(-1.0)[0] == "#d64545"
    assert charts.diverging(0.0)[0] == "#f4f6f9"


def test_admin_lists_runs_with_links_to_their_json(finished_run, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123")
    client = web(admin_user)
    html = get(client, reverse("admin:consistency_agreementrun_changelist")).content.decode()
    assert f"/api/v1/agreement-runs/{finished_run.pk}/" in html
    assert f"{finished_run.results['overall']['krippendorff_alpha']:.3f}" in html
    change = reverse("admin:consistency_agreementrun_change", args=[finished_run.pk])
    assert get(client, change).status_code == 200
    consensus = get(client, reverse("admin:consistency_consensus_changelist"))
    assert consensus.status_code == 200
