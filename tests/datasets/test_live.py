"""Against a live server: the README's pipeline example runs as written, and the datasets
page renders in headless Chromium (screenshot in ``CONCORD_SCREENSHOT_DIR`` if set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test.utils import override_settings

from datasets import services
from tests.datasets.conftest import build, bulk_label_items, make_items, run_majority

ROOT = Path(__file__).resolve().parents[2]


def readme_pipeline_example() -> str:
    """The first Python block of the README section "Pull a dataset in your pipeline",
    read from README.md itself so the documentation cannot drift from what is tested."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Pull a dataset in your pipeline", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


README_EXAMPLE = readme_pipeline_example()


@pytest.fixture
def live(request):
    """The live server over plain HTTP (production settings would redirect to HTTPS)."""
    override = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        SECURE_HSTS_SECONDS=0,
    )
    override.enable()
    request.addfinalizer(override.disable)
    return request.getfixturevalue("live_server")


@pytest.fixture
def published(transactional_db, project, labelers, batch):
    items = make_items(
        project, 60, batch=batch, metadata=lambda i: {"factory": "AB"[i % 2], "line": i % 3}
    )
    bulk_label_items(items, labelers, lambda i, j: "scratch" if i % 4 == 0 else "no_defect")
    run_majority(project)
    return build(project, splits={"train": 0.8, "dev": 0.1, "test": 0.1}, seed=1)


@pytest.mark.integration
def test_the_readme_pipeline_example_runs_against_a_live_server(live, published, monkeypatch):
    _, secret = services.create_pipeline_token(
        project=published.project, name="readme", created_by=None
    )
    monkeypatch.setenv("CONCORD_URL", live.url)
    monkeypatch.setenv("CONCORD_TOKEN", secret)
    monkeypatch.setenv("CONCORD_DATASET", str(published.pk))
    namespace: dict = {}
    exec(compile(README_EXAMPLE, "README example", "exec"), namespace)  # noqa: S102
    train, test = namespace["train"], namespace["test"]
    assert len(train) == published.split_counts["train"]
    assert set(train["split"]) == {"train"}
    assert list(train["labelers"].iloc[0]) == ["labeler1", "labeler2", "labeler3"]
    assert len(test) == published.split_counts["test"]
    assert "metadata.factory" in test.columns
    assert list(test["labelers"].iloc[0]) == ["labeler1", "labeler2", "labeler3"]
    dev = namespace["dev"]
    assert len(dev) == published.split_counts["dev"]
    assert dev["labelers"].iloc[0] == "labeler1;labeler2;labeler3"


@pytest.mark.integration
@pytest.mark.browser
def test_the_datasets_page_renders_in_a_browser(live, published, manager, page):
    second = build(published.project, splits={"train": 0.8, "dev": 0.1, "test": 0.1}, seed=2)
    shots = os.environ.get("CONCORD_SCREENSHOT_DIR")
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"{live.url}/login/")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", "pw-for-tests-123")
    page.click("button[type=submit]")
    page.goto(f"{live.url}/projects/{published.project_id}/datasets/")
    page.fill("input[name=name]", "nightly-training")
    page.click("text=Create token")
    assert page.locator("[data-testid=token-secret]").inner_text().startswith("cnc_")
    assert page.locator(f"#version-{second.pk}").is_visible()
    if shots:
        page.screenshot(path=f"{shots}/datasets.png", full_page=True)
    page.goto(f"{live.url}/datasets/{published.pk}/lineage/")
    assert page.locator("[data-testid=lineage-graph] g.node").count() >= 6
    if shots:
        page.screenshot(path=f"{shots}/lineage.png", full_page=True)
    page.goto(
        f"{live.url}/projects/{published.project_id}/datasets/diff/?a={published.pk}&b={second.pk}"
    )
    assert page.locator("h1").inner_text() == f"v{published.pk} → v{second.pk}"
    if shots:
        page.screenshot(path=f"{shots}/diff.png", full_page=True)
