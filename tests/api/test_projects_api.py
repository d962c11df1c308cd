"""REST for managers: projects, classes, guidelines, accounts, members, lists, progress."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from labeling import services
from labeling.models import (
    Annotation,
    Guideline,
    Item,
    PayloadKind,
    Project,
    ProjectMembership,
    Role,
)
from provenance.models import Event

pytestmark = pytest.mark.django_db
User = get_user_model()


def send(client, method, path, body):
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


# --- Projects ----------------------------------------------------------------------------
def test_staff_creates_a_project_with_classes_and_becomes_its_manager(api, make_user):
    staff = make_user("lead", is_staff=True)
    body = {
        "name": "Screens",
        "task_type": "rating",
        "level": "ordinal",
        "overlap": 4,
        "classes": [
            {"key": "ok", "name": "OK", "rank": 0},
            {"key": "minor", "rank": 1, "value": 1.0},
            {"key": "unsure", "is_borderline": True},
        ],
        "dynamic_overlap": True,
        "min_overlap": 2,
        "max_overlap": 5,
        "guideline": "Rate the worst defect.",
    }
    response = send(api.as_user(staff), "post", "/api/v1/projects/", body)
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["role"] == Role.MANAGER and created["overlap"] == 4
    assert [c["key"] for c in created["classes"]] == ["ok", "minor", "unsure"]
    assert created["classes"][2]["is_borderline"] and created["classes"][1]["value"] == 1.0
    project = Project.objects.get(pk=created["id"])
    assert project.dynamic_overlap and project.max_overlap == 5
    assert ProjectMembership.objects.get(project=project, user=staff).role == Role.MANAGER
    assert Guideline.objects.get(project=project).version == 1


def test_project_creation_errors_name_the_field(api, django_user_model):
    root = django_user_model.objects.create_superuser("root2", "r@example.org", "pw-x-12345")
    body = {"name": "Dup", "classes": [{"key": "a"}, {"key": "a"}]}
    response = send(api.as_user(root), "post", "/api/v1/projects/", body)
    assert response.status_code == 400 and "duplicate class keys" in response.json()["detail"]
    response = send(api.as_user(root), "post", "/api/v1/projects/", {"name": "x", "overlap": 0})
    assert response.status_code == 400 and "overlap" in response.json()["errors"]


def test_project_list_holds_only_the_callers_projects(api, project, manager, make_user):
    other_owner = make_user("other", is_staff=True)
    services.create_project(name="Other", classes=[{"key": "a"}], created_by=other_owner)
    names = [p["name"] for p in api.as_user(manager).get("/api/v1/projects/").json()["results"]]
    assert names == ["Phone defects"]


def test_manager_patches_settings_but_not_the_task_type(manager_api, project):
    path = f"/api/v1/projects/{project.pk}/"
    response = send(manager_api, "patch", path, {"overlap": 5, "description": "new"})
    assert response.status_code == 200 and response.json()["overlap"] == 5
    assert Event.objects.filter(verb="project.updated").exists()
    response = send(manager_api, "patch", path, {"task_type": "rating"})
    assert response.status_code == 400 and "task_type" in response.json()["detail"]
    response = send(manager_api, "patch", path, {"min_overlap": 6, "max_overlap": 3})
    assert response.status_code == 400


def test_classes_are_added_once(manager_api, project):
    path = f"/api/v1/projects/{project.pk}/classes/"
    created = send(manager_api, "post", path, {"key": "crack", "name": "Crack", "shortcut": "c"})
    assert created.status_code == 201 and created.json()["shortcut"] == "c"
    again = send(manager_api, "post", path, {"key": "crack"})
    assert again.status_code == 400 and "already has a class" in again.json()["detail"]
    keys = [c["key"] for c in manager_api.get(path).json()]
    assert keys[-1] == "crack" and len(keys) == 5


def test_publishing_a_guideline_makes_the_next_version_with_examples(manager_api, project):
    Item.objects.create(project=project, external_id="ex-1", kind=PayloadKind.TEXT, text="t")
    path = f"/api/v1/projects/{project.pk}/guidelines/"
    body = {"text": "Dents beat scratches.", "change_note": "ties", "example_items": ["ex-1"]}
    response = send(manager_api, "post", path, body)
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 2 and response.json()["example_items"] == ["ex-1"]
    assert [g["version"] for g in manager_api.get(path).json()] == [2, 1]
    missing = send(manager_api, "post", path, {"text": "x", "example_items": ["nope"]})
    assert missing.status_code == 400 and "nope" in missing.json()["detail"]
    assert Guideline.objects.filter(project=project).count() == 2


# --- Accounts and members ----------------------------------------------------------------
def test_manager_creates_an_account_and_adds_it_as_a_member(manager_api, project, client):
    response = send(
        manager_api,
        "post",
        "/api/v1/users/",
        {"username": "newbie", "password": "a-long-unusual-pass-91", "email": "n@example.org"},
    )
    assert response.status_code == 201, response.json()
    assert "password" not in response.json()
    assert client.login(username="newbie", password="a-long-unusual-pass-91")
    path = f"/api/v1/projects/{project.pk}/members/"
    added = send(manager_api, "post", path, {"user": "newbie", "role": "sme"})
    assert added.status_code == 201 and added.json()["role"] == "sme"
    changed = send(manager_api, "post", path, {"user": "newbie", "role": "viewer"})
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    listed = {m["user"]: m["role"] for m in manager_api.get(path).json()}
    assert listed == {"manager": "manager", "newbie": "viewer"}
    removed = manager_api.delete(f"{path}newbie/")
    assert removed.status_code == 204
    assert not ProjectMembership.objects.filter(user__username="newbie").exists()


def test_account_creation_refuses_weak_passwords_and_taken_names(manager_api, project):
    weak = send(manager_api, "post", "/api/v1/users/", {"username": "w", "password": "123"})
    assert weak.status_code == 400 and "password" in weak.json()["errors"]
    taken = send(manager_api, "post", "/api/v1/users/", {"username": "manager"})
    assert taken.status_code == 400 and "exists already" in taken.json()["detail"]


def test_adding_an_unknown_account_says_how_to_create_it(manager_api, project):
    path = f"/api/v1/projects/{project.pk}/members/"
    response = send(manager_api, "post", path, {"user": "ghost", "role": "labeler"})
    assert response.status_code == 400 and "/api/v1/users/" in response.json()["detail"]


def test_the_last_manager_cannot_be_removed(manager_api, project):
    response = manager_api.delete(f"/api/v1/projects/{project.pk}/members/manager/")
    assert response.status_code == 400 and "last manager" in response.json()["detail"]


def test_imported_labeler_is_activated_by_a_manager(manager_api, project):
    send(
        manager_api,
        "post",
        f"/api/v1/projects/{project.pk}/items/import/",
        [{"external_id": "x1", "text": "t"}],
    )
    send(
        manager_api,
        "post",
        f"/api/v1/projects/{project.pk}/annotations/import/",
        [{"item": "x1", "labeler": "hist-7", "value": "dent"}],
    )
    assert not User.objects.get(username="hist-7").is_active
    response = send(manager_api, "patch", "/api/v1/users/hist-7/", {"is_active": True})
    assert response.status_code == 200 and response.json()["is_active"]
    assert User.objects.get(username="hist-7").is_active
    assert Event.objects.filter(verb="user.activated").exists()


# --- Item and annotation lists -----------------------------------------------------------
@pytest.fixture
def catalogue(project, labelers):
    """Six items on two lines, two tagged; item 0 fully labeled, item 1 half."""
    items = []
    for n in range(6):
        items.append(
            Item.objects.create(
                project=project,
                external_id=f"c{n}",
                kind=PayloadKind.TEXT,
                text=f"<script>alert({n})</script>",
                metadata={"line": n % 2 + 1, "factory": "A" if n < 3 else "B"},
            )
        )
    tags = services.get_or_create_tags(project=project, names=["blurry"])
    for item in items[:2]:
        item.tags.set(tags.values())
    for labeler in labelers:
        services.submit_annotation(item=items[0], labeler=labeler, value="dent")
    services.submit_annotation(item=items[1], labeler=labelers[0], value="scratch")
    services.submit_annotation(item=items[1], labeler=labelers[0], value="dent")  # a revision
    return items


def ids(response):
    assert response.status_code == 200, response.json()
    return [r["external_id"] for r in response.json()["results"]]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["c0", "c1", "c2", "c3", "c4", "c5"]),
        ("?metadata.line=1", ["c0", "c2", "c4"]),
        ("?metadata.line=2&metadata.factory=B", ["c3", "c5"]),
        ("?tag=blurry", ["c0", "c1"]),
        ("?status=complete", ["c0"]),
        ("?status=in_progress", ["c1"]),
        ("?status=unlabeled", ["c2", "c3", "c4", "c5"]),
        ("?external_id=c4", ["c4"]),
        ("?metadata.password=x", []),  # a JSON key, never a lookup
        ("?metadata.line__gt=0", []),  # likewise: the key "line__gt" simply is absent
        ("?page_size=2", ["c0", "c1"]),
        ("?page=2&page_size=4", ["c4", "c5"]),
    ],
)
def test_item_list_filters(manager_api, project, catalogue, query, expected):
    assert ids(manager_api.get(f"/api/v1/projects/{project.pk}/items/{query}")) == expected


@pytest.mark.parametrize(
    "query",
    ["?labeler__password__startswith=p", "?metadata.a-b=1", "?status=done", "?ordering=text"],
)
def test_item_list_refuses_filters_off_the_allow_list(manager_api, project, catalogue, query):
    response = manager_api.get(f"/api/v1/projects/{project.pk}/items/{query}")
    assert response.status_code == 400, response.json()


def test_item_list_rows_carry_counts_status_tags_and_text_as_json(manager_api, project, catalogue):
    row = manager_api.get(f"/api/v1/projects/{project.pk}/items/?external_id=c1").json()
    (item,) = row["results"]
    assert (item["n_annotations"], item["status"], item["tags"]) == (1, "in_progress", ["blurry"])
    assert item["text"] == "<script>alert(1)</script>"  # JSON string, rendered by no one here


def test_page_size_is_capped_at_500(manager_api, project, catalogue):
    response = manager_api.get(f"/api/v1/projects/{project.pk}/items/?page_size=100000")
    assert response.status_code == 200 and len(response.json()["results"]) == 6


def test_item_detail_by_project_and_by_id(manager_api, project, catalogue):
    item = catalogue[0]
    nested = manager_api.get(f"/api/v1/projects/{project.pk}/items/{item.pk}/").json()
    alone = manager_api.get(f"/api/v1/items/{item.pk}/").json()
    assert nested == alone and nested["status"] == "complete"


def test_an_item_of_another_project_is_not_found_under_this_one(
    manager_api, project, catalogue, make_user
):
    owner = make_user("owner2", is_staff=True)
    other = services.create_project(name="Other", classes=[{"key": "a"}], created_by=owner)
    foreign = Item.objects.create(project=other, external_id="f", kind="text", text="t")
    assert manager_api.get(f"/api/v1/projects/{project.pk}/items/{foreign.pk}/").status_code == 404
    assert manager_api.get(f"/api/v1/items/{foreign.pk}/").status_code == 404


def test_annotation_list_is_current_only_unless_revisions_are_asked_for(
    manager_api, project, catalogue
):
    path = f"/api/v1/projects/{project.pk}/annotations/"
    current = manager_api.get(path).json()
    assert current["count"] == 4
    with_revisions = manager_api.get(path + "?include_revisions=1").json()
    assert with_revisions["count"] == 5
    by_item = manager_api.get(path + "?item=c1&include_revisions=true").json()["results"]
    assert [(a["value"], a["is_current"]) for a in by_item] == [("dent", True), ("scratch", False)]
    assert by_item[0]["supersedes"] == by_item[1]["id"]
    by_labeler = manager_api.get(path + "?labeler=labeler2").json()["results"]
    assert [a["item_external_id"] for a in by_labeler] == ["c0"]


# --- No N+1: query counts pinned -------------------------------------------------------------
def _add_items(project, labelers, start, n):
    tags = list(services.get_or_create_tags(project=project, names=["t1", "t2"]).values())
    for k in range(start, start + n):
        item = Item.objects.create(
            project=project, external_id=f"q{k}", kind="text", text="t", metadata={"k": k}
        )
        item.tags.set(tags)
        for labeler in labelers[:2]:
            services.submit_annotation(item=item, labeler=labeler, value="dent")


# project lookup, role, whether any check was answered (the kept counts are read as
# they are when none was: labeling.selectors.items_with_kept_counts), count, page, tags
ITEM_LIST_QUERIES = 6
# project lookup, role, count, page (item, labeler, class and guideline joined)
ANNOTATION_LIST_QUERIES = 4


@pytest.mark.parametrize("n_items", [3, 30])
def test_item_list_query_count_does_not_grow_with_the_page(
    manager_api, project, labelers, django_assert_num_queries, n_items
):
    _add_items(project, labelers, 0, n_items)
    with django_assert_num_queries(ITEM_LIST_QUERIES):
        response = manager_api.get(f"/api/v1/projects/{project.pk}/items/?page_size=100")
    assert len(response.json()["results"]) == n_items


@pytest.mark.parametrize("n_items", [3, 30])
def test_annotation_list_query_count_does_not_grow_with_the_page(
    manager_api, project, labelers, django_assert_num_queries, n_items
):
    _add_items(project, labelers, 0, n_items)
    with django_assert_num_queries(ANNOTATION_LIST_QUERIES):
        response = manager_api.get(f"/api/v1/projects/{project.pk}/annotations/?page_size=500")
    assert len(response.json()["results"]) == 2 * n_items
    assert Annotation.objects.count() == 2 * n_items


def test_openapi_schema_describes_the_endpoints(manager_api):
    response = manager_api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/api/v1/projects/{project_id}/items/import/" in paths
    assert "/api/v1/projects/{project_id}/annotations/" in paths
