"""Labeler web pages: render for labelers, blind to others' labels, escape payload text,
post without JavaScript, revise rather than overwrite."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from labeling import assignment as A
from labeling import services
from labeling.models import Annotation, Item, PayloadKind, Role

pytestmark = pytest.mark.django_db


class HttpsClient(Client):
    """Every request over HTTPS, like production, so the suite passes with DEBUG off
    (SECURE_SSL_REDIRECT on)."""

    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


@pytest.fixture
def client():
    return HttpsClient()


def text_item(project, external_id="t1", text="hello"):
    return Item.objects.create(
        project=project, external_id=external_id, kind=PayloadKind.TEXT, text=text
    )


@pytest.fixture
def ana(labelers, client):
    client.force_login(labelers[0])
    return labelers[0]


def test_home_lists_projects_with_start_button_and_progress(client, ana, project):
    text_item(project)
    html = client.get(reverse("home")).content.decode()
    assert project.name in html
    assert reverse("label", args=[project.pk]) in html
    assert "Start labeling" in html
    assert "/dashboard/" not in html  # labelers get no dashboard link


def test_home_shows_dashboard_link_to_managers(client, manager, project):
    client.force_login(manager)
    html = client.get(reverse("home")).content.decode()
    assert f"/projects/{project.pk}/dashboard/" in html


def test_label_page_renders_item_classes_shortcuts_and_guideline(client, ana, project):
    text_item(project, text="a plain sentence")
    response = client.get(reverse("label", args=[project.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "a plain sentence" in html
    assert "<kbd>1</kbd>" in html and "<kbd>B</kbd>" in html  # borderline key
    assert "Label the most severe visible defect." in html  # guideline panel
    assert "concord/label.js" in html
    assert 'name="time_spent_ms"' in html


def test_label_page_escapes_item_text(client, ana, project):
    text_item(project, text="<script>alert(1)</script>")
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_label_page_escapes_guideline_and_comment(client, ana, project):
    services.publish_guideline(project=project, text="<img src=x onerror=alert(1)>")
    item = text_item(project)
    services.submit_annotation(
        item=item, labeler=ana, value="dent", comment="<b onmouseover=x>hi</b>"
    )
    html = client.get(reverse("label", args=[project.pk]) + f"?revise={item.pk}").content.decode()
    # The guideline is Markdown rendered and sanitised (issue 12): the tag stays, the
    # handler goes.
    assert "onerror" not in html and '<img src="x">' in html
    assert "<b onmouseover" not in html and "&lt;b onmouseover=x&gt;" in html


def test_label_page_never_shows_other_labelers_labels(client, ana, labelers, project):
    item = text_item(project)
    services.submit_annotation(
        item=item, labeler=labelers[1], value="scratch", comment="SECRET-COMMENT-OF-BEN"
    )
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "SECRET-COMMENT-OF-BEN" not in html
    assert labelers[1].username not in html
    assert "selected" not in html.split('id="label-form"')[1].split("</form>")[0]


def test_revise_page_preselects_only_my_label(client, ana, labelers, project):
    item = text_item(project)
    services.submit_annotation(item=item, labeler=labelers[1], value="scratch")
    services.submit_annotation(item=item, labeler=ana, value="dent")
    html = client.get(reverse("label", args=[project.pk]) + f"?revise={item.pk}").content.decode()
    form = html.split('id="label-form"')[1].split("</form>")[0]
    assert form.count("selected") == 1
    selected = form.split("selected")[0].rsplit("<button", 1)[1]
    assert 'value="dent"' in selected


def test_post_without_js_submits_and_moves_on(client, ana, project):
    item = text_item(project)
    text_item(project, "t2")
    handed = A.next_item_for(project, ana)
    response = client.post(
        reverse("label", args=[project.pk]),
        {
            "item": item.pk,
            "assignment": handed.pk,
            "value": "dent",
            "comment": "",
            "time_spent_ms": "",
        },
    )
    assert response.status_code == 302
    annotation = Annotation.objects.get(item=item, labeler=ana)
    assert annotation.label_class.key == "dent" and annotation.time_spent_ms is None
    assert A.next_item_for(project, ana).item.external_id == "t2"


def test_post_revision_keeps_the_old_label(client, ana, project):
    item = text_item(project)
    services.submit_annotation(item=item, labeler=ana, value="dent")
    client.post(
        reverse("label", args=[project.pk]),
        {"item": item.pk, "value": "scratch", "revising": "1", "time_spent_ms": "1500"},
    )
    rows = list(Annotation.objects.filter(item=item, labeler=ana).order_by("id"))
    assert [(r.label_class.key, r.is_current) for r in rows] == [
        ("dent", False),
        ("scratch", True),
    ]
    assert rows[1].time_spent_ms == 1500


def test_skip_posts_and_item_is_not_offered_again(client, ana, project):
    item = text_item(project)
    handed = A.next_item_for(project, ana)
    client.post(reverse("label-skip", args=[project.pk]), {"assignment": handed.pk})
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "Nothing left for you here" in html
    assert item.external_id not in html


def test_viewer_cannot_open_the_labeling_page(client, project, make_user):
    viewer = make_user("vic")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("label", args=[project.pk])).status_code == 403


def test_non_member_gets_404(client, project, make_user):
    client.force_login(make_user("stranger"))
    assert client.get(reverse("label", args=[project.pk])).status_code == 404


def test_transcription_page_has_a_text_box(client, make_user, manager):
    project = services.create_project(
        name="Calls", task_type="transcription", created_by=manager, guideline_text="Verbatim."
    )
    user = make_user("tina")
    services.set_membership(project=project, user=user, role=Role.LABELER)
    Item.objects.create(
        project=project,
        external_id="c1",
        kind=PayloadKind.AUDIO_URL,
        audio_url="https://example.org/a.wav",
        text="draft words",
    )
    client.force_login(user)
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert 'id="transcript"' in html and "<audio" in html and "draft words" in html


def test_rating_page_orders_classes_by_rank(client, make_user, manager):
    project = services.create_project(
        name="Quality",
        task_type="rating",
        level="ordinal",
        created_by=manager,
        classes=[
            {"key": "good", "name": "Good", "rank": 3},
            {"key": "bad", "name": "Bad", "rank": 1},
            {"key": "ok", "name": "OK", "rank": 2},
        ],
    )
    user = make_user("rita")
    services.set_membership(project=project, user=user, role=Role.LABELER)
    text_item(project)
    client.force_login(user)
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert html.index('value="bad"') < html.index('value="ok"') < html.index('value="good"')
    assert "classes scale" in html


def test_relabel_request_shows_my_label_preselected_and_submits_a_revision(
    client, ana, project, manager
):
    from labeling.models import Assignment

    item = text_item(project)
    services.submit_annotation(item=item, labeler=ana, value="dent")
    A.request_relabel(
        project=project, item_ids=[item.pk], labelers=[ana], reason="v2", actor=manager
    )
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "Sent back for relabeling" in html
    form = html.split('id="label-form"')[1].split("</form>")[0]
    assert 'value="dent"' in form.split("selected")[0].rsplit("<button", 1)[1]
    handed = Assignment.objects.get(item=item, labeler=ana, status="active")
    client.post(
        reverse("label", args=[project.pk]),
        {"item": item.pk, "assignment": handed.pk, "value": "dent", "revising": "1"},
    )
    handed.refresh_from_db()
    assert handed.status == "submitted"
    assert Annotation.objects.filter(item=item, labeler=ana).count() == 2  # confirmed = revision
