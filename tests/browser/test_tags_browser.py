"""A manager tags items in bulk from the tags page -- keyboard and a plain form POST, in
headless Chromium at a phone's width (390 px), with no horizontal scroll."""

from __future__ import annotations

import pytest

from labeling import services
from labeling.models import Item, PayloadKind, TaskType

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def tag_project(transactional_db, settings, django_user_model):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    manager = django_user_model.objects.create_user(username="manager", password=PASSWORD)
    project = services.create_project(
        name="Phone defects with a rather long project name for a narrow screen",
        task_type=TaskType.CLASSIFICATION,
        classes=[{"key": "ok", "name": "OK"}, {"key": "bad", "name": "Bad"}],
        created_by=manager,
    )
    for n in range(1, 6):
        Item.objects.create(
            project=project,
            external_id=f"phone-{n:03d}",
            kind=PayloadKind.TEXT,
            text="t",
            metadata={"line": str(n % 2)},
        )
    return project


def test_manager_tags_items_from_the_page_at_390px(
    http_live_server, chromium, tag_project, screenshot_dir
):
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{http_live_server.url}/login/")
        page.fill("input[name=username]", "manager")
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.goto(f"{http_live_server.url}/projects/{tag_project.pk}/tags/")
        assert page.locator("[data-testid=tag-counts]").count() == 0

        page.fill("#id_tag", "night-shift")
        page.fill("#id_items", "phone-001\nphone-002, phone-003")
        page.focus("[data-testid=tags-submit]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("[data-count=night-shift]").inner_text() == "3"
        assert "added to 3 items" in page.locator(".messages").inner_text()

        # A typo'd id is shown beside the field; nothing changes.
        page.fill("#id_tag", "night-shift")
        page.fill("#id_items", "phone-004\nphone-999")
        with page.expect_navigation():
            page.click("[data-testid=tags-submit]")
        assert "phone-999" in page.locator("#items-errors").inner_text()
        assert page.locator("[data-count=night-shift]").inner_text() == "3"

        page.screenshot(path=str(screenshot_dir / "tags-390.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()
