"""A labeler logs in and labels with the keyboard alone, in headless Chromium."""

from __future__ import annotations

import numpy as np
import pytest

from labeling import services
from labeling.models import Annotation, Role

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"


def phone_png(i: int) -> bytes:
    from labeling.demo.images import PHONE_MODELS, render_phone

    defects = ["no_defect", "scratch", "dent", "crack", "scratch", "no_defect"]
    return render_phone(
        np.random.default_rng([7, i]),
        model=PHONE_MODELS[i % len(PHONE_MODELS)],
        defect=defects[i % len(defects)],
        severity=0.6,
        brightness=1.0,
        white_balance=(1.0, 1.0, 1.0),
        glare=False,
    )


@pytest.fixture
def labeling_project(transactional_db, make_user, manager):
    project = services.create_project(
        name="Phone screen defects",
        description="Classify the most severe visible screen defect.",
        classes=[
            {"key": "no_defect", "name": "No defect", "description": "Clean screen."},
            {"key": "scratch", "name": "Scratch", "description": "A line in the glass."},
            {"key": "dent", "name": "Dent", "description": "A shaded depression."},
            {"key": "crack", "name": "Crack", "description": "Jagged branching lines."},
            {"key": "borderline", "name": "Borderline", "is_borderline": True},
        ],
        overlap=3,
        created_by=manager,
    )
    items = [
        services.create_image_item(
            project=project,
            external_id=f"phone-{i:03d}",
            image_bytes=phone_png(i),
            metadata={"factory": "shenzhen-a", "line": "A1", "camera": "cam-1"},
        )
        for i in range(7)
    ]
    services.publish_guideline(
        project=project,
        text="Label the most severe visible defect.\n\nA scratch that catches a fingernail "
        "is deep; use Borderline only when you cannot decide between two classes.",
        published_by=manager,
        example_item_ids=[items[0].pk, items[1].pk, items[2].pk],
    )
    labeler = make_user("ana", password=PASSWORD)
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    return project, labeler


def test_labeler_labels_five_items_and_revises_one_with_the_keyboard_only(
    http_live_server, page, labeling_project, screenshot_dir
):
    project, labeler = labeling_project
    page.goto(f"{http_live_server.url}/login/")
    page.wait_for_selector("#id_username:focus")  # autofocus lands after the load event
    page.keyboard.type("ana")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.rstrip("/") == http_live_server.url
    page.screenshot(path=str(screenshot_dir / "home.png"), full_page=True)

    # Tab to "Start labeling" and follow it with Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('start-labeling')"):
            break
    else:
        pytest.fail("could not reach the Start labeling link with Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert f"/projects/{project.pk}/label/" in page.url
    page.wait_for_selector("#item-image")
    page.screenshot(path=str(screenshot_dir / "label.png"))

    # Zoom with the keyboard, toggle the guideline, write a comment: all without a mouse.
    # The indicator measures against the image's own pixels: "Fit" is its own state, and
    # 100% means one image pixel per CSS pixel (issue 12: it said 100% at about 1.9x).
    page.wait_for_function("() => document.getElementById('item-image').naturalWidth > 0")
    fit = page.evaluate(
        """() => { const i = document.getElementById('item-image');
                   return Math.min(i.clientWidth / i.naturalWidth,
                                   i.clientHeight / i.naturalHeight); }"""
    )
    assert page.inner_text("#zoom-level") == "Fit"
    page.keyboard.press("+")
    assert page.inner_text("#zoom-level") == f"{round(fit * 1.25 * 100)}%"
    page.keyboard.press("0")
    assert page.inner_text("#zoom-level") == "Fit"
    page.click("[data-action=zoom-native]")
    assert page.inner_text("#zoom-level") == "100%"
    box = page.locator("#item-image").evaluate(
        "i => i.getBoundingClientRect().width / i.clientWidth * Math.min("
        "i.clientWidth / i.naturalWidth, i.clientHeight / i.naturalHeight)"
    )
    assert box == pytest.approx(1.0, abs=0.01)  # one image pixel per CSS pixel, measured
    page.keyboard.press("0")
    page.keyboard.press("g")
    assert "guideline-hidden" in page.get_attribute("#label-layout", "class")
    page.keyboard.press("g")
    assert "guideline-hidden" not in page.get_attribute("#label-layout", "class")
    page.keyboard.press("c")
    page.keyboard.type("faint mark near the camera, 2 of them")  # digits typed, not keys
    page.keyboard.press("Escape")

    seen = []
    for key in ["1", "2", "3", "4", "2"]:
        seen.append(page.inner_text(".item-id"))
        with page.expect_navigation():
            page.keyboard.press(key)
    assert len(set(seen)) == 5
    first = Annotation.objects.get(labeler=labeler, item__external_id=seen[0])
    assert first.comment == "faint mark near the camera, 2 of them"
    assert first.label_class.key == "no_defect"

    # Undo: U reopens the last item with the labeler's own label preselected.
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.inner_text(".item-id") == seen[-1]
    assert page.get_attribute(".class-btn.selected", "value") == "scratch"
    page.keyboard.press("?")
    page.wait_for_selector("#help-overlay:not([hidden])")
    page.screenshot(path=str(screenshot_dir / "help.png"))
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("3")  # a revision to "dent"

    mine = Annotation.objects.filter(project=project, labeler=labeler)
    assert mine.filter(is_current=True).count() == 5
    superseded = list(mine.filter(is_current=False))
    assert len(superseded) == 1 and superseded[0].label_class.key == "scratch"
    revision = mine.get(supersedes=superseded[0])
    assert revision.is_current and revision.label_class.key == "dent"
    assert all(a.time_spent_ms is not None for a in mine)  # measured in the browser
    assert page.inner_text(".item-id") not in seen  # back on a new item


def test_transcription_with_keyboard_and_escaped_payload(
    http_live_server, page, transactional_db, make_user, manager, screenshot_dir
):
    from labeling.models import Item, PayloadKind

    project = services.create_project(
        name="Call-centre snippets",
        task_type="transcription",
        created_by=manager,
        guideline_text="Write exactly what is said. Numbers as words. Mark [noise].",
    )
    for i, text in enumerate(["i want to cancel my order", "<script>alert(1)</script>"]):
        Item.objects.create(
            project=project, external_id=f"call-{i}", kind=PayloadKind.TEXT, text=text
        )
    labeler = make_user("tina", password=PASSWORD)
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    page.goto(f"{http_live_server.url}/login/?next=/projects/{project.pk}/label/")
    page.wait_for_selector("#id_username:focus")
    page.keyboard.type("tina")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#transcript:focus")
    page.keyboard.type("i want to cancel my order")
    page.screenshot(path=str(screenshot_dir / "transcription.png"))
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    # The second item's text is shown as text, not run as script.
    assert page.inner_text("#item-text") == "<script>alert(1)</script>"
    annotation = Annotation.objects.get(labeler=labeler)
    assert annotation.value_text == "i want to cancel my order"
    page.wait_for_selector("#transcript:focus")
    page.keyboard.type("[noise]")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert "Nothing left for you here" in page.inner_text("main")
    page.screenshot(path=str(screenshot_dir / "done.png"))
