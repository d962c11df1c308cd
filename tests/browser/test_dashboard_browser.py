"""An SME opens the agreement dashboard, starts a run with one click, watches it finish
in the worker, and sees the charts -- in headless Chromium, with a screenshot."""

from __future__ import annotations

import functools

import pytest

from labeling.demo import IMAGE_PROJECT_SLUG, loader
from labeling.demo.loader import demo_password, seed_demo
from labeling.models import Project

pytestmark = [pytest.mark.browser, pytest.mark.integration]

_build_demo_once = functools.cache(loader.build_demo)

CHARTS = (
    "labeler-bars",
    "kappa-heatmap",
    "confusion-heatmap",
    "slice-camera",
    "alpha-trend",
    "guideline-versions",
)


@pytest.fixture
def demo(transactional_db, settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setattr(loader, "build_demo", _build_demo_once)
    seed_demo(seed=11, n_images=60)
    return Project.objects.get(slug=IMAGE_PROJECT_SLUG)


def test_sme_runs_agreement_from_the_dashboard_and_sees_the_charts(
    http_live_server, page, demo, celery_worker_process, screenshot_dir
):
    page.goto(f"{http_live_server.url}/login/")
    page.fill("input[name=username]", "sme")
    page.fill("input[name=password]", demo_password("sme"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(f"{http_live_server.url}/projects/{demo.pk}/dashboard/")
    page.screenshot(path=str(screenshot_dir / "dashboard-empty.png"), full_page=True)

    with page.expect_navigation():
        page.click("[data-testid=start-run]")
    assert page.locator("[data-testid=run-progress]").is_visible()
    # dashboard.js polls the run and reloads the page when the worker is done
    page.wait_for_selector("[data-testid=overall]", timeout=120_000)
    assert not page.locator("[data-testid=run-failed]").count()

    alpha = page.locator("[data-metric=krippendorff_alpha]").inner_text()
    assert float(alpha) > 0
    for name in CHARTS:
        chart = page.locator(f'svg[data-chart="{name}"]')
        assert chart.count() == 1, name
        assert chart.is_visible(), name
        box = chart.bounding_box()
        assert box["width"] > 100 and box["height"] > 40, (name, box)
    assert page.locator('svg[data-chart="kappa-heatmap"] rect').count() == 64
    # Gwet's AC1 stands beside alpha: the next card on the same row
    alpha_card = page.locator(".kpi", has=page.locator("[data-metric=krippendorff_alpha]"))
    ac1_card = page.locator("[data-testid=gwet]")
    assert ac1_card.is_visible() and float(page.locator("[data-metric=gwet_ac1]").inner_text())
    a_box, g_box = alpha_card.bounding_box(), ac1_card.bounding_box()
    assert abs(a_box["y"] - g_box["y"]) < 2 and g_box["x"] > a_box["x"]
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)
