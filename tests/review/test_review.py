"""SME review services and REST: flags stored from a run, every resolution action with
its provenance, merges that raise alpha and undo exactly, roles, normalisation rules and
the agreement history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from consistency.flags import generate_flags, load_label_data, normalized_transcripts
from consistency.metrics import AgreementStats, summarize
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    Flag,
    FlagKind,
    FlagStatus,
    RunStatus,
    TranscriptRuleSet,
)
from consistency.run_params import validate_params
from consistency.runs import execute_agreement_run
from consistency.selectors import current_normalization, current_normalization_rules
from labeling import services
from labeling.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    GoldLabel,
    Item,
    ItemDecision,
    LabelClass,
    PayloadKind,
    Project,
    Role,
    TaskType,
)
from labeling.selectors import effective_class_map, sme_overrides
from provenance.models import Event
from review.models import Resolution
from review.selectors import agreement_history, alpha_before_after, flag_queue
from review.services import preview_normalization, publish_normalization, resolve_flag
from tests.consistency.test_detection import demo_image_project

User = get_user_model()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Accounts are made by the dozen here; PBKDF2 would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def load_demo_db(*, with_images: bool = False, n_items: int | None = None) -> Project:
    """The demo's phone-screen project in the database, without the worker or the demo
    passwords: classes, both guideline versions, items with metadata, every label."""
    demo = demo_image_project()
    boss = User.objects.create_user("boss", password="pw-for-tests-123")
    project = services.create_project(
        name=demo.name,
        slug=demo.slug,
        classes=[
            {"key": c.key, "name": c.name, "rank": c.rank, "is_borderline": c.is_borderline}
            for c in demo.classes
        ],
        overlap=3,
        created_by=boss,
    )
    users = {}
    for name in sorted({a.labeler for a in demo.annotations}):
        users[name] = User.objects.create_user(name, password="pw-for-tests-123")
        services.set_membership(project=project, user=users[name], role=Role.LABELER)
    for name, role in (("sme", Role.SME), ("viewer", Role.VIEWER)):
        user = User.objects.create_user(name, password="pw-for-tests-123")
        services.set_membership(project=project, user=user, role=role)
    guidelines = {
        g.version: services.publish_guideline(project=project, text=g.text, published_by=boss)
        for g in demo.guidelines
    }
    demo_items = demo.items[:n_items] if n_items else demo.items
    rows = []
    for it in demo_items:
        item = Item(
            project=project,
            external_id=it.external_id,
            kind=PayloadKind.IMAGE if with_images else PayloadKind.IMAGE_URL,
            image_url="" if with_images else f"https://example.invalid/{it.external_id}.png",
            metadata=it.metadata,
        )
        if with_images:
            item.image.save(it.filename, ContentFile(it.image_png), save=False)
        rows.append(item)
    items = {i.external_id: i for i in Item.objects.bulk_create(rows)}
    classes = {c.key: c for c in project.classes.all()}
    Annotation.objects.bulk_create(
        [
            Annotation(
                project=project,
                item=items[a.item],
                labeler=users[a.labeler],
                label_class=classes[a.value],
                guideline=guidelines[a.guideline_version],
                comment=a.comment,
                source=AnnotationSource.DEMO,
                created_at=a.created_at,
            )
            for a in demo.annotations
            if a.item in items
        ]
    )
    return project


def run_agreement(project: Project) -> AgreementRun:
    """An agreement run computed with consistency.metrics on the scanned labels (merges
    applied), stored like the engine stores one."""
    data = load_label_data(project)
    stats = AgreementStats.from_labels(
        data.items,
        data.labelers,
        data.values,
        level="nominal",
        n_classes=len(data.classes),
        n_labelers=len(data.labeler_names),
    )
    results = summarize(
        stats, classes=data.classes, labeler_names=data.labeler_names, n_bootstrap=0
    )
    # Like the engine, the run records the merges in force ({merged key: root key}).
    roots = effective_class_map(project)
    keys = dict(LabelClass.objects.filter(project=project).values_list("id", "key"))
    results["merges"] = {keys[c]: keys[r] for c, r in roots.items() if c != r}
    now = timezone.now()
    return AgreementRun.objects.create(
        project=project,
        status=RunStatus.SUCCEEDED,
        progress=1.0,
        results=results,
        started_at=now,
        finished_at=now,
    )


@pytest.fixture
def demo_project(db):
    return load_demo_db()


@pytest.fixture
def sme(make_user, project):
    user = make_user("sam-sme")
    services.set_membership(project=project, user=user, role=Role.SME)
    return user


@pytest.fixture
def viewer(make_user, project):
    user = make_user("vic-viewer")
    services.set_membership(project=project, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def labeled(project, labelers):
    """Four items: it-1 split scratch/dent, it-2 split no_defect/scratch, it-3 and it-4
    agreed."""
    values = {
        "it-1": ["scratch", "dent", "scratch"],
        "it-2": ["no_defect", "scratch", "no_defect"],
        "it-3": ["dent", "dent", "dent"],
        "it-4": ["no_defect", "no_defect", "no_defect"],
    }
    items = {}
    for ext, labels in values.items():
        item = Item.objects.create(
            project=project, external_id=ext, kind=PayloadKind.TEXT, text=ext,
            metadata={"camera": "cam-1"},
        )  # fmt: skip
        for labeler, value in zip(labelers, labels, strict=True):
            services.submit_annotation(item=item, labeler=labeler, value=value)
        items[ext] = item
    return items


@pytest.fixture
def run(project, labeled):
    return run_agreement(project)


def make_flag(project, run, kind, *, items=(), classes=(), labeler=None, evidence=None):
    flag = Flag.objects.create(
        project=project,
        run=run,
        kind=kind,
        impact=1.0,
        suggested_action="set_label",
        summary="test flag",
        evidence=evidence or {},
        labeler=labeler,
    )
    flag.items.set(items)
    flag.classes.set(project.classes.filter(key__in=classes))
    return flag


def last_event(verb: str) -> Event:
    event = Event.objects.filter(verb=verb).order_by("-id").first()
    assert event is not None, f"no {verb} event"
    return event


def assert_recorded(verb: str, actor, rationale: str) -> Event:
    event = last_event(verb)
    assert event.actor_id == actor.pk
    assert event.before is not None and event.after is not None
    assert event.reason == rationale
    return event


# --------------------------------------------------------------------------- generate
def test_generate_flags_on_the_demo_stores_ranked_flags_with_evidence(demo_project):
    run = run_agreement(demo_project)
    flags = generate_flags(run)
    kinds = {f.kind for f in flags}
    assert {"merge_classes", "borderline", "unclear_slice", "labeler"} <= kinds
    merge = Flag.objects.filter(run=run, kind="merge_classes").order_by("-impact").first()
    assert set(merge.classes.values_list("key", flat=True)) == {"deep_scratch", "shallow_scratch"}
    assert merge.items.count() > 0 and merge.evidence["example_items"]
    labelers = set(
        Flag.objects.filter(run=run, kind="labeler").values_list("labeler__username", flat=True)
    )
    assert {"labeler5", "labeler6"} <= labelers
    cam = Flag.objects.get(run=run, kind="unclear_slice", slice_key="camera")
    assert cam.slice_value == "cam-4"
    assert last_event("flags.generated").after["n_flags"] == len(flags)


def test_generate_flags_is_idempotent_for_its_run(demo_project):
    run = run_agreement(demo_project)
    first = generate_flags(run)
    again = generate_flags(run)
    assert len(first) == len(again) == Flag.objects.filter(project=demo_project).count()


def test_a_new_run_keeps_every_older_flag_readable_with_its_status(demo_project):
    """Issue 15, item 2: open flags of older runs become superseded (pointing at the new
    run's flag for the same subject), resolved and dismissed flags stay; every flag ever
    raised still answers over REST and on its page."""
    run = run_agreement(demo_project)
    first = generate_flags(run)
    sme = User.objects.get(username="sme")
    resolved = next(f for f in first if f.kind == "labeler")
    resolve_flag(flag=resolved, actor=sme, action="relabel", rationale="retrain them")
    dismissed = next(f for f in first if f.kind == "unclear_slice")
    resolve_flag(flag=dismissed, actor=sme, action="dismiss", rationale="camera is fine")
    later = run_agreement(demo_project)
    generate_flags(later)
    second = generate_flags(later)  # a retry re-points the superseded flags
    new_by_sig = {f.evidence["signature"]: f.pk for f in second}
    api = HttpsApiClient()
    api.force_authenticate(sme)
    n_pointing = 0
    for old in first:
        body = api.get(f"/api/v1/flags/{old.pk}/")
        assert body.status_code == 200, old.pk
        body = body.json()
        assert body["id"] == old.pk and body["run"] == run.pk
        page = Client()
        page.force_login(sme)
        assert page.get(f"/flags/{old.pk}/", secure=True).status_code == 200
        if old.pk == resolved.pk:
            assert (body["status"], body["superseded_by"]) == ("resolved", None)
            assert len(body["resolutions"]) == 1
        elif old.pk == dismissed.pk:
            assert (body["status"], body["superseded_by"]) == ("dismissed", None)
        else:
            assert body["status"] == "superseded"
            successor = new_by_sig.get(old.evidence["signature"])
            assert body["superseded_by"] == successor
            n_pointing += successor is not None
            if successor is not None:
                new = api.get(f"/api/v1/flags/{successor}/").json()
                assert (new["status"], new["run"]) == ("open", later.pk)
                assert new["kind"] == body["kind"] and new["items"] == body["items"]
    # the same data raises the same flags again: every superseded one has a successor
    assert n_pointing == len(first) - 2 > 0
    # the queue shows only the new run's open flags; the history is one filter away
    queue = api.get(f"/api/v1/projects/{demo_project.pk}/flags/?page_size=500").json()
    assert {f["run"] for f in queue["results"]} == {later.pk}
    history = api.get(
        f"/api/v1/projects/{demo_project.pk}/flags/?status=superseded&page_size=500"
    ).json()
    assert history["count"] == len(first) - 2


def test_a_dismissed_suggestion_is_not_raised_again(demo_project):
    run = run_agreement(demo_project)
    generate_flags(run)
    sme = User.objects.get(username="sme")
    merge = Flag.objects.filter(run=run, kind="merge_classes").first()
    resolve_flag(flag=merge, actor=sme, action="dismiss", rationale="two real grades")
    later = run_agreement(demo_project)
    generate_flags(later)
    assert not Flag.objects.filter(run=later, kind="merge_classes").exists()
    assert Flag.objects.get(pk=merge.pk).status == FlagStatus.DISMISSED


# --------------------------------------------------------------------------- merge loop
def test_merging_the_pair_raises_alpha_and_undoing_restores_the_figures_exactly(demo_project):
    sme = User.objects.get(username="sme")
    before = run_agreement(demo_project)
    generate_flags(before)
    merge = Flag.objects.filter(run=before, kind="merge_classes").order_by("-impact").first()
    resolve_flag(
        flag=merge,
        actor=sme,
        action="merge_classes",
        into="deep_scratch",
        rationale="depth cannot be judged from a photo",
    )
    assert LabelClass.objects.get(project=demo_project, key="shallow_scratch").merged_into.key == (
        "deep_scratch"
    )
    merged = run_agreement(demo_project)
    alpha = lambda r: r.results["overall"]["krippendorff_alpha"]  # noqa: E731
    assert alpha(merged) > alpha(before) + 0.05
    assert "shallow_scratch" not in merged.results["confusion"]["classes"]

    resolve_flag(
        flag=merge, actor=sme, action="unmerge_classes", rationale="the customer needs both"
    )
    undone = run_agreement(demo_project)
    assert undone.results == before.results  # every figure, exactly
    # the classes still exist throughout (a merge maps, never deletes)
    assert LabelClass.objects.filter(project=demo_project, key="shallow_scratch").exists()

    history = agreement_history(demo_project)
    assert [h["merges"] for h in history] == [[], [["shallow_scratch", "deep_scratch"]], []]
    assert history[1]["delta_alpha"] > 0 and history[2]["delta_alpha"] < 0
    assert history[0]["guideline_version"] == 2
    ba = alpha_before_after(demo_project)
    assert ba["after"]["run"] == undone.pk and ba["before"]["run"] == merged.pk
    assert any("unmerged shallow_scratch" in c for c in ba["changes"])


# --------------------------------------------------------------------------- actions
def test_set_label_writes_gold_consensus_override_and_events(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    resolution = resolve_flag(
        flag=flag, actor=sme, action="set_label", label="scratch", rationale="clear scratch"
    )
    item = labeled["it-1"]
    assert not GoldLabel.objects.filter(item=item).exists()  # a decision is not ground truth
    gold = ItemDecision.objects.get(item=item)
    assert (gold.label_class.key, gold.decided_by, gold.rationale) == (
        "scratch",
        sme,
        "clear scratch",
    )
    assert sme_overrides(project) == {item.pk: gold.label_class_id}
    assert resolution.details["conflicts_with_ground_truth"] is False
    consensus = Consensus.objects.get(run=run, item=item, method=ConsensusMethod.SME)
    assert consensus.label_class.key == "scratch" and consensus.status == "resolved"
    flag.refresh_from_db()
    assert flag.status == FlagStatus.RESOLVED and flag.closed_at is not None
    assert resolution.label_class.key == "scratch" and list(resolution.items.all()) == [item]
    event = assert_recorded("item.resolved", sme, "clear scratch")
    assert event.before["labels"] == {
        "labeler1": "scratch",
        "labeler2": "dent",
        "labeler3": "scratch",
    }
    assert event.after["label"] == "scratch"
    flag_event = assert_recorded("flag.resolved", sme, "clear scratch")
    assert flag_event.before["status"] == "open" and flag_event.after["status"] == "resolved"


def test_mark_borderline_uses_the_projects_borderline_class(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.BORDERLINE, items=[labeled["it-2"]])
    resolve_flag(flag=flag, actor=sme, action="mark_borderline", rationale="faint mark")
    assert ItemDecision.objects.get(item=labeled["it-2"]).label_class.key == "borderline"
    assert Consensus.objects.get(item=labeled["it-2"], method="sme").status == "borderline"
    event = assert_recorded("item.marked_borderline", sme, "faint mark")
    assert event.after["label"] == "borderline"


def test_mark_borderline_without_a_borderline_class_says_to_add_one(project, labeled, run, sme):
    LabelClass.objects.filter(project=project, is_borderline=True).update(is_borderline=False)
    flag = make_flag(project, run, FlagKind.BORDERLINE, items=[labeled["it-2"]])
    with pytest.raises(ValidationError, match="no borderline class"):
        resolve_flag(flag=flag, actor=sme, action="mark_borderline", rationale="faint")
    assert Flag.objects.get(pk=flag.pk).status == FlagStatus.OPEN


def test_merge_and_unmerge_write_class_events_and_map_overrides(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.MERGE_CLASSES, classes=["scratch", "dent"])
    resolve_flag(
        flag=make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-3"]]),
        actor=sme, action="set_label", label="dent", rationale="dent",
    )  # fmt: skip
    resolve_flag(
        flag=flag, actor=sme, action="merge_classes", into="scratch", rationale="same thing"
    )
    dent = LabelClass.objects.get(project=project, key="dent")
    scratch = LabelClass.objects.get(project=project, key="scratch")
    assert dent.merged_into == scratch
    event = assert_recorded("class.merged", sme, "same thing")
    assert event.before == {"class": "dent", "merged_into": None}
    assert event.after["merged_into"] == "scratch"
    # the SME's earlier decision now counts as the merged class
    assert sme_overrides(project)[labeled["it-3"].pk] == scratch.pk
    assert load_label_data(project).classes == ["no_defect", "scratch", "borderline"]

    resolve_flag(flag=flag, actor=sme, action="unmerge_classes", rationale="undo")
    dent.refresh_from_db()
    assert dent.merged_into is None
    event = assert_recorded("class.unmerged", sme, "undo")
    assert event.before["merged_into"] == "scratch" and event.after["merged_into"] is None
    assert Resolution.objects.filter(flag=flag).count() == 2


def test_relabel_creates_relabel_assignments_and_an_event(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    resolve_flag(flag=flag, actor=sme, action="relabel", rationale="look again")
    rows = Assignment.objects.filter(item=labeled["it-1"], reason="relabel", status="active")
    assert rows.count() == 3
    event = assert_recorded("items.sent_for_relabel", sme, "look again")
    assert event.after["items"] == ["it-1"] and event.after["assignments"] == 3


def test_relabel_on_a_labeler_flag_goes_to_that_labeler(project, labeled, run, sme, labelers):
    flag = make_flag(
        project, run, FlagKind.LABELER, items=[labeled["it-1"], labeled["it-2"]],
        labeler=labelers[1],
    )  # fmt: skip
    resolve_flag(flag=flag, actor=sme, action="relabel", rationale="retrained")
    rows = Assignment.objects.filter(reason="relabel")
    assert set(rows.values_list("labeler_id", flat=True)) == {labelers[1].pk}
    assert rows.count() == 2


def test_publish_guideline_adds_a_version_with_the_items_as_examples(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.UNCLEAR_SLICE, items=[labeled["it-1"]])
    with pytest.raises(ValidationError, match="guideline"):
        resolve_flag(flag=flag, actor=sme, action="publish_guideline", rationale="x")
    resolution = resolve_flag(
        flag=flag,
        actor=sme,
        action="publish_guideline",
        rationale="dents vs scratches",
        guideline_text="A dent is round; a scratch is a line.",
    )
    guideline = resolution.guideline
    assert guideline.version == 2 and guideline.published_by == sme
    assert list(guideline.example_items.all()) == [labeled["it-1"]]
    event = last_event("guideline.published")
    assert event.actor_id == sme.pk and event.reason == "dents vs scratches"
    flag_event = assert_recorded("flag.resolved", sme, "dents vs scratches")
    assert flag_event.after["guideline_version"] == 2 and flag_event.after["previous_version"] == 1


def test_dismiss_closes_the_flag_with_an_event(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    resolve_flag(flag=flag, actor=sme, action="dismiss", rationale="known hard item")
    assert Flag.objects.get(pk=flag.pk).status == FlagStatus.DISMISSED
    event = assert_recorded("flag.dismissed", sme, "known hard item")
    assert event.after["status"] == "dismissed"


@pytest.mark.parametrize("rationale", ["", "   ", None])
def test_every_action_needs_a_rationale(project, labeled, run, sme, rationale):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    with pytest.raises(ValidationError, match="rationale"):
        resolve_flag(flag=flag, actor=sme, action="dismiss", rationale=rationale)


def test_a_labeler_cannot_resolve_in_the_service_either(project, labeled, run, labelers):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    with pytest.raises(PermissionDenied):
        resolve_flag(flag=flag, actor=labelers[0], action="dismiss", rationale="no")


def test_a_closed_flag_cannot_be_resolved_again(project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    resolve_flag(flag=flag, actor=sme, action="dismiss", rationale="fine")
    with pytest.raises(ValidationError, match="dismissed already"):
        resolve_flag(flag=flag, actor=sme, action="set_label", label="dent", rationale="x")


# --------------------------------------------------------------------------- REST
class HttpsApiClient(APIClient):
    """Every request over HTTPS, so the suite passes with DEBUG off (SSL redirect on)."""

    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


@pytest.fixture
def api():
    return HttpsApiClient()


def test_flag_list_is_ranked_paginated_and_filtered(api, project, labeled, run, sme):
    low = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    high = make_flag(project, run, FlagKind.MERGE_CLASSES, classes=["scratch", "dent"])
    Flag.objects.filter(pk=high.pk).update(impact=5.0)
    api.force_authenticate(sme)
    body = api.get(f"/api/v1/projects/{project.pk}/flags/?status=open").json()
    assert body["count"] == 2 and [f["id"] for f in body["results"]] == [high.pk, low.pk]
    first = body["results"][0]
    assert set(first) >= {
        "id", "kind", "status", "impact", "suggested_action", "evidence", "items", "classes",
        "labeler", "slice", "run",
    }  # fmt: skip
    assert first["classes"] == ["scratch", "dent"] and first["run"] == run.pk
    assert body["results"][1]["items"] == ["it-1"]
    only = api.get(f"/api/v1/projects/{project.pk}/flags/?kind=merge_classes").json()
    assert [f["id"] for f in only["results"]] == [high.pk]
    assert api.get(f"/api/v1/projects/{project.pk}/flags/?kind=nope").status_code == 400


def test_flag_list_query_count_does_not_grow_with_flags(
    api, project, labeled, run, sme, django_assert_max_num_queries
):
    for _ in range(12):
        make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(sme)
    with django_assert_max_num_queries(10):
        assert api.get(f"/api/v1/projects/{project.pk}/flags/").status_code == 200


def test_flag_detail_shows_every_label_with_labeler_version_and_comment(
    api, project, labeled, run, viewer
):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(viewer)
    body = api.get(f"/api/v1/flags/{flag.pk}/").json()
    labels = body["item_details"][0]["labels"]
    assert [(x["labeler"], x["value"]) for x in labels] == [
        ("labeler1", "scratch"), ("labeler2", "dent"), ("labeler3", "scratch"),
    ]  # fmt: skip
    assert all(x["guideline_version"] == 1 and "comment" in x for x in labels)


def test_resolve_over_rest(api, project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(sme)
    response = api.post(
        f"/api/v1/flags/{flag.pk}/resolve/",
        {"action": "set_label", "label": "dent", "rationale": "round shading", "items": ["it-1"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["flag"]["status"] == "resolved"
    assert body["resolution"]["label"] == "dent" and body["resolution"]["items"] == ["it-1"]


def test_resolve_without_rationale_is_400(api, project, labeled, run, sme):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(sme)
    response = api.post(f"/api/v1/flags/{flag.pk}/resolve/", {"action": "dismiss"}, format="json")
    assert response.status_code == 400
    assert "rationale" in response.json()["detail"]


def test_mark_borderline_without_class_is_400_with_a_clear_message(api, project, labeled, run, sme):
    LabelClass.objects.filter(project=project, is_borderline=True).update(is_borderline=False)
    flag = make_flag(project, run, FlagKind.BORDERLINE, items=[labeled["it-2"]])
    api.force_authenticate(sme)
    response = api.post(
        f"/api/v1/flags/{flag.pk}/resolve/",
        {"action": "mark_borderline", "rationale": "faint"},
        format="json",
    )
    assert response.status_code == 400
    assert "add one" in response.json()["detail"]


def test_labeler_cannot_resolve_or_read_flags(api, project, labeled, run, labelers):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(labelers[0])
    response = api.post(
        f"/api/v1/flags/{flag.pk}/resolve/",
        {"action": "dismiss", "rationale": "mine"},
        format="json",
    )
    assert response.status_code == 403
    assert api.get(f"/api/v1/projects/{project.pk}/flags/").status_code == 403
    assert Flag.objects.get(pk=flag.pk).status == FlagStatus.OPEN


def test_viewer_reads_flags_but_cannot_resolve(api, project, labeled, run, viewer):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(viewer)
    assert api.get(f"/api/v1/projects/{project.pk}/flags/").status_code == 200
    assert api.get(f"/api/v1/flags/{flag.pk}/").status_code == 200
    response = api.post(
        f"/api/v1/flags/{flag.pk}/resolve/", {"action": "dismiss", "rationale": "x"}, format="json"
    )
    assert response.status_code == 403


def test_non_member_gets_404(api, project, labeled, run, make_user):
    flag = make_flag(project, run, FlagKind.ITEM_DISAGREEMENT, items=[labeled["it-1"]])
    api.force_authenticate(make_user("stranger"))
    assert api.get(f"/api/v1/flags/{flag.pk}/").status_code == 404
    assert api.get(f"/api/v1/projects/{project.pk}/flags/").status_code == 404


# --------------------------------------------------------------------------- normalization
@pytest.fixture
def speech(manager, labelers):
    project = services.create_project(
        name="Calls", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    for user in labelers:
        services.set_membership(project=project, user=user, role=Role.LABELER)
    texts = [
        ("c-1", ["Umm... yes please", "Um, yes please", "umm yes please"]),
        ("c-2", ["No thanks", "No thanks", "no thanks..."]),
    ]
    for ext, values in texts:
        item = Item.objects.create(project=project, external_id=ext, kind=PayloadKind.TEXT)
        for user, value in zip(labelers, values, strict=True):
            services.submit_annotation(item=item, labeler=user, value=value)
    return project


RULES = [
    {"find": "umm", "replace": "um", "case_sensitive": False, "whole_word": True},
    {"find": "...", "replace": ","},
]


def test_normalization_preview_lists_changes_and_agreement(speech):
    preview = preview_normalization(speech, rules=RULES)
    assert preview["n_texts"] == 6 and preview["n_changed"] == 3
    changes = {(c["ref"]["item"], c["before"]): c["after"] for c in preview["changes"]}
    assert changes[("c-1", "Umm... yes please")] == "um, yes please"
    assert changes[("c-2", "no thanks...")] == "no thanks,"
    assert [r["n_texts"] for r in preview["per_rule"]] == [2, 2]
    agreement = preview["agreement"]
    assert (
        agreement["these_rules"]["percent_agreement"]
        > agreement["current_rules"]["percent_agreement"]
    )


def test_normalization_rules_are_versioned_events(speech, manager):
    assert current_normalization_rules(speech) == []
    first = publish_normalization(
        project=speech, rules=RULES[:1], actor=manager, rationale="one filler spelling"
    )
    second = publish_normalization(
        project=speech, rules=RULES, actor=manager, rationale="ellipsis is a comma"
    )
    assert (first["version"], second["version"]) == (1, 2)
    assert [r["find"] for r in current_normalization_rules(speech)] == ["umm", "..."]
    assert current_normalization(speech)["version"] == 2
    # the table is the state; the event beside each row records the change
    rows = TranscriptRuleSet.objects.filter(project=speech).order_by("version")
    assert [(r.version, r.rationale, r.created_by_id) for r in rows] == [
        (1, "one filler spelling", manager.pk),
        (2, "ellipsis is a comma", manager.pk),
    ]
    event = assert_recorded("normalization.published", manager, "ellipsis is a comma")
    assert event.before["version"] == 1 and event.after["version"] == 2
    # agreement compares transcripts after them (then case, punctuation, whitespace)
    texts = normalized_transcripts(["Umm... yes please"], project=speech)
    assert texts == ["um yes please"]


def test_normalization_rejects_bad_rules_and_classification_projects(speech, project, manager):
    with pytest.raises(ValidationError, match="rule 1"):
        preview_normalization(speech, rules=[{"find": "(", "regex": True}])
    with pytest.raises(ValidationError, match="transcription"):
        preview_normalization(project, rules=RULES)


def test_normalization_over_rest(api, speech, manager, labelers):
    api.force_authenticate(manager)
    url = f"/api/v1/projects/{speech.pk}/normalization/"
    preview = api.post(url + "preview/", {"rules": RULES}, format="json")
    assert preview.status_code == 200 and preview.json()["n_changed"] == 3
    assert api.post(url, {"rules": RULES}, format="json").status_code == 400  # no rationale
    assert (
        api.post(url, {"rules": RULES, "rationale": "house style"}, format="json").status_code
        == 201
    )
    assert api.get(url).json()["version"] == 1
    api.force_authenticate(labelers[0])
    assert api.post(url, {"rules": RULES, "rationale": "x"}, format="json").status_code == 403


def test_agreement_history_over_rest(api, project, labeled, sme):
    first = run_agreement(project)
    AgreementRun.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    run_agreement(project)
    api.force_authenticate(sme)
    body = api.get(f"/api/v1/projects/{project.pk}/agreement-history/").json()
    assert [r["run"] for r in body["runs"]][0] == first.pk
    assert body["before_after"]["delta"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- engine
FIGURES = ("overall", "per_class", "per_labeler", "pairwise", "confusion", "hlp", "slices")


def test_merge_round_trip_through_the_agreement_engine(demo_project):
    """The same loop with the engine's own run (eager), where it exists."""
    sme = User.objects.get(username="sme")

    def engine_run():
        params = {"level": "nominal", "slices": ["camera"], "n_bootstrap": 20, "seed": 0}
        params = validate_params(demo_project, params)
        run = AgreementRun.objects.create(project=demo_project, params=params)
        run = execute_agreement_run(run.pk)
        assert run.status == RunStatus.SUCCEEDED, run.error
        return run

    before = engine_run()
    generate_flags(before)
    merge = Flag.objects.filter(run=before, kind="merge_classes").order_by("-impact").first()
    resolve_flag(
        flag=merge, actor=sme, action="merge_classes", into="deep_scratch", rationale="same"
    )
    merged = engine_run()
    alpha = lambda r: r.results["overall"]["krippendorff_alpha"]  # noqa: E731
    assert alpha(merged) > alpha(before)
    resolve_flag(flag=merge, actor=sme, action="unmerge_classes", rationale="undo")
    undone = engine_run()
    for key in FIGURES:
        assert undone.results.get(key) == before.results.get(key), key


def test_transcription_flags_name_the_transcripts(speech, labelers):
    run = run_agreement_transcription(speech)
    flags = generate_flags(run)
    assert {f.kind for f in flags} == {"item_disagreement"}
    flag = next(f for f in flags if f.items.get().external_id == "c-1")
    values = {x["labeler"]: x["value"] for x in flag.evidence["labels"]}
    assert values["labeler1"] == "Umm... yes please"
    assert "different transcripts" in flag.summary
    assert not flag.classes.exists()


def run_agreement_transcription(project) -> AgreementRun:
    now = timezone.now()
    return AgreementRun.objects.create(
        project=project, status=RunStatus.SUCCEEDED, results={}, started_at=now, finished_at=now
    )


def test_demo_loop_merge_borderline_guideline_then_agreement_rises(demo_project):
    """The issue's "done when": from the top flags, merge the confusable classes, mark
    the borderline items, publish a clarified guideline, run again — each step recorded."""
    sme = User.objects.get(username="sme")
    first = run_agreement(demo_project)
    generate_flags(first)
    queue = list(flag_queue(demo_project))
    merge = next(f for f in queue if f.kind == "merge_classes")
    borderline = next(f for f in queue if f.kind == "borderline")
    camera = next(f for f in queue if f.kind == "unclear_slice")

    resolve_flag(
        flag=merge, actor=sme, action="merge_classes", into="deep_scratch",
        rationale="depth is not visible in a photo",
    )  # fmt: skip
    resolve_flag(flag=borderline, actor=sme, action="mark_borderline", rationale="faint marks")
    resolve_flag(
        flag=camera,
        actor=sme,
        action="publish_guideline",
        guideline_text="Dark images (cam-4): raise the exposure before judging; if a mark "
        "is not visible at 100% zoom, choose Borderline.",
        rationale="cam-4 is under-exposed",
    )
    second = run_agreement(demo_project)
    generate_flags(second)

    history = agreement_history(demo_project)
    assert history[-1]["krippendorff_alpha"] > history[0]["krippendorff_alpha"]
    assert history[-1]["guideline_version"] == 3
    assert history[-1]["merges"] == [["shallow_scratch", "deep_scratch"]]
    decided = set(
        ItemDecision.objects.filter(label_class__key="borderline").values_list(
            "item__external_id", flat=True
        )
    )
    assert decided == set(borderline.items.values_list("external_id", flat=True))
    # borderline items are decided: not asked again at item level
    again = Flag.objects.filter(
        run=second, kind="item_disagreement", items__external_id__in=decided
    )
    assert not again.exists()
    verbs = set(
        Event.objects.filter(project=demo_project, actor=sme).values_list("verb", flat=True)
    )
    assert {
        "class.merged", "item.marked_borderline", "guideline.published", "flag.resolved",
    } <= verbs  # fmt: skip
    assert "item.gold_set" not in verbs  # an SME decision is not ground truth
