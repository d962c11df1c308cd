"""Against a live server: the README's pipeline example runs as written, and the datasets
page renders in headless Chromium (screenshot in ``CONCORD_SCREENSHOT_DIR`` if set)."""

from __future__ import annotations

import json
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


def readme_build_request() -> dict:
    """The JSON body of step 2's curl command ("Build a version"), read from README.md."""
    text = (ROOT / "README.md").read_text()
    step = text.split("**2. Build a version**", 1)[1].split("```bash\n", 1)[1]
    command = step.split("```", 1)[0]
    return json.loads(command.split("-d '", 1)[1].split("'", 1)[0])


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


@pytest.fixture
def demo_like(transactional_db, project, labelers, batch):
    """Items with the demo's metadata (factories, cameras cam-1..cam-4) and an agreement
    run, as on the demo's phone-screen project the README's step 2 is written for."""
    cameras = [("shenzhen-a", "cam-1"), ("shenzhen-a", "cam-2"), ("penang-b", "cam-3")]
    cameras.append(("penang-b", "cam-4"))
    items = make_items(
        project,
        80,
        batch=batch,
        metadata=lambda i: {"factory": cameras[i % 4][0], "camera": cameras[i % 4][1]},
    )
    bulk_label_items(items, labelers, lambda i, j: "scratch" if i % 5 == 0 else "no_defect")
    run_majority(project)
    return project


@pytest.mark.integration
def test_the_readme_build_step_works_as_written_with_a_write_token(live, demo_like):
    import requests

    body = readme_build_request()
    assert body["filters"] == {"metadata.camera": ["cam-1", "cam-2", "cam-3"]}
    _, read_secret = services.create_pipeline_token(
        project=demo_like, name="read", scopes=["read"], created_by=None
    )
    _, write_secret = services.create_pipeline_token(
        project=demo_like, name="write", scopes=["read", "write"], created_by=None
    )
    url = f"{live.url}/api/v1/projects/{demo_like.pk}/datasets/"
    # Step 1's read-only token may not build: the README says to use a write token.
    refused = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {read_secret}"}, timeout=30
    )
    assert refused.status_code == 403
    answer = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {write_secret}"}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    version = services.build_dataset_version(dataset_version_id=answer.json()["id"])
    assert version.status == "succeeded", version.error
    # cam-4 (every fourth item) is left out: 60 of the 80 items remain.
    assert version.row_count == 60
    detail = requests.get(
        answer.json()["url"], headers={"Authorization": f"Bearer {read_secret}"}, timeout=30
    ).json()
    assert detail["status"] == "succeeded" and detail["row_count"] == 60

    # Filters that match nothing are refused with a message naming the values present.
    empty = {**body, "filters": {"metadata.factory": ["A", "B"]}}
    refused = requests.post(
        url, json=empty, headers={"Authorization": f"Bearer {write_secret}"}, timeout=30
    )
    assert refused.status_code == 400
    assert "penang-b" in refused.text and "0 rows" in refused.text
