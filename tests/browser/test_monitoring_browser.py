"""A manager opens the monitoring page in headless Chromium: the drifted camera and the
drifted labeler come first, with since when; the page fits a 390 px phone without
horizontal scrolling. Screenshots at desktop and phone widths."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import services
from labeling.models import CheckAnswer, Item, LabelerState, Role
from tests.consistency.test_monitoring import build, run_now

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def monitored(transactional_db, project, make_user):
    labelers = [make_user(f"lab{i}") for i in range(1, 7)]
    for user in labelers:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    build(project, labelers, confused_labeler=labelers[1], gold_every=4, n_items=600)
    run_now(project, slices=["camera"])
    # lab4 answered ground-truth checks over three weeks, worse each week, and was paused.
    now = timezone.now()
    items = list(Item.objects.filter(project=project).order_by("pk")[:12])
    for n, item in enumerate(items):
        week = n // 4  # 4 answers a week: 4/4, 2/4, 0/4 right
        CheckAnswer.objects.create(
            project=project,
            item=item,
            labeler=labelers[3],
            correct=(n % 4) < (2 - week) * 2,
            created_at=now - timedelta(days=7 * (2 - week)),
        )
    LabelerState.objects.update_or_create(
        project=project,
        labeler=labelers[3],
        defaults={
            "n_checks": 12,
            "n_checks_correct": 6,
            "paused_at": now,
            "paused_reason": "accuracy on ground-truth checks 6/12 below 70%",
        },
    )
    return project


def _log_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.mark.parametrize("width", [1440, 390])
def test_manager_sees_what_drifted_since_when_at_any_width(
    http_live_server, chromium, monitored, screenshot_dir, width
):
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, http_live_server.url)
        page.goto(f"{http_live_server.url}/projects/{monitored.pk}/dashboard/")
        with page.expect_navigation():
            page.click("[data-testid=monitoring-link]")
        drifted = page.locator("[data-testid=drifted] [data-testid=check]")
        assert drifted.count() >= 2
        subjects = drifted.evaluate_all("els => els.map(e => e.dataset.subject)")
        assert "camera = cam-2" in subjects and "labeler lab2" in subjects
        assert "camera = cam-1" not in subjects and "camera = cam-3" not in subjects
        assert page.locator("[data-testid=drifted] .since").first.is_visible()
        card = page.locator('[data-testid=drifted] [data-subject="camera = cam-2"]')
        for svg in ("svg.mon-hist", "svg.mon-series"):
            box = card.locator(svg).bounding_box()
            assert box and box["width"] > 150 and box["height"] > 40, (svg, box)
        labeler = page.locator('[data-testid=labeler][data-labeler="lab2"]')
        assert labeler.get_attribute("data-drifted") == "true"
        assert page.locator("[data-testid=labeler]").first.get_attribute("data-labeler") == "lab2"
        paused = page.locator('[data-testid=labeler][data-labeler="lab4"]')
        assert paused.get_attribute("data-paused") == "true"
        assert "6/12" in paused.locator("[data-testid=pause-note]").inner_text()
        assert paused.locator("svg.mon-series").count() >= 1
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
        page.screenshot(path=str(screenshot_dir / f"monitoring-{width}.png"), full_page=True)
    finally:
        context.close()
