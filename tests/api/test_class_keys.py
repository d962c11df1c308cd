"""Class keys are any text (issue 15, item 5): "Not Humor", "Défaut léger" round-trip
from project creation over a Label Studio import, labeling, an agreement run and a
dataset export."""

from __future__ import annotations

import json

import pytest

from labeling import services
from labeling.models import LabelClass, Role, safe_class_key

pytestmark = pytest.mark.django_db

KEYS = ["Not Humor", "Défaut léger", "Humor"]


def _task(n: int, choices: list[str]) -> dict:
    return {
        "id": n,
        "data": {"image": f"https://cdn.example.org/{n}.jpg"},
        "annotations": [
            {
                "id": 100 * n + k,
                "completed_by": {"id": k + 1, "email": f"rater{k + 1}@example.org"},
                "result": [
                    {
                        "value": {"choices": [choice]},
                        "from_name": "verdict",
                        "to_name": "image",
                        "type": "choices",
                    }
                ],
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": "2024-05-02T10:15:30Z",
                "lead_time": 2.5,
            }
            for k, choice in enumerate(choices)
        ],
    }


def test_free_text_class_keys_round_trip_through_the_whole_loop(
    api, make_user, django_capture_on_commit_callbacks
):
    staff = make_user("lead", is_staff=True)
    client = api.as_user(staff)
    created = client.post(
        "/api/v1/projects/",
        {"name": "Jokes", "overlap": 3, "classes": [{"key": k} for k in KEYS]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    project_id = created.json()["id"]
    assert [c["key"] for c in created.json()["classes"]] == KEYS
    # a free-text key is its own display name
    assert [c["name"] for c in created.json()["classes"]] == KEYS

    # two raters per task from Label Studio, with the choices as they wrote them
    export = [
        _task(1, ["Not Humor", "Not Humor"]),
        _task(2, ["Défaut léger", "Défaut léger"]),
        _task(3, ["Humor", "Not Humor"]),
        _task(4, ["Défaut léger", "Humor"]),
    ]
    imported = client.post(
        f"/api/v1/projects/{project_id}/annotations/import/?format=label_studio",
        json.dumps(export),
        content_type="application/json",
    )
    assert imported.status_code == 201, imported.json()
    assert (imported.json()["n_annotations_created"], imported.json()["n_errors"]) == (8, 0)

    # a third labeler labels every item through the API
    labeler = make_user("third")
    project = LabelClass.objects.filter(key="Humor").get().project
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    as_labeler = api.as_user(labeler)
    third = {"1": "Not Humor", "2": "Défaut léger", "3": "Not Humor", "4": "Défaut léger"}
    for item in project.items.all():
        response = as_labeler.post(
            f"/api/v1/items/{item.pk}/annotations/",
            {"value": third[item.external_id]},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["value"] == third[item.external_id]

    client = api.as_user(staff)
    with django_capture_on_commit_callbacks(execute=True):
        run = client.post(f"/api/v1/projects/{project_id}/agreement-runs/", {}, format="json")
    assert run.status_code == 202, run.json()
    results = client.get(run.json()["url"]).json()
    assert results["status"] == "succeeded", results["error"]
    overall = results["results"]["overall"]
    assert (overall["n_items"], overall["n_annotations"]) == (4, 12)
    per_class = json.dumps(results["results"], ensure_ascii=False)
    assert "Not Humor" in per_class and "Défaut léger" in per_class

    with django_capture_on_commit_callbacks(execute=True):
        dataset = client.post(
            f"/api/v1/projects/{project_id}/datasets/", {"splits": {"train": 1.0}}, format="json"
        )
    assert dataset.status_code == 202, dataset.json()
    version = client.get(dataset.json()["url"]).json()
    assert version["status"] == "succeeded", version
    response = client.get(f"/api/v1/datasets/{version['id']}/export/?format=jsonl")
    rows = [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
    labels = {r["external_id"]: r["label"] for r in rows}
    # majority of three: 2-of-3 on items 3 and 4
    assert labels == {"1": "Not Humor", "2": "Défaut léger", "3": "Not Humor", "4": "Défaut léger"}


@pytest.mark.parametrize(
    ("key", "word"),
    [("x" * 81, "80"), ("tab\there", "control"), ("", "key"), ("   ", "key")],
)
def test_a_bad_class_key_is_a_400_naming_the_classes(api, make_user, key, word):
    staff = make_user("lead", is_staff=True)
    response = api.as_user(staff).post(
        "/api/v1/projects/",
        {"name": "Bad", "overlap": 2, "classes": [{"key": "ok"}, {"key": key}]},
        format="json",
    )
    assert response.status_code == 400
    assert "classes" in json.dumps(response.json())
    assert word in json.dumps(response.json())


def test_the_service_refuses_surrounding_spaces_and_takes_any_other_text():
    assert "spaces" in services.class_key_error(" padded")
    assert services.class_key_error("Défaut léger / 軽微な欠陥 (≤ 0.2 mm)") is None
    assert services.class_key_error("x" * 80) is None


def test_class_keys_are_unique_per_project(api, make_user):
    staff = make_user("lead", is_staff=True)
    response = api.as_user(staff).post(
        "/api/v1/projects/",
        {"name": "Twice", "overlap": 2, "classes": [{"key": "Not Humor"}, {"key": "Not Humor"}]},
        format="json",
    )
    assert response.status_code == 400
    assert "duplicate class keys: Not Humor" in json.dumps(response.json())


def test_the_safe_form_of_a_key_is_derived_and_distinct():
    assert safe_class_key("no_defect") == "no_defect"
    assert safe_class_key("Défaut léger").startswith("Defaut_leger-")
    forms = {safe_class_key(k) for k in ("Not Humor", "Not_Humor", "Not-Humor", "not humor")}
    assert len(forms) == 4
    assert all(set(f) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
               for f in forms)  # fmt: skip
