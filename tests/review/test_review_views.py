"""Review queue web pages: roles, what an SME sees, the decision form, normalisation."""

# The fixtures come from test_review.py; using them as arguments "redefines" the imports.
# ruff: noqa: F811

from __future__ import annotations

import pytest

from consistency.models import Flag, FlagKind, FlagStatus
from consistency.selectors import current_normalization_rules
from labeling.models import ItemDecision, LabelClass
from review.services import resolve_flag
from tests.review.test_review import (  # noqa: F401 - fixtures
    fast_password_hasher,
    labeled,
    make_flag,
    run,
    run_agreement,
    sme,
    speech,
    viewer,
)


@pytest.fixture
def web(client):
    """The Django test client over HTTPS (the suite runs with DEBUG off)."""

    class Https:
        def get(self, url, **kw):
            return client.get(url, secure=True, **kw)

        def post(self, url, data=None, **kw):
            return client.post(url, data or {}, secure=True, **kw)

        def login(self, user):
            client.force_login(user)

    return Https()


@pytest.fixture
def flags(project, labeled, run):
    top = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    Flag.objects.filter(pk=top.pk).update(impact=3.0)
    second = make_flag(project, run, FlagKind.BORDERLINE, items=[labeled["it-2"], labeled["it-4"]])
    return [top, second]


def test_queue_lists_open_flags_ranked_for_an_sme(web, project, flags, sme):
    web.login(sme)
    response = web.get(f"/projects/{project.pk}/review/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(f"/flags/{flags[0].pk}/") < html.index(f"/flags/{flags[1].pk}/")
    assert "2 open flags" in html


def test_queue_roles(web, project, flags, labelers, viewer, make_user):
    web.login(labelers[0])
    assert web.get(f"/projects/{project.pk}/review/").status_code == 403
    assert web.get(f"/flags/{flags[0].pk}/").status_code == 403
    web.login(viewer)
    page = web.get(f"/flags/{flags[0].pk}/")
    assert page.status_code == 200
    assert 'id="decision"' not in page.content.decode()  # viewers read, do not decide
    assert web.post(f"/flags/{flags[0].pk}/resolve/", {"action": "dismiss"}).status_code == 403
    web.login(make_user("outsider"))
    assert web.get(f"/projects/{project.pk}/review/").status_code == 404


def test_flag_page_shows_every_label_and_the_decision_form(web, flags, sme):
    web.login(sme)
    html = web.get(f"/flags/{flags[0].pk}/").content.decode()
    for labeler, value in (("labeler1", "scratch"), ("labeler2", "dent")):
        assert labeler in html and value in html
    assert 'id="decision"' in html and 'name="rationale"' in html
    assert "cam-1" in html  # metadata


def test_resolving_from_the_page_goes_to_the_next_flag(web, project, labeled, flags, sme):
    web.login(sme)
    response = web.post(
        f"/flags/{flags[0].pk}/resolve/",
        {"action": "set_label", "label": "scratch", "rationale": "clearly a line"},
    )
    assert response.status_code == 302 and response.url == f"/flags/{flags[1].pk}/"
    assert Flag.objects.get(pk=flags[0].pk).status == FlagStatus.RESOLVED
    assert ItemDecision.objects.get(item=labeled["it-1"]).label_class.key == "scratch"


def test_ticked_items_only_are_decided(web, labeled, flags, sme):
    web.login(sme)
    web.post(
        f"/flags/{flags[1].pk}/resolve/",
        {"action": "mark_borderline", "rationale": "faint", "items": ["it-2"]},
    )
    assert ItemDecision.objects.get(item=labeled["it-2"]).label_class.key == "borderline"
    assert not ItemDecision.objects.filter(item=labeled["it-4"]).exists()


def test_missing_rationale_keeps_the_flag_open_with_a_message(web, flags, sme):
    web.login(sme)
    response = web.post(f"/flags/{flags[0].pk}/resolve/", {"action": "dismiss"}, follow=True)
    assert "rationale" in response.content.decode()
    assert Flag.objects.get(pk=flags[0].pk).status == FlagStatus.OPEN


def test_resolved_merge_flag_offers_undo(web, project, run, sme):
    flag = make_flag(project, run, FlagKind.MERGE_CLASSES, classes=["scratch", "dent"])
    resolve_flag(flag=flag, actor=sme, action="merge_classes", into="scratch", rationale="x")
    web.login(sme)
    html = web.get(f"/flags/{flag.pk}/").content.decode()
    assert "Undo merge" in html
    web.post(f"/flags/{flag.pk}/resolve/", {"action": "unmerge_classes", "rationale": "undo"})
    assert LabelClass.objects.get(project=project, key="dent").merged_into is None


def test_queue_shows_alpha_before_and_after(web, project, labeled, sme):
    run_agreement(project)
    run_agreement(project)
    web.login(sme)
    html = web.get(f"/projects/{project.pk}/review/").content.decode()
    assert 'data-testid="alpha-before-after"' in html and "→" in html


def test_normalization_page_previews_and_publishes(web, speech, manager):
    web.login(manager)
    url = f"/projects/{speech.pk}/normalization/"
    assert web.get(url).status_code == 200
    # whole word, any case (the "match case" box is left unticked)
    form = {"find": ["Umm", ""], "replace": ["Um", ""], "word-0": "on", "preview": "1"}
    html = web.post(url, form).content.decode()
    assert "Preview: 2 of 6 transcripts change" in html
    web.post(url, {**form, "publish": "1", "preview": "", "rationale": "one spelling"})
    assert current_normalization_rules(speech)[0]["find"] == "Umm"
