"""A manager's workspace pages (issue 12): create and configure a project, import page,
data manager shell, guidelines editor, people — server side, without a browser."""

import pytest
from django.urls import reverse

from labeling.models import Guideline, LabelClass, Project, ProjectMembership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def staff(client, make_user):
    user = make_user("boss", is_staff=True)
    client.force_login(user)
    return user


def post(client, url, data):
    return client.post(url, data, secure=True)


def get(client, url):
    return client.get(url, secure=True)


NEW_PROJECT = {
    "name": "Screens",
    "description": "phone screens",
    "task_type": "classification",
    "level": "nominal",
    "overlap": "3",
    "min_overlap": "2",
    "max_overlap": "5",
    "assignment_ttl_minutes": "30",
    "class_0_key": "scratch",
    "class_0_name": "Scratch",
    "class_0_shortcut": "s",
    "class_0_order": "1",
    "class_1_key": "clean",
    "class_1_name": "Clean",
    "class_1_order": "0",
    "class_2_key": "unsure",
    "class_2_borderline": "on",
    "class_2_order": "2",
    "threshold_item_majority_share_below": "0.7",
}


def test_staff_create_a_project_with_ordered_classes_and_thresholds(client, staff):
    response = post(client, reverse("project-create"), NEW_PROJECT)
    project = Project.objects.get(name="Screens")
    assert response.status_code == 302
    assert response["Location"] == reverse("project-import", args=[project.pk])
    classes = list(
        project.classes.order_by("order").values_list("key", "shortcut", "is_borderline")
    )
    # The order fields (set by the page's drag and keys) decide the order, not the row index.
    assert classes == [("clean", "", False), ("scratch", "s", False), ("unsure", "", True)]
    assert project.flag_thresholds["item_majority_share_below"] == 0.7
    assert ProjectMembership.objects.get(project=project, user=staff).role == Role.MANAGER


def test_create_errors_are_shown_beside_their_field(client, staff):
    bad = {**NEW_PROJECT, "name": "", "overlap": "x", "class_0_shortcut": "ss"}
    response = post(client, reverse("project-create"), bad)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="e-name"' in html and "name the project" in html
    assert 'data-field="overlap"' in html and "a whole number" in html
    assert "a shortcut is one key" in html
    assert not Project.objects.filter(name="Screens").exists()


def test_service_errors_name_the_field(client, staff):
    bad = {**NEW_PROJECT, "overlap": "9", "max_overlap": "5"}
    response = post(client, reverse("project-create"), bad)
    assert response.status_code == 400
    assert 'data-field="overlap"' in response.content.decode()


def test_non_staff_may_not_create_projects(web):
    assert get(web, reverse("project-create")).status_code == 403


def test_settings_rename_reorder_and_add_classes(web, project):
    classes = list(project.classes.order_by("order"))
    form = {
        "name": "Phone defects v2",
        "level": "ordinal",
        "overlap": "3",
        "min_overlap": "2",
        "max_overlap": "5",
        "assignment_ttl_minutes": "45",
        "dynamic_overlap": "on",
        "threshold_slice_min_items": "20",
    }
    for n, c in enumerate(classes):
        form[f"class_{n}_id"] = str(c.pk)
        form[f"class_{n}_key"] = c.key
        form[f"class_{n}_name"] = c.name
        form[f"class_{n}_order"] = str(len(classes) - n)  # reversed
    form[f"class_{len(classes)}_key"] = "crack"
    form[f"class_{len(classes)}_name"] = "Crack"
    form[f"class_{len(classes)}_order"] = "0"
    form["class_0_name"] = "Clean"
    form["class_0_shortcut"] = "c"
    response = post(web, reverse("project-settings", args=[project.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert project.name == "Phone defects v2" and project.level == "ordinal"
    assert project.dynamic_overlap and project.assignment_ttl_minutes == 45
    assert project.flag_thresholds["slice_min_items"] == 20
    assert project.flag_thresholds["item_majority_share_below"] == 0.67  # unchanged
    order = list(project.classes.order_by("order").values_list("key", flat=True))
    assert order == ["crack", "borderline", "dent", "scratch", "no_defect"]
    renamed = LabelClass.objects.get(project=project, key="no_defect")
    assert (renamed.name, renamed.shortcut) == ("Clean", "c")


def test_settings_refuse_a_duplicate_shortcut_and_keep_everything(web, project):
    classes = list(project.classes.order_by("order"))
    form = {"name": project.name, "level": "nominal", "overlap": "3"}
    for n, c in enumerate(classes):
        form.update({f"class_{n}_id": str(c.pk), f"class_{n}_key": c.key, f"class_{n}_order": n})
        form[f"class_{n}_shortcut"] = "x" if n < 2 else ""
    response = post(web, reverse("project-settings", args=[project.pk]), form)
    assert response.status_code == 400
    assert "used twice" in response.content.decode()
    assert not project.classes.exclude(shortcut="").exists()


def test_settings_show_only_monitoring_fields_the_model_has(web, project):
    html = get(web, reverse("project-settings", args=[project.pk])).content.decode()
    names = [f.name for f in Project._meta.get_fields() if f.name.startswith("monitoring")]
    if names:
        assert "Monitoring" in html
    else:
        assert "<legend>Monitoring</legend>" not in html


def test_the_import_page_lists_source_batches(web, project):
    services_batch = project.source_batches.create(
        kind="items", origin="first.csv", n_rows=12, n_created=10, n_errors=2, status="partial"
    )
    html = get(web, reverse("project-import", args=[project.pk])).content.decode()
    assert f'data-batch="{services_batch.pk}"' in html and "first.csv" in html
    assert reverse("api-items-import", args=[project.pk]) in html


def test_publishing_a_guideline_renders_markdown_safely_on_the_labeling_page(
    web, project, labelers, client
):
    text = (
        "# Scratches\n\nA **deep** scratch catches a fingernail.\n\n"
        '<script>window.pwned = 1</script>\n\n<img src=x onerror="window.pwned=2">\n\n'
        "[see](javascript:window.pwned=3)"
    )
    response = post(
        web, reverse("project-guidelines", args=[project.pk]), {"text": text, "change_note": "md"}
    )
    assert response.status_code == 302
    assert Guideline.objects.filter(project=project).count() == 2
    client.force_login(labelers[0])
    # The labeling page needs an item to show the guideline panel.
    project.items.create(external_id="a", kind="text", text="hello")
    html = get(client, reverse("label", args=[project.pk])).content.decode()
    panel = html[html.index('data-testid="guideline-text"') :]
    panel = panel[: panel.index("</div>")]
    assert "<h1>Scratches</h1>" in panel and "<strong>deep</strong>" in panel
    assert "<script" not in panel and "onerror" not in panel and "javascript:" not in panel


def test_the_preview_is_sanitised(web, project):
    answer = post(
        web,
        reverse("guideline-preview", args=[project.pk]),
        {"text": "<b onclick=alert(1)>x</b> <a href='javascript:alert(1)'>y</a>"},
    )
    assert answer.status_code == 200
    assert answer.json()["html"] == '<p><b>x</b> <a rel="noopener noreferrer">y</a></p>'


def test_unknown_example_items_are_named(web, project):
    response = post(
        web,
        reverse("project-guidelines", args=[project.pk]),
        {"text": "Look closely.", "example_items": "nope-1"},
    )
    assert response.status_code == 400
    assert "no item &#x27;nope-1&#x27; in this project" in response.content.decode()


def test_people_create_invite_and_deactivate(web, project, make_user):
    url = reverse("project-people", args=[project.pk])
    response = post(
        web,
        url,
        {
            "action": "create",
            "username": "newbie",
            "password": "a-long-passphrase-42",
            "role": "labeler",
        },
    )
    assert response.status_code == 302
    newbie = ProjectMembership.objects.get(project=project, user__username="newbie")
    assert newbie.role == "labeler"
    other = make_user("other")
    assert (
        post(web, url, {"action": "invite", "username": "other", "role": "sme"}).status_code == 302
    )
    assert ProjectMembership.objects.get(project=project, user=other).role == "sme"
    assert post(web, url, {"action": "deactivate", "username": "newbie"}).status_code == 302
    newbie.user.refresh_from_db()
    assert newbie.user.is_active is False
    missing = post(web, url, {"action": "invite", "username": "ghost", "role": "sme"})
    assert missing.status_code == 400 and "no account" in missing.content.decode()


def test_the_data_manager_page_renders_for_review_roles(web, project, labelers, client):
    assert get(web, reverse("data-manager", args=[project.pk])).status_code == 200
    client.force_login(labelers[0])
    assert get(client, reverse("data-manager", args=[project.pk])).status_code == 403
