"""The data manager's REST endpoints (issue 12): one page of items, filtered and sorted on
the server; bulk actions on a selection or a filter; CSV export. Expected rows are
computed in the test from how the data was made, not from the code under test."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from consistency.models import AgreementRun, Consensus, ConsensusStatus, RunStatus
from labeling import services
from labeling.models import Assignment, Item, PayloadKind, Tag

pytestmark = pytest.mark.django_db

N = 30


def factory(i: int) -> str:
    return ["A", "B", "C"][i % 3]


@pytest.fixture
def table(project, labelers):
    """30 text items; items 0..19 labeled by three labelers (labeler3 says dent on every
    fourth item, the others scratch); a run whose majority consensus has support 2/3
    where labeler3 dissented, else 1; items 20..29 unlabeled."""
    items = []
    for i in range(N):
        items.append(
            Item.objects.create(
                project=project,
                external_id=f"it-{i:02d}",
                kind=PayloadKind.TEXT,
                text=f"text {i}",
                metadata={"factory": factory(i), "line": i % 4, "camera": {"gain": i}},
            )
        )
    for i in range(20):
        for j, labeler in enumerate(labelers):
            value = "dent" if j == 2 and i % 4 == 0 else "scratch"
            services.submit_annotation(item=items[i], labeler=labeler, value=value)
    run = AgreementRun.objects.create(
        project=project, status=RunStatus.SUCCEEDED, finished_at=timezone.now()
    )
    scratch = project.classes.get(key="scratch")
    for i in range(20):
        split = i % 4 == 0
        Consensus.objects.create(
            run=run,
            item=items[i],
            method="majority",
            label_class=scratch,
            support=2 / 3 if split else 1.0,
            entropy=0.918 if split else 0.0,
            n_labels=3,
            status=ConsensusStatus.AGREED,
        )
    return {"project": project, "items": items, "run": run}


@pytest.fixture
def api(manager):
    client = APIClient()
    client.force_authenticate(manager)
    return client


def page(api, project, **params):
    url = reverse("api-data-manager-items", args=[project.pk])
    response = api.get(url, params, secure=True)
    assert response.status_code == 200, response.content
    return response.json()


def ids(data) -> list[str]:
    return [r["external_id"] for r in data["rows"]]


def test_first_page_counts_and_row_contents(api, table):
    data = page(api, table["project"], page_size=10)
    assert data["count"] == N and data["n_pages"] == 3
    assert ids(data) == [f"it-{i:02d}" for i in range(10)]
    first = data["rows"][0]  # it-00: labeler3 dissented
    assert first["n_labels"] == 3 and first["n_target"] == 3 and first["status"] == "complete"
    assert first["consensus"] == {
        "label": "scratch",
        "status": "agreed",
        "agreement": pytest.approx(2 / 3),
        "entropy": pytest.approx(0.918),
    }
    assert first["final"] == {"label": "scratch", "source": "consensus"}
    assert first["metadata"] == {"factory": "A", "line": "0", "camera.gain": "0"}
    assert data["run"]["id"] == table["run"].pk
    assert "factory" in data["metadata_keys"] and "camera" in data["metadata_keys"]


def test_metadata_and_disagreement_filters(api, table):
    data = page(api, table["project"], **{"metadata.factory": "B", "disagreement": "true"})
    want = [f"it-{i:02d}" for i in range(20) if factory(i) == "B" and i % 4 == 0]
    assert ids(data) == want and data["count"] == len(want)
    numeric = page(api, table["project"], **{"metadata.line": "3"})
    assert ids(numeric) == [f"it-{i:02d}" for i in range(N) if i % 4 == 3]


def test_status_labeler_class_and_search_filters(api, table, labelers):
    project = table["project"]
    assert page(api, project, status="unlabeled")["count"] == 10
    assert page(api, project, status="complete")["count"] == 20
    assert page(api, project, labeler=labelers[2].username)["count"] == 20
    assert ids(page(api, project, **{"class": "dent"})) == [
        f"it-{i:02d}" for i in range(20) if i % 4 == 0
    ]
    assert page(api, project, q="it-2")["count"] == 10  # it-20 .. it-29


def test_sorts_with_ties_by_id_and_missing_values_last(api, table):
    project = table["project"]
    by_id_desc = page(api, project, sort="-external_id", page_size=3)
    assert ids(by_id_desc) == ["it-29", "it-28", "it-27"]
    agreement = page(api, project, sort="agreement", page_size=N)
    split = [f"it-{i:02d}" for i in range(20) if i % 4 == 0]
    agreed = [f"it-{i:02d}" for i in range(20) if i % 4 != 0]
    unlabeled = [f"it-{i:02d}" for i in range(20, N)]
    assert ids(agreement) == split + agreed + unlabeled
    desc = page(api, project, sort="-agreement", page_size=N)
    # Descending reverses the ties too (ids descending); no run value stays last.
    assert ids(desc) == agreed[::-1] + split[::-1] + unlabeled[::-1]
    by_factory = page(api, project, sort="-metadata.factory", page_size=N)
    assert ids(by_factory) == sorted(
        (f"it-{i:02d}" for i in range(N)), key=lambda e: (factory(int(e[3:])), e), reverse=True
    )
    labels = page(api, project, sort="n_labels", page_size=12)
    assert ids(labels)[:10] == unlabeled


def test_dynamic_overlap_status_is_honoured(api, project, labelers):
    services.update_project(project=project, dynamic_overlap=True, min_overlap=2, max_overlap=3)
    agree = Item.objects.create(project=project, external_id="agree", kind="text", text="a")
    split = Item.objects.create(project=project, external_id="split", kind="text", text="b")
    for labeler, a, b in zip(
        labelers[:2], ("scratch", "scratch"), ("scratch", "dent"), strict=True
    ):
        services.submit_annotation(item=agree, labeler=labeler, value=a)
        services.submit_annotation(item=split, labeler=labeler, value=b)
    # Two agreeing labels complete an item at min_overlap 2; two disagreeing ones do not.
    assert ids(page(api, project, status="complete")) == ["agree"]
    assert ids(page(api, project, status="in_progress")) == ["split"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "secret"}, "sort"),
        ({"status": "done"}, "status"),
        ({"page_size": "5000"}, "page_size"),
        ({"metadata.bad key": "x"}, "metadata.bad key"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(api, table, params, field):
    url = reverse("api-data-manager-items", args=[table["project"].pk])
    response = api.get(url, params, secure=True)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_page_costs_the_same_queries_for_10_or_50_rows(api, table, django_assert_max_num_queries):
    url = reverse("api-data-manager-items", args=[table["project"].pk])
    with django_assert_max_num_queries(16):
        api.get(url, {"page_size": 50, "page": 1, "sort": "agreement"}, secure=True)


def test_bulk_tag_on_a_selection_and_on_a_filter(api, table):
    project = table["project"]
    url = reverse("api-data-manager-actions", args=[project.pk])
    chosen = [table["items"][i].pk for i in range(10)]
    answer = api.post(
        url, {"action": "tag", "tag": "night", "items": chosen}, format="json", secure=True
    )
    assert answer.status_code == 200 and answer.json()["n_changed"] == 10
    tag = Tag.objects.get(project=project, name="night")
    assert sorted(tag.items.values_list("pk", flat=True)) == sorted(chosen)
    by_filter = api.post(
        url,
        {"action": "untag", "tag": "night", "query": {"metadata.factory": "A"}},
        format="json",
        secure=True,
    )
    assert by_filter.status_code == 200
    left = sorted(tag.items.values_list("external_id", flat=True))
    assert left == [f"it-{i:02d}" for i in range(10) if factory(i) != "A"]


def test_bulk_relabel_sends_items_back(api, table):
    project = table["project"]
    url = reverse("api-data-manager-actions", args=[project.pk])
    answer = api.post(
        url,
        {"action": "relabel", "reason": "guideline changed", "query": {"disagreement": "true"}},
        format="json",
        secure=True,
    )
    assert answer.status_code == 200
    n_split = len([i for i in range(20) if i % 4 == 0])
    assert answer.json()["n_items"] == n_split
    assert Assignment.objects.filter(project=project, reason="relabel").count() == 3 * n_split
    missing_reason = api.post(url, {"action": "relabel", "items": [1]}, format="json", secure=True)
    assert missing_reason.status_code == 400


def test_labelers_may_not_read_the_table_or_act(table, labelers):
    client = APIClient()
    client.force_authenticate(labelers[0])
    project = table["project"]
    assert (
        client.get(reverse("api-data-manager-items", args=[project.pk]), secure=True).status_code
        == 403
    )
    assert (
        client.post(
            reverse("api-data-manager-actions", args=[project.pk]),
            {"action": "tag", "tag": "x", "items": [1]},
            format="json",
            secure=True,
        ).status_code
        == 403
    )


def test_export_of_a_selection_and_of_a_filter(api, table):
    project = table["project"]
    url = reverse("api-data-manager-export", args=[project.pk])
    chosen = [table["items"][i].pk for i in (0, 1, 25)]
    response = api.get(url, {"ids": ",".join(map(str, chosen))}, secure=True)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["external_id"] for r in rows] == ["it-00", "it-01", "it-25"]
    assert rows[0]["consensus"] == "scratch" and rows[0]["final_source"] == "consensus"
    assert rows[2]["status"] == "unlabeled" and rows[2]["metadata.factory"] == "B"
    filtered = api.get(url, {"metadata.factory": "C"}, secure=True)
    got = [r["external_id"] for r in csv.DictReader(io.StringIO(filtered.content.decode()))]
    assert got == [f"it-{i:02d}" for i in range(N) if factory(i) == "C"]


def test_adding_examples_publishes_the_next_guideline_with_them(api, table):
    project = table["project"]
    url = reverse("api-data-manager-actions", args=[project.pk])
    chosen = [table["items"][i].pk for i in (3, 5)]
    answer = api.post(url, {"action": "add_examples", "items": chosen}, format="json", secure=True)
    assert answer.status_code == 200
    latest = project.guidelines.order_by("-version").first()
    assert answer.json()["guideline_version"] == latest.version == 2
    assert latest.text == "Label the most severe visible defect."
    assert sorted(latest.example_items.values_list("pk", flat=True)) == sorted(chosen)
