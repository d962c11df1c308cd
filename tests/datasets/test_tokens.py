"""Pipeline tokens: one project, read-only unless granted more, revocable, shown once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from datasets import services
from datasets.models import PipelineToken
from labeling import services as labeling_services
from labeling.models import ProjectMembership, Role
from tests.datasets.conftest import build

pytestmark = pytest.mark.django_db


def bearer(api, secret, keyword="Bearer"):
    api.credentials(HTTP_AUTHORIZATION=f"{keyword} {secret}")
    return api


def test_a_token_is_shown_once_and_only_its_hash_is_stored(project, api, manager):
    api.force_authenticate(manager)
    response = api.post(
        f"/api/v1/projects/{project.pk}/tokens/", {"name": "nightly training"}, format="json"
    )
    assert response.status_code == 201
    secret = response.json()["token"]
    assert secret.startswith("cnc_") and len(secret) > 40
    assert response.json()["scopes"] == ["read"]
    stored = PipelineToken.objects.get(pk=response.json()["id"])
    assert secret not in str(stored.__dict__.values())
    assert stored.token_hash == services.hash_token(secret)
    assert secret.startswith(stored.prefix)
    listing = api.get(f"/api/v1/projects/{project.pk}/tokens/").json()
    assert listing[0]["prefix"] == stored.prefix and "token" not in listing[0]
    membership = ProjectMembership.objects.get(user=stored.user)
    assert (membership.project_id, membership.role) == (project.pk, Role.VIEWER)
    assert stored.user.username == f"pipeline-{project.slug}-{stored.pk}"
    assert not stored.user.has_usable_password()


def test_a_token_reads_its_project_with_bearer_or_token_keyword(labeled_project, api):
    project = labeled_project["project"]
    version = build(project)
    _, secret = services.create_pipeline_token(project=project, name="ci", created_by=None)
    for keyword in ("Bearer", "Token"):
        response = bearer(api, secret, keyword).get(f"/api/v1/datasets/{version.pk}/export/")
        assert response.status_code == 200
        assert len(b"".join(response.streaming_content).splitlines()) == 100


def test_a_token_of_project_a_cannot_read_project_b(labeled_project, api, manager):
    version = build(labeled_project["project"])
    other = labeling_services.create_project(
        name="Other", classes=[{"key": "a"}], created_by=manager
    )
    _, secret = services.create_pipeline_token(project=other, name="b-only", created_by=manager)
    bearer(api, secret)
    assert api.get(f"/api/v1/datasets/{version.pk}/").status_code == 404
    assert api.get(f"/api/v1/datasets/{version.pk}/export/").status_code == 404
    assert api.get(f"/api/v1/projects/{version.project_id}/datasets/").status_code == 404
    assert api.get(f"/api/v1/projects/{other.pk}/datasets/").status_code == 200


def test_a_revoked_or_expired_token_fails_with_401(labeled_project, api, manager):
    project = labeled_project["project"]
    token, secret = services.create_pipeline_token(project=project, name="x", created_by=manager)
    url = f"/api/v1/projects/{project.pk}/datasets/"
    assert bearer(api, secret).get(url).status_code == 200
    api.credentials()
    api.force_authenticate(manager)
    assert api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    api.force_authenticate(None)
    response = bearer(api, secret).get(url)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    expiring, secret2 = services.create_pipeline_token(
        project=project, name="y", created_by=manager, expires_at=timezone.now() + timedelta(days=1)
    )
    PipelineToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now())
    assert bearer(api, secret2).get(url).status_code == 401
    assert bearer(api, "cnc_not-a-real-token").get(url).status_code == 401


def test_a_read_only_token_cannot_post_but_a_write_token_can(
    labeled_project, api, manager, django_capture_on_commit_callbacks
):
    project = labeled_project["project"]
    url = f"/api/v1/projects/{project.pk}/datasets/"
    _, read_only = services.create_pipeline_token(project=project, name="r", created_by=manager)
    response = bearer(api, read_only).post(url, {}, format="json")
    assert response.status_code == 403
    assert "read-only" in response.json()["detail"]
    _, writer = services.create_pipeline_token(
        project=project, name="w", created_by=manager, scopes=["read", "write"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert bearer(api, writer).post(url, {}, format="json").status_code == 202


def test_tokens_cannot_manage_tokens_and_only_managers_can(project, api, manager, viewer):
    token, secret = services.create_pipeline_token(
        project=project, name="w", created_by=manager, scopes=["write"]
    )
    assert bearer(api, secret).get(f"/api/v1/projects/{project.pk}/tokens/").status_code == 403
    assert bearer(api, secret).delete(f"/api/v1/tokens/{token.pk}/").status_code == 403
    api.credentials()
    api.force_authenticate(viewer)
    assert api.post(f"/api/v1/projects/{project.pk}/tokens/", {"name": "n"}).status_code == 403
    assert api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 403


def test_bad_token_requests_are_400(project, api, manager):
    api.force_authenticate(manager)
    url = f"/api/v1/projects/{project.pk}/tokens/"
    assert api.post(url, {"name": ""}, format="json").status_code == 400
    response = api.post(url, {"name": "x", "scopes": ["admin"]}, format="json")
    assert response.status_code == 400 and "scopes" in response.json()["detail"]
