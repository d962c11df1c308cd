"""REST contract of agreement runs: 202 + poll, validation errors, roles, consensus, schema."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from consistency.models import AgreementRun, RunStatus
from labeling import services as labeling_services
from labeling.models import Item, PayloadKind, Role

pytestmark = pytest.mark.django_db

# item -> the three labelers' class keys
LABELS = {
    "a": ("scratch", "scratch", "scratch"),
    "b": ("scratch", "dent", "scratch"),
    "c": ("dent", "dent", "no_defect"),
    "d": ("no_defect", "no_defect", "no_defect"),
    "e": ("dent", "scratch", "no_defect"),
    "f": ("no_defect", "dent", "dent"),
}


@pytest.fixture
def labeled(project, labelers):
    for external_id, values in LABELS.items():
        item = Item.objects.create(
            project=project, external_id=external_id, kind=PayloadKind.TEXT, text=external_id
        )
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=value)
    return project


@pytest.fixture
def member(project, make_user):
    def make(role):
        user = make_user(f"{role}-user")
        labeling_services.set_membership(project=project, user=user, role=role)
        return user

    return make


class SecureAPIClient(APIClient):
    """Requests over https, as production serves them (SECURE_SSL_REDIRECT is on)."""

    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        extra["secure"] = True
        return super().generic(method, path, data, content_type, **extra)


def https_client() -> APIClient:
    return SecureAPIClient()


def client_for(user) -> APIClient:
    client = https_client()
    client.force_authenticate(user)
    return client


def post_run(client, project, body, capture):
    with capture(execute=True):
        return client.post(f"/api/v1/projects/{project.pk}/agreement-runs/", body, format="json")


def test_post_returns_202_and_the_run_can_be_polled_to_its_results(
    labeled, manager, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    response = post_run(
        client, labeled, {"n_bootstrap": 50, "slices": ["tag"]}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == {"id", "status", "url"} and body["status"] == "queued"
    assert body["url"].endswith(f"/api/v1/agreement-runs/{body['id']}/")
    polled = client.get(body["url"]).json()
    assert polled["status"] == "succeeded"
    assert polled["progress"] == 1.0 and polled["error"] == ""
    assert {"id", "status", "progress", "error", "params", "results", "created_at"} <= set(polled)
    assert polled["finished_at"] is not None and polled["is_stale"] is False
    overall = polled["results"]["overall"]
    assert overall["n_items"] == len(LABELS) and overall["n_annotations"] == 3 * len(LABELS)
    assert polled["params"]["n_bootstrap"] == 50


@pytest.mark.parametrize(
    ("body", "field", "word"),
    [
        ({"slices": ["factory"]}, "slices", "factory"),
        ({"level": "loud"}, "level", "loud"),
        ({"colour": "red"}, "params", "colour"),
        ({"n_bootstrap": 20000}, "n_bootstrap", "n_bootstrap"),
        ({"consensus": ["coin_flip"]}, "consensus", "coin_flip"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(labeled, manager, body, field, word):
    response = client_for(manager).post(
        f"/api/v1/projects/{labeled.pk}/agreement-runs/", body, format="json"
    )
    assert response.status_code == 400
    payload = response.json()
    assert field in payload["errors"]
    assert word in payload["detail"] + " ".join(payload["errors"][field])
    assert not AgreementRun.objects.exists()


def test_sme_may_start_a_run(labeled, member, django_capture_on_commit_callbacks):
    response = post_run(
        client_for(member(Role.SME)),
        labeled,
        {"n_bootstrap": 0},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202


def test_viewer_may_read_but_not_start(labeled, manager, member):
    run = AgreementRun.objects.create(project=labeled, params={}, status=RunStatus.QUEUED)
    viewer = client_for(member(Role.VIEWER))
    assert viewer.post(f"/api/v1/projects/{labeled.pk}/agreement-runs/", {}).status_code == 403
    assert viewer.get(f"/api/v1/projects/{labeled.pk}/agreement-runs/").status_code == 200
    assert viewer.get(f"/api/v1/agreement-runs/{run.pk}/").status_code == 200
    assert viewer.get(f"/api/v1/agreement-runs/{run.pk}/consensus/").status_code == 200


def test_labeler_gets_403_everywhere(labeled, labelers):
    run = AgreementRun.objects.create(project=labeled, params={}, status=RunStatus.QUEUED)
    client = client_for(labelers[0])
    assert client.post(f"/api/v1/projects/{labeled.pk}/agreement-runs/", {}).status_code == 403
    assert client.get(f"/api/v1/projects/{labeled.pk}/agreement-runs/").status_code == 403
    assert client.get(f"/api/v1/agreement-runs/{run.pk}/").status_code == 403
    assert client.get(f"/api/v1/agreement-runs/{run.pk}/consensus/").status_code == 403


def test_non_member_gets_404_everywhere(labeled, make_user):
    run = AgreementRun.objects.create(project=labeled, params={}, status=RunStatus.QUEUED)
    client = client_for(make_user("outsider"))
    assert client.post(f"/api/v1/projects/{labeled.pk}/agreement-runs/", {}).status_code == 404
    assert client.get(f"/api/v1/projects/{labeled.pk}/agreement-runs/").status_code == 404
    assert client.get(f"/api/v1/agreement-runs/{run.pk}/").status_code == 404
    assert client.get(f"/api/v1/agreement-runs/{run.pk}/consensus/").status_code == 404
    assert client.get("/api/v1/agreement-runs/999999/").status_code == 404


def test_anonymous_is_refused(labeled):
    assert https_client().get(f"/api/v1/projects/{labeled.pk}/agreement-runs/").status_code in (
        401,
        403,
    )


def test_list_is_paginated_newest_first(labeled, manager):
    for _ in range(3):
        AgreementRun.objects.create(project=labeled, params={}, status=RunStatus.QUEUED)
    body = client_for(manager).get(f"/api/v1/projects/{labeled.pk}/agreement-runs/?page_size=2")
    body = body.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    ids = [r["id"] for r in body["results"]]
    assert ids == sorted(ids, reverse=True)


def test_consensus_lists_disputed_items_only_when_asked(
    labeled, manager, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    run_id = post_run(
        client, labeled, {"n_bootstrap": 0, "slices": []}, django_capture_on_commit_callbacks
    ).json()["id"]
    url = f"/api/v1/agreement-runs/{run_id}/consensus/"
    disputed = client.get(url, {"status": "disputed", "method": "majority"}).json()
    # only item "e" has three different labels: a three-way tie
    assert [r["external_id"] for r in disputed["results"]] == ["e"]
    assert disputed["results"][0]["label"] is None
    everything = client.get(url, {"method": "majority"}).json()
    assert everything["count"] == len(LABELS)
    by_item = {r["external_id"]: r for r in everything["results"]}
    assert by_item["b"]["label"] == "scratch" and by_item["b"]["support"] == pytest.approx(2 / 3)
    assert client.get(url, {"status": "maybe"}).status_code == 400


def test_consensus_page_does_not_query_per_row(
    labeled, manager, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    client = client_for(manager)
    run_id = post_run(
        client, labeled, {"n_bootstrap": 0, "slices": []}, django_capture_on_commit_callbacks
    ).json()["id"]
    with django_assert_max_num_queries(8):
        client.get(f"/api/v1/agreement-runs/{run_id}/consensus/")


def test_schema_documents_the_agreement_endpoints(manager):
    response = client_for(manager).get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for fragment in (
        "/api/v1/projects/{project_id}/agreement-runs/",
        "/api/v1/agreement-runs/{run_id}/",
        "/api/v1/agreement-runs/{run_id}/consensus/",
    ):
        assert fragment in text
