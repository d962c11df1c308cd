"""A labeler draws, edits and submits boxes in headless Chromium (detection projects)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeling import services
from labeling.models import Annotation, GoldSource, Role, TaskType

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"
WIDTH, HEIGHT = 256, 384  # the demo phone drawings


def phone_png(i: int) -> bytes:
    from labeling.demo.images import PHONE_MODELS, render_phone

    return render_phone(
        np.random.default_rng([11, i]),
        model=PHONE_MODELS[i % len(PHONE_MODELS)],
        defect=["scratch", "dent", "crack", "no_defect"][i % 4],
        severity=0.7,
        brightness=1.0,
        white_balance=(1.0, 1.0, 1.0),
        glare=False,
    )


@pytest.fixture
def box_project(transactional_db, make_user, manager):
    project = services.create_project(
        name="Screen defects (boxes)",
        task_type=TaskType.DETECTION,
        classes=[
            {"key": "scratch", "name": "Scratch"},
            {"key": "dent", "name": "Dent"},
            {"key": "crack", "name": "Crack"},
        ],
        overlap=3,
        created_by=manager,
    )
    items = []
    for i in range(4):
        item = services.create_image_item(
            project=project, external_id=f"phone-{i:03d}", image_bytes=phone_png(i)
        )
        item.width, item.height = WIDTH, HEIGHT
        item.save(update_fields=["width", "height"])
        items.append(item)
    # The guideline's example shows its ground-truth boxes.
    example = services.create_image_item(
        project=project, external_id="example-1", image_bytes=phone_png(9)
    )
    example.width, example.height = WIDTH, HEIGHT
    example.save(update_fields=["width", "height"])
    services.set_gold_label(
        item=example,
        value=[
            {"class": "scratch", "x": 60, "y": 100, "w": 80, "h": 30},
            {"class": "dent", "x": 120, "y": 220, "w": 40, "h": 40},
        ],
        source=GoldSource.IMPORT,
        actor=manager,
    )
    services.publish_guideline(
        project=project,
        text="Box every defect on the screen, tightly, one box per defect.",
        published_by=manager,
        example_item_ids=[example.pk],
    )
    # Another labeler's boxes on every item: the page must never show them.
    other = make_user("otto", password=PASSWORD)
    services.set_membership(project=project, user=other, role=Role.LABELER)
    for item in items:
        services.submit_annotation(
            item=item,
            labeler=other,
            value=[{"class": "crack", "x": 1, "y": 2, "w": 50, "h": 60}],
        )
    labeler = make_user("ana", password=PASSWORD)
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    return project, labeler


def content_rect(page) -> dict:
    """Where the picture is on screen (object-fit: contain inside the image element)."""
    return page.evaluate(
        """() => {
        const img = document.getElementById('item-image');
        const r = img.getBoundingClientRect();
        const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        const w = img.naturalWidth * s, h = img.naturalHeight * s;
        return {left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2,
                scale: s};
    }"""
    )


def screen(rect, x, y):
    return rect["left"] + x * rect["scale"], rect["top"] + y * rect["scale"]


def drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=3)
    page.mouse.move(*end, steps=3)
    page.mouse.up()


def draw(page, x0, y0, x1, y1):
    rect = content_rect(page)
    drag(page, screen(rect, x0, y0), screen(rect, x1, y1))


def wait_ready(page):
    page.wait_for_selector(".box-layer")
    page.wait_for_function("document.getElementById('item-image').naturalWidth > 0")


def assert_boxes(actual, expected, tolerance=1.5):
    """Same classes in order, coordinates within ``tolerance`` image pixels (one screen
    pixel is 384 / viewport height image pixels; the mouse lands on whole pixels)."""
    assert [b["class"] for b in actual] == [b[0] for b in expected], actual
    for box, (_, x, y, w, h) in zip(actual, expected, strict=True):
        for got, want in zip((box["x"], box["y"], box["w"], box["h"]), (x, y, w, h), strict=True):
            assert abs(got - want) <= tolerance, (actual, expected)


def test_labeler_draws_edits_and_submits_boxes(http_live_server, page, box_project, screenshot_dir):
    project, labeler = box_project
    page.goto(f"{http_live_server.url}/login/?next=/projects/{project.pk}/label/")
    page.wait_for_selector("#id_username:focus")
    page.keyboard.type("ana")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    wait_ready(page)

    # Blind: otto's boxes on this item are nowhere on the page.
    assert page.inner_text("#box-count") == "0"
    assert "crack" not in page.input_value("#boxes-value")
    # The guideline example shows its two reference boxes.
    assert page.locator(".examples .example-box").count() == 2
    assert "2 boxes" in page.inner_text(".examples figcaption")
    first_item = page.inner_text(".item-id")

    # Two boxes, both "scratch" (the first class); a third to delete.
    draw(page, 40, 80, 120, 140)
    draw(page, 150, 200, 210, 260)
    draw(page, 60, 300, 100, 340)
    assert page.inner_text("#box-count") == "3"
    page.screenshot(path=str(screenshot_dir / "boxes-1440.png"))
    # Tab cycles the selection from the last box drawn (the third) to the first.
    page.keyboard.press("Tab")
    page.keyboard.press("3")  # the first box becomes a crack
    page.keyboard.press("Shift+Tab")  # back to the third box
    page.keyboard.press("Shift+Tab")  # the second box
    page.keyboard.press("Tab")  # the third
    page.keyboard.press("Delete")
    assert page.inner_text("#box-count") == "2"
    with page.expect_navigation():
        page.keyboard.press("Enter")

    mine = Annotation.objects.get(labeler=labeler, item__external_id=first_item)
    assert_boxes(mine.value_boxes, [("crack", 40, 80, 80, 60), ("scratch", 150, 200, 60, 60)])
    assert mine.time_spent_ms is not None

    # Second item: zoomed in, a box drawn, resized by its handle, the resize undone,
    # then submitted with the mouse.
    wait_ready(page)
    second_item = page.inner_text(".item-id")
    assert second_item != first_item
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.inner_text("#zoom-level") != "100%"  # label.js zoomed the image
    page.keyboard.press("2")  # next boxes are dents
    draw(page, 100, 150, 160, 200)
    rect = content_rect(page)
    drag(page, screen(rect, 160, 200), screen(rect, 180, 230))  # the south-east handle
    # Drawn on the zoomed image, the box is still in image pixels; the handle stretched it.
    assert_boxes(json.loads(page.input_value("#boxes-value")), [("dent", 100, 150, 80, 80)])
    page.keyboard.press("Control+z")
    with page.expect_navigation():
        page.click("#submit-boxes")
    mine = Annotation.objects.get(labeler=labeler, item__external_id=second_item)
    assert_boxes(mine.value_boxes, [("dent", 100, 150, 60, 50)])

    # Third item: nothing there, with one key.
    wait_ready(page)
    third_item = page.inner_text(".item-id")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert Annotation.objects.get(labeler=labeler, item__external_id=third_item).value_boxes == []

    # A phone-sized screen: draw with the mouse still works; look at the layout.
    wait_ready(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    draw(page, 30, 40, 90, 120)
    assert page.inner_text("#box-count") == "1"
    page.screenshot(path=str(screenshot_dir / "boxes-390.png"), full_page=True)
    page.keyboard.press("?")
    page.wait_for_selector("#help-overlay:not([hidden])")
    assert "Nothing there" in page.inner_text("#help-overlay")


def test_a_box_drawn_with_a_finger_on_a_phone(http_live_server, chromium, box_project):
    project, _ = box_project
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{http_live_server.url}/login/?next=/projects/{project.pk}/label/")
        page.fill("#id_username", "ana")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.press("#id_password", "Enter")
        wait_ready(page)
        rect = content_rect(page)
        (x0, y0), (x1, y1) = screen(rect, 40, 60), screen(rect, 140, 160)
        cdp = context.new_cdp_session(page)

        def touch(kind, x, y):
            points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        touch("touchStart", x0, y0)
        for k in range(1, 6):
            touch("touchMove", x0 + (x1 - x0) * k / 5, y0 + (y1 - y0) * k / 5)
        touch("touchEnd", x1, y1)
        assert page.inner_text("#box-count") == "1"
        value = json.loads(page.input_value("#boxes-value"))
        assert_boxes(value, [("scratch", 40, 60, 100, 100)], tolerance=2.5)
    finally:
        context.close()
