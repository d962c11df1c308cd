"""A manager's workspace, end to end in headless Chromium (issue 12): create a project,
import a CSV with two bad rows (see them, import the valid ones), import historical
labels, filter the data manager by metadata and disagreement, tag 10 items in bulk,
open an item's history, add a labeler, publish a Markdown guideline and see it rendered
(and inert) on the labeling page. Every page is shot at 1440 px and 390 px and must not
scroll sideways at either width."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from labeling.models import CheckSettings, Item, Project, Tag

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "pw-for-tests-123"
NEWBIE_PASSWORD = "a-long-passphrase-42"
N_ROWS = 30
BAD_ROWS = {7, 13}  # row 7 has no external id, row 13 no payload
LABELED = range(1, 25)  # items 1..24 get three historical labels each


def factory(i: int) -> str:
    return "A" if i % 2 == 0 else "B"


def items_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["external_id", "text", "metadata.factory", "metadata.line"])
    for i in range(1, N_ROWS + 1):
        external_id = "" if i == 7 else f"s-{i:03d}"
        text = "" if i == 13 else f"screen {i}: a thin line near the camera"
        writer.writerow([external_id, text, factory(i), str(i % 3)])
    return out.getvalue()


def labels_csv() -> str:
    """ann and bob say scratch everywhere; cy says dent on every third item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["item", "labeler", "value"])
    for i in LABELED:
        if i in BAD_ROWS:
            continue
        for labeler in ("ann", "bob", "cy"):
            value = "dent" if labeler == "cy" and i % 3 == 0 else "scratch"
            writer.writerow([f"s-{i:03d}", labeler, value])
    return out.getvalue()


@pytest.fixture
def boss(transactional_db, settings, django_user_model):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user(username="boss", password=PASSWORD, is_staff=True)


def no_sideways_scroll(page, shots, name: str) -> None:
    """Shoot the page at 1440 px and 390 px; at neither may it scroll sideways."""
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide[0] <= wide[1], f"{name} at {width}px scrolls sideways: {wide}"
    page.set_viewport_size({"width": 1440, "height": 900})


def log_in(page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def drop_file(page, selector: str, name: str, text: str, mime: str) -> None:
    """A real drop event on the drop zone, carrying a file, as a desktop drag would."""
    transfer = page.evaluate_handle(
        """([name, text, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: mime}));
            return dt;
        }""",
        [name, text, mime],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_a_manager_sets_up_a_project_in_the_browser(
    http_live_server, chromium, boss, screenshot_dir
):
    url = http_live_server.url
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        log_in(page, url, "boss")
        with page.expect_navigation():
            page.click("[data-testid=new-project]")

        # --- 1. Create the project. ---
        page.fill("#f-name", "Screens")
        page.fill("input[name=class_0_key]", "scratch")
        page.fill("input[name=class_1_key]", "dent")
        page.fill("input[name=class_2_key]", "clean")
        # Move "clean" to the top with the keyboard (Alt+Up twice).
        page.focus("input[name=class_2_key]")
        page.keyboard.press("Alt+ArrowUp")
        page.keyboard.press("Alt+ArrowUp")
        no_sideways_scroll(page, screenshot_dir, "project-new")
        with page.expect_navigation():
            page.click("text=Create project")
        project = Project.objects.get(name="Screens")
        assert page.url.endswith(f"/projects/{project.pk}/import/")
        order = list(project.classes.order_by("order").values_list("key", flat=True))
        assert order == ["clean", "scratch", "dent"]

        # --- 2. Import items by drag and drop: two bad rows, then the valid ones. ---
        drop_file(page, "#dropzone", "screens.csv", items_csv(), "text/csv")
        page.wait_for_selector("[data-testid=import-errors] tbody tr")
        rows = page.locator("[data-testid=import-errors] tbody tr")
        assert rows.count() == 2
        assert [rows.nth(k).locator("td").first.inner_text() for k in range(2)] == ["7", "13"]
        assert "external_id" in rows.nth(0).inner_text()
        assert Item.objects.filter(project=project).count() == 0  # nothing stored yet
        assert page.locator("#upload-progress").get_attribute("data-done") == "1"
        no_sideways_scroll(page, screenshot_dir, "import-errors")
        page.click("#import-valid")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=import-summary]').textContent"
            ".startsWith('Imported')"
        )
        assert "28 new" in page.locator("[data-testid=import-summary]").inner_text()
        assert Item.objects.filter(project=project).count() == N_ROWS - len(BAD_ROWS)

        # Historical labels, through the same page (file chooser this time).
        page.check("input[name=kind][value=annotations]")
        page.set_input_files(
            "#import-file",
            files=[{"name": "labels.csv", "mimeType": "text/csv", "buffer": labels_csv().encode()}],
        )
        page.wait_for_function(
            "() => document.querySelector('[data-testid=import-summary]').textContent"
            ".includes('labels.csv')"
        )
        page.reload()
        assert page.locator("[data-testid=batches] tbody tr").count() == 2
        no_sideways_scroll(page, screenshot_dir, "import-batches")

        # An agreement run's consensus (majority, computed independently in the test).
        from tests.datasets.conftest import run_majority

        run_majority(project)

        # --- 3. The data manager: metadata + disagreement filter, then bulk tagging. ---
        with page.expect_navigation():
            page.click("nav.project-nav >> text=Data")
        page.wait_for_selector("[data-testid=dm-table] tbody tr[data-item]")
        page.select_option("select[name=meta_key]", "factory")
        page.fill("input[name=meta_value]", "B")
        page.check("input[name=disagreement]")
        page.click("text=Apply filters")
        expected = sorted(
            f"s-{i:03d}" for i in LABELED if i not in BAD_ROWS and factory(i) == "B" and i % 3 == 0
        )
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-testid=dm-table] tbody tr[data-item]').length"
            f" === {len(expected)}"
        )
        shown = page.locator("[data-testid=dm-table] tbody tr[data-item] td.ext").all_inner_texts()
        assert sorted(shown) == expected
        assert "metadata.factory=B" in page.url and "disagreement=true" in page.url
        no_sideways_scroll(page, screenshot_dir, "data-manager-filtered")

        page.uncheck("input[name=disagreement]")
        page.click("text=Apply filters")
        factory_b = [
            f"s-{i:03d}" for i in range(1, N_ROWS + 1) if i not in BAD_ROWS and factory(i) == "B"
        ]
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-testid=dm-table] tbody tr[data-item]').length"
            f" === {len(factory_b)}"
        )
        boxes = page.locator("[data-testid=dm-table] tbody input[data-select]")
        for k in range(10):
            boxes.nth(k).check()
        assert page.locator("#n-selected").inner_text() == "10"
        page.fill("#bulk-tag", "night-shift")
        page.click("[data-bulk=tag]")
        page.wait_for_selector("[data-testid=dm-flash]")
        assert "Tagged 10 of 10" in page.locator("[data-testid=dm-flash]").inner_text()
        tag = Tag.objects.get(project=project, name="night-shift")
        tagged = sorted(tag.items.values_list("external_id", flat=True))
        assert tagged == sorted(factory_b)[:10]
        no_sideways_scroll(page, screenshot_dir, "data-manager-tagged")

        # --- 4. An item's page with its history. ---
        first = expected[0]
        with page.expect_navigation():
            page.click(f"[data-testid=dm-table] a:text-is('{first}')")
        history = page.locator("[data-testid=item-history] li")
        verbs = history.evaluate_all("els => els.map(e => e.dataset.verb)")
        assert verbs == ["item.imported"] + ["annotation.imported"] * 3
        assert first in tagged
        assert "night-shift" in page.locator("[data-testid=item-metadata]").inner_text()
        labels = page.locator("[data-testid=item-labels] tbody tr")
        assert labels.count() == 3
        assert "factory" in page.locator("[data-testid=item-metadata]").inner_text()
        no_sideways_scroll(page, screenshot_dir, "item-history")

        # --- 5. People: create a labeler account with a password. ---
        with page.expect_navigation():
            page.click("nav.project-nav >> text=People")
        page.fill("#c-user", "newbie")
        page.fill("#c-pass", NEWBIE_PASSWORD)
        page.select_option("#c-role", "labeler")
        with page.expect_navigation():
            page.click("text=Create and add")
        assert page.locator("[data-member=newbie]").count() == 1
        no_sideways_scroll(page, screenshot_dir, "people")

        # --- 6. Guidelines: Markdown with a preview, published, rendered safely. ---
        with page.expect_navigation():
            page.click("nav.project-nav >> text=Guidelines")
        page.fill(
            "#g-text",
            "## Scratches\n\nA **deep** scratch catches a fingernail.\n\n"
            "<script>window.pwned = 1</script>\n\n"
            '<img src="/nothing.png" onerror="window.pwned = 2">\n\n'
            "[more](javascript:window.pwned=3)",
        )
        page.wait_for_function(
            "() => document.querySelector('[data-testid=guideline-preview] strong') !== null"
        )
        assert page.locator("[data-testid=guideline-preview] script").count() == 0
        no_sideways_scroll(page, screenshot_dir, "guidelines")
        with page.expect_navigation():
            page.click("text=Publish v1")
        assert page.evaluate("window.pwned") is None

        # --- 7. Monitoring and ground-truth check settings, saved from the settings page.
        page.goto(f"{url}{reverse('project-settings', args=[project.pk])}")
        page.fill("input[name=monitoring_q_threshold]", "0.01")
        page.select_option("select[name=monitoring_schedule]", "off")
        page.fill("input[name=check_rate]", "0.05")
        no_sideways_scroll(page, screenshot_dir, "project-settings")
        with page.expect_navigation():
            page.click("text=Save settings")
        project.refresh_from_db()
        assert (project.monitoring_q_threshold, project.monitoring_schedule) == (0.01, "off")
        assert CheckSettings.objects.get(project=project).rate == 0.05

        labeler = context.browser.new_context(viewport={"width": 1440, "height": 900})
        lpage = labeler.new_page()
        lpage.set_default_timeout(20_000)
        try:
            log_in(lpage, url, "newbie", NEWBIE_PASSWORD)
            lpage.goto(f"{url}/projects/{project.pk}/label/")
            text = lpage.locator("[data-testid=guideline-text]")
            assert text.locator("strong").inner_text() == "deep"
            assert text.locator("h2").inner_text() == "Scratches"
            assert text.locator("script").count() == 0
            assert text.locator("[onerror]").count() == 0
            assert text.locator("a").get_attribute("href") is None
            lpage.wait_for_timeout(300)
            assert lpage.evaluate("window.pwned") is None
            # A submit is confirmed by a toast that does not move the page.
            before = lpage.locator("#label-layout").bounding_box()["y"]
            with lpage.expect_navigation():
                lpage.keyboard.press("1")
            toast = lpage.locator("[data-testid=saved-toast]")
            assert "Saved" in toast.inner_text() and "Clean" in toast.inner_text()
            assert lpage.locator("#label-layout").bounding_box()["y"] == before
            no_sideways_scroll(lpage, screenshot_dir, "label-with-guideline")
        finally:
            labeler.close()
        assert not errors, errors
    finally:
        context.close()


@pytest.fixture
def reviewed_project(transactional_db, settings):
    """60 demo phones with labels, a real agreement run (computed in-process) with its
    consensus and flags, and a dataset version built from it."""
    from config.celery import app as celery_app
    from consistency.models import RunStatus
    from consistency.runs import start_agreement_run
    from datasets import services as dataset_services
    from tests.review.test_review import load_demo_db

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    project = load_demo_db(with_images=True, n_items=60)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # no worker here: run the chord in-process
    try:
        run = start_agreement_run(project=project)
    finally:
        celery_app.conf.task_always_eager = eager
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    version = dataset_services.request_dataset_version(
        project=project, requested_by=None, data={"include_unresolved": True}
    )
    dataset_services.build_dataset_version(dataset_version_id=version.pk)
    return project, version


def test_the_existing_pages_do_not_scroll_sideways_on_a_phone(
    http_live_server, chromium, reviewed_project, screenshot_dir
):
    """Item 7: review queue, a flag, dashboard, datasets and lineage at 390 px."""
    project, version = reviewed_project
    url = http_live_server.url
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        log_in(page, url, "sme")
        flag = project.flags.order_by("id").first()
        wide: list[str] = []
        for name, path in (
            ("home", "/"),
            ("review-queue", f"/projects/{project.pk}/review/"),
            ("flag", f"/flags/{flag.pk}/"),
            ("dashboard", f"/projects/{project.pk}/dashboard/"),
            ("datasets", f"/projects/{project.pk}/datasets/"),
            ("lineage", f"/datasets/{version.pk}/lineage/"),
            ("data-manager", f"/projects/{project.pk}/data/"),
        ):
            response = page.goto(url + path)
            assert response.status == 200, (name, response.status)
            try:
                no_sideways_scroll(page, screenshot_dir, name)
            except AssertionError as exc:
                wide.append(str(exc))
        assert not wide, wide
        # Review-queue titles keep a readable width on a phone.
        page.goto(f"{url}/projects/{project.pk}/review/")
        page.set_viewport_size({"width": 390, "height": 844})
        widths = page.locator(".flag-row .flag-summary").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().width)"
        )
        assert widths and min(widths) > 120, widths
        # /favicon.ico is no longer a 404.
        icon = page.request.get(f"{url}/favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
    finally:
        context.close()


def test_the_datasets_page_reloads_when_a_queued_build_finishes(
    http_live_server, chromium, reviewed_project, screenshot_dir
):
    """Item 7: after the build form's redirect (URL ending in #version-N) the page used
    to sit on "queued"; now it polls and reloads when the status changes."""
    from datasets import services as dataset_services
    from datasets.models import DatasetVersion

    project, _ = reviewed_project
    queued = dataset_services.request_dataset_version(
        project=project, requested_by=None, data={"include_unresolved": True, "seed": 5}
    )
    assert DatasetVersion.objects.get(pk=queued.pk).status == "queued"  # no worker here
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        log_in(page, http_live_server.url, "sme")
        page.goto(f"{http_live_server.url}/projects/{project.pk}/datasets/#version-{queued.pk}")
        assert "Queued" in page.locator(f"#version-{queued.pk} .status").inner_text()
        page.evaluate("() => { window.notReloaded = true; }")
        dataset_services.build_dataset_version(dataset_version_id=queued.pk)  # the worker
        page.wait_for_function("() => window.notReloaded === undefined", timeout=15_000)
        assert "Published" in page.locator(f"#version-{queued.pk} .status").inner_text()
    finally:
        context.close()
