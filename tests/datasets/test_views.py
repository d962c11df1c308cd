"""The datasets web pages: list, build form, diff, lineage drawing, tokens."""

import pytest
from django.urls import reverse

from datasets.models import DatasetVersion, PipelineToken
from datasets.services import hash_token
from tests.datasets.conftest import build

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, manager):
    client.force_login(manager)
    return client


def get(client, url):
    return client.get(url, secure=True)


def post(client, url, data):
    return client.post(url, data, secure=True)


def test_the_datasets_page_lists_versions_with_counts_and_downloads(labeled_project, web):
    project = labeled_project["project"]
    version = build(project, splits={"train": 0.6, "dev": 0.2, "test": 0.2})
    page = get(web, reverse("datasets", args=[project.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="version-{version.pk}"' in html
    assert version.content_hash[:12] in html
    assert f"/api/v1/datasets/{version.pk}/export/?format=parquet&amp;split=train" in html
    assert "Build a new version" in html and "Pipeline tokens" in html


def test_the_build_form_queues_a_version_and_shows_errors(
    labeled_project, web, django_capture_on_commit_callbacks
):
    project = labeled_project["project"]
    url = reverse("datasets-build", args=[project.pk])
    form = {
        "consensus": "majority",
        "split_train": "0.6",
        "split_dev": "0.2",
        "split_test": "0.2",
        "seed": "3",
        "stratify_by": "label, metadata.factory",
        "group_by": "",
        "filters": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = post(web, url, form)
    assert response.status_code == 302
    version = DatasetVersion.objects.get(project=project)
    assert version.status == "succeeded"
    assert version.params["stratify_by"] == ["label", "metadata.factory"]
    bad = post(web, url, {**form, "split_test": "0.5"})
    assert bad.status_code == 200
    assert "split ratios must sum to 1" in bad.content.decode()


def test_a_token_is_shown_once_after_a_redirect_and_can_be_revoked(project, web):
    response = post(web, reverse("token-create", args=[project.pk]), {"name": "nightly"})
    # Redirect after POST: reloading the page that shows the secret creates nothing.
    assert response.status_code == 302
    assert response["Location"].endswith(f"/projects/{project.pk}/datasets/#new-token")
    assert PipelineToken.objects.filter(project=project).count() == 1
    shown = get(web, reverse("datasets", args=[project.pk]))
    html = shown.content.decode()
    token = PipelineToken.objects.get(project=project)
    start = html.index('data-testid="token-secret">') + len('data-testid="token-secret">')
    secret = html[start : html.index("</code>", start)]
    assert hash_token(secret) == token.token_hash
    assert shown["Cache-Control"] == "no-store"
    reloaded = get(web, reverse("datasets", args=[project.pk])).content.decode()
    assert secret not in reloaded and 'data-testid="token-secret"' not in reloaded
    assert PipelineToken.objects.filter(project=project).count() == 1
    post(web, reverse("token-revoke", args=[token.pk]), {})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_lineage_page_draws_every_node(labeled_project, web, batch):
    version = build(labeled_project["project"])
    html = get(web, reverse("dataset-lineage", args=[version.pk])).content.decode()
    assert 'data-testid="lineage-graph"' in html
    assert f'data-node="source_batch:{batch.pk}"' in html
    assert f'data-node="dataset_version:{version.pk}"' in html
    assert 'data-node="annotation_summary:labeler1"' in html


def test_diff_page_compares_two_versions(labeled_project, web):
    project = labeled_project["project"]
    a = build(project, filters={"metadata.factory": "A"})
    b = build(project)
    page = get(web, reverse("datasets-diff", args=[project.pk]) + f"?a={a.pk}&b={b.pk}")
    assert page.status_code == 200
    assert page.context["diff"]["counts"]["added"] == 34


def test_labelers_are_refused_and_strangers_see_nothing(labeled_project, client, make_user):
    project = labeled_project["project"]
    client.force_login(labeled_project["labelers"][0])
    assert get(client, reverse("datasets", args=[project.pk])).status_code == 403
    client.force_login(make_user("stranger"))
    assert get(client, reverse("datasets", args=[project.pk])).status_code == 404
