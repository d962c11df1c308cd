"""A manager opens a model run's page and sees the prioritisation table sorted by
potential gain, in headless Chromium."""

from __future__ import annotations

import pytest

from tests.consistency.test_error_analysis import speech_project

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_manager_sees_the_table_sorted_by_potential_gain(
    http_live_server, page, transactional_db, manager, make_user, screenshot_dir
):
    _, run = speech_project(manager, make_user)
    page.goto(f"{http_live_server.url}/login/")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", "pw-for-tests-123")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(f"{http_live_server.url}/model-runs/{run.pk}/")
    rows = page.locator("[data-testid=priority-row]")
    assert [rows.nth(i).get_attribute("data-slice") for i in range(3)] == [
        "tag=people_noise",
        "tag=clean_speech",
        "tag=low_bandwidth",
    ]
    gains = [
        page.locator("[data-testid=priority-row] [data-testid=potential-gain]").nth(i).inner_text()
        for i in range(3)
    ]
    assert gains == ["0.0300", "0.0150", "0.0000"]
    assert "low" in rows.nth(0).get_attribute("class")  # the top row is highlighted
    chart = page.locator('svg[data-chart="accuracy-vs-hlp"]')
    assert (
        chart.is_visible() and page.locator('svg[data-chart="accuracy-vs-hlp"] circle').count() == 3
    )
    page.screenshot(path=str(screenshot_dir / "model-run.png"), full_page=True)
