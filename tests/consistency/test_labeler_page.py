"""A labeler's page (issue 12, people): throughput per week and agreement / accuracy per
run, as each run measured them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from consistency.labeler_page import labeler_history, weekly_throughput
from consistency.models import AgreementRun, RunStatus
from labeling import services
from labeling.models import Annotation, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(project, labelers):
    ana = labelers[0]
    monday = datetime(2026, 11, 2, 9, tzinfo=UTC)
    items = [
        Item.objects.create(project=project, external_id=f"i{n}", kind="text", text="t")
        for n in range(5)
    ]
    # 3 labels in the week of 2 Nov (4 s, 6 s, unmeasured), 2 in the week of 9 Nov (10 s).
    for n, (offset, ms) in enumerate([(0, 4000), (1, 6000), (2, None), (7, 10000), (8, 10000)]):
        a = services.submit_annotation(item=items[n], labeler=ana, value="scratch")
        Annotation.objects.filter(pk=a.pk).update(
            created_at=monday + timedelta(days=offset), time_spent_ms=ms
        )
    for k, (agree, gold) in enumerate([(0.8, None), (0.9, 0.75)]):
        AgreementRun.objects.create(
            project=project,
            status=RunStatus.SUCCEEDED,
            finished_at=monday + timedelta(days=10 + k),
            results={
                "per_labeler": [
                    {
                        "labeler": ana.username,
                        "n": 5,
                        "agreement_with_consensus": agree,
                        "cohen_kappa_mean": 0.5,
                        "accuracy_vs_gold": gold,
                        "reasons": {} if gold else {"accuracy_vs_gold": "no ground truth"},
                    },
                    {"labeler": "someone-else", "n": 1, "agreement_with_consensus": 0.1},
                ]
            },
        )
    return project, ana


def test_throughput_per_week_and_mean_time(measured):
    project, ana = measured
    weeks = weekly_throughput(project, ana)
    assert [(w["week"].date().isoformat(), w["n"], w["mean_seconds"]) for w in weeks] == [
        ("2026-11-02", 3, 5.0),
        ("2026-11-09", 2, 10.0),
    ]


def test_agreement_and_accuracy_over_runs(measured):
    project, ana = measured
    history = labeler_history(project, ana.username)
    assert [(h["agreement_with_consensus"], h["accuracy_vs_gold"]) for h in history] == [
        (0.8, None),
        (0.9, 0.75),
    ]
    assert history[0]["reasons"] == {"accuracy_vs_gold": "no ground truth"}


def test_the_page_for_managers_not_labelers(measured, client, manager, labelers):
    project, ana = measured
    url = reverse("labeler-page", args=[project.pk, ana.username])
    client.force_login(manager)
    html = client.get(url, secure=True).content.decode()
    assert 'data-testid="labeler-runs"' in html and "0.750" in html and "0.900" in html
    client.force_login(labelers[1])
    assert client.get(url, secure=True).status_code == 403
