"""An SME opens the review queue, resolves a flag with the keyboard alone, and the flag
and the item's consensus change — in headless Chromium against the live server."""

from __future__ import annotations

import pytest

from consistency.flags import generate_flags
from consistency.models import Consensus, ConsensusMethod, Flag, FlagStatus
from consistency.selectors import current_normalization_rules
from labeling.models import ItemDecision, Project
from labeling.selectors import sme_overrides
from review.selectors import flag_queue
from tests.review.test_review import load_demo_db, run_agreement

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def review_project(transactional_db, settings) -> Project:
    """60 demo phones with their images and labels, one agreement run and its flags."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    project = load_demo_db(with_images=True, n_items=60)
    generate_flags(run_agreement(project))
    return project


def test_sme_resolves_a_flag_with_the_keyboard(
    http_live_server, page, review_project, screenshot_dir
):
    project = review_project
    queue = list(flag_queue(project))
    target_index = next(i for i, f in enumerate(queue) if f.kind == "item_disagreement")
    target = queue[target_index]
    item = target.items.get()

    page.goto(f"{http_live_server.url}/login/")
    page.fill("input[name=username]", "sme")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.goto(f"{http_live_server.url}/projects/{project.pk}/review/")
    assert page.locator(".flag-row").count() == len(queue)
    page.screenshot(path=str(screenshot_dir / "review-queue.png"), full_page=True)

    # j moves the selection down the ranked list; Enter opens the selected flag.
    for _ in range(target_index):
        page.keyboard.press("j")
    assert page.locator(".flag-row.selected").get_attribute("data-flag") == str(target.pk)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/flags/{target.pk}/")
    page.locator("[data-testid=item-image]").wait_for()
    assert page.locator("[data-testid=labels] tbody tr").count() == 3

    # "2" picks the second class (shallow scratch), "/" jumps to the rationale.
    page.keyboard.press("2")
    assert page.locator("input[name=label][value=shallow_scratch]").is_checked()
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    page.keyboard.type("Thin light line in the coating; judged at 100% zoom.")
    assert "shallow_scratch" in page.locator("[data-testid=chosen]").inner_text()
    page.screenshot(path=str(screenshot_dir / "review-flag.png"), full_page=True)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # The flag is resolved, the decision is the item's consensus, and the page moved on.
    assert f"/flags/{target.pk}/" not in page.url
    assert "set the final label" in page.locator(".messages").inner_text().lower()
    page.screenshot(path=str(screenshot_dir / "review-next.png"), full_page=True)
    target.refresh_from_db()
    assert target.status == FlagStatus.RESOLVED
    gold = ItemDecision.objects.get(item=item)
    assert gold.label_class.key == "shallow_scratch"
    consensus = Consensus.objects.get(item=item, run=target.run, method=ConsensusMethod.SME)
    assert consensus.label_class.key == "shallow_scratch" and consensus.status == "resolved"
    assert sme_overrides(project)[item.pk] == gold.label_class_id
    assert not Flag.objects.filter(pk=target.pk, status=FlagStatus.OPEN).exists()

    # Back on the queue the flag is gone from the open list.
    page.goto(f"{http_live_server.url}/projects/{project.pk}/review/")
    assert page.locator(f'.flag-row[data-flag="{target.pk}"]').count() == 0


def test_group_flags_show_an_item_grid_and_their_evidence(
    http_live_server, page, review_project, screenshot_dir
):
    project = review_project
    borderline = Flag.objects.filter(project=project, kind="borderline").first()
    labeler = Flag.objects.filter(project=project, kind="labeler").first()
    page.goto(f"{http_live_server.url}/login/")
    page.fill("input[name=username]", "sme")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.goto(f"{http_live_server.url}/flags/{borderline.pk}/")
    cards = page.locator(".item-card")
    assert cards.count() == borderline.items.count()
    assert page.locator(".item-card input[type=checkbox]:checked").count() == cards.count()
    page.keyboard.press("b")
    assert "borderline" in page.locator("[data-testid=chosen]").inner_text().lower()
    page.screenshot(path=str(screenshot_dir / "review-borderline.png"), full_page=True)

    page.goto(f"{http_live_server.url}/flags/{labeler.pk}/")
    assert page.locator("table.confusion").count() == 1
    page.screenshot(path=str(screenshot_dir / "review-labeler.png"), full_page=True)


def test_sme_previews_and_publishes_transcript_rules(
    http_live_server, page, transactional_db, settings, screenshot_dir
):
    from django.contrib.auth import get_user_model

    from labeling import services
    from labeling.models import Item, PayloadKind, Role, TaskType

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = get_user_model().objects
    sme = users.create_user("sme", password=PASSWORD)
    project = services.create_project(
        name="Call-centre snippets", task_type=TaskType.TRANSCRIPTION, created_by=sme
    )
    services.set_membership(project=project, user=sme, role=Role.SME)
    texts = {
        "call-1": ["Umm... I'd like to cancel", "Um, I'd like to cancel", "umm I'd like to cancel"],
        "call-2": ["Yes... that's right", "Yes, that's right", "yes that's right"],
    }
    for ext, values in texts.items():
        item = Item.objects.create(project=project, external_id=ext, kind=PayloadKind.TEXT)
        for j, value in enumerate(values):
            labeler = users.get_or_create(username=f"transcriber{j}")[0]
            services.submit_annotation(item=item, labeler=labeler, value=value)

    page.goto(f"{http_live_server.url}/login/")
    page.fill("input[name=username]", "sme")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(f"{http_live_server.url}/projects/{project.pk}/normalization/")
    page.locator("input[name=find]").first.fill("Umm")
    page.locator("input[name=replace]").first.fill("Um")
    page.check("input[name=word-0]")
    with page.expect_navigation():
        page.click("button[name=preview]")
    assert "Preview: 2 of 6 transcripts change" in page.content()
    page.locator("input[name=find]").nth(1).fill("...")
    page.locator("input[name=replace]").nth(1).fill(",")
    with page.expect_navigation():
        page.click("button[name=preview]")
    page.screenshot(path=str(screenshot_dir / "review-normalization.png"), full_page=True)
    page.fill("input[name=rationale]", "One spelling for the filler; an ellipsis is a comma")
    with page.expect_navigation():
        page.click("button[name=publish]")
    assert "Published rule set v1" in page.content()
    assert [r["find"] for r in current_normalization_rules(project)] == ["Umm", "..."]
