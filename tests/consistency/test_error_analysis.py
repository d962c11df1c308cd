"""Error analysis of a model run: the prioritisation table, tag statistics, per-class
metrics -- every figure against a hand-worked value."""

from __future__ import annotations

import pytest
from django.utils import timezone

from consistency import model_runs
from labeling import services as labeling_services
from labeling.models import (
    Annotation,
    GoldLabel,
    GoldSource,
    Item,
    ItemDecision,
    LabelClass,
    PayloadKind,
    Role,
    Tag,
)

pytestmark = pytest.mark.django_db


def build_project(manager, make_user, name="Keyword spotting"):
    project = labeling_services.create_project(
        name=name,
        classes=[{"key": "yes", "name": "Yes"}, {"key": "no", "name": "No"}],
        overlap=2,
        created_by=manager,
    )
    humans = [make_user(f"{name[:4]}-h{i}") for i in (1, 2)]
    expert = make_user(f"{name[:4]}-expert")
    for user in (*humans, expert):
        labeling_services.set_membership(project=project, user=user, role=Role.LABELER)
    return project, humans, expert


def add_items(project, rows, humans, expert=None, *, gold_source=GoldSource.IMPORT):
    """rows: (external id, tags, metadata, truth, (label h1, label h2), prediction).

    Every item gets ground truth ``truth`` set by ``expert`` (whose own label, equal to
    the truth, is on the item too) unless truth is None.
    """
    classes = {c.key: c for c in LabelClass.objects.filter(project=project)}
    tags = {}
    annotations = []
    predictions = []
    now = timezone.now()
    for external_id, item_tags, metadata, truth, labels, predicted in rows:
        item = Item.objects.create(
            project=project,
            external_id=external_id,
            kind=PayloadKind.TEXT,
            text=external_id,
            metadata=metadata,
        )
        for tag in item_tags:
            if tag not in tags:
                tags[tag] = Tag.objects.create(project=project, name=tag)
            item.tags.add(tags[tag])
        for labeler, value in zip(humans, labels, strict=True):
            annotations.append(
                Annotation(
                    project=project,
                    item=item,
                    labeler=labeler,
                    label_class=classes[value],
                    created_at=now,
                )
            )
        if truth is not None:
            GoldLabel.objects.create(
                item=item,
                label_class=classes[truth],
                source=gold_source,
                created_by=expert,
                labeler=expert,
            )
            if expert is not None:
                annotations.append(
                    Annotation(
                        project=project,
                        item=item,
                        labeler=expert,
                        label_class=classes[truth],
                        created_at=now,
                    )
                )
        if predicted is not None:
            predictions.append({"item": external_id, "value": predicted})
    Annotation.objects.bulk_create(annotations)
    return predictions


def other(value):
    return "no" if value == "yes" else "yes"


# The speech table of issue 10, as a project of 100 items with ground truth, two human
# labels each (plus the ground-truth labeler's own), and one prediction each:
#
# tag            items  share  model right  accuracy  human labels right  HLP      gap      gain
# clean_speech     60   0.60      57         0.95       117 / 120         0.975    0.025    0.015
# people_noise     30   0.30      24         0.80        54 / 60          0.9      0.1      0.03
# low_bandwidth     6   0.06       5         5/6          8 / 12          2/3     -1/6      0
# car_noise         4   0.04       3         null (4 items < 5)            null     null     null
# (no tag)          0   0          -         null                         null     null     null
SPEECH = {  # tag: (items, model wrong, human labels wrong)
    "clean_speech": (60, 3, 3),
    "people_noise": (30, 6, 6),
    "low_bandwidth": (6, 1, 4),
    "car_noise": (4, 1, 1),
}


def speech_project(manager, make_user):
    project, humans, expert = build_project(manager, make_user)
    rows = []
    for tag, (n, model_wrong, human_wrong) in SPEECH.items():
        for i in range(n):
            # Wrong human labels: h1 on the first items, then h2 (never both on one item
            # when human_wrong <= n).
            h1 = "no" if i < human_wrong else "yes"
            h2 = "no" if human_wrong > n and i < human_wrong - n else "yes"
            predicted = "no" if i < model_wrong else "yes"
            rows.append((f"{tag}-{i}", [tag], {}, "yes", (h1, h2), predicted))
    predictions = add_items(project, rows, humans, expert)
    run = model_runs.upload_model_run(
        project=project, name="speech-v1", predictions=predictions, created_by=manager
    )
    return project, run


def row(table, key, value):
    found = [r for r in table if r["key"] == key and r["value"] == value]
    assert len(found) == 1, table
    return found[0]


def test_speech_table_equals_the_hand_worked_figures_in_order_of_potential_gain(manager, make_user):
    _, run = speech_project(manager, make_user)
    analysis = model_runs.error_analysis(run)
    table = analysis["prioritisation"]
    assert [(r["key"], r["value"]) for r in table] == [
        ("tag", "people_noise"),
        ("tag", "clean_speech"),
        ("tag", "low_bandwidth"),
        ("tag", "car_noise"),
        ("tag", "(no tag)"),
    ]
    people = row(table, "tag", "people_noise")
    assert people["n_items"] == 30 and people["share"] == pytest.approx(0.3)
    assert people["model_accuracy"] == pytest.approx(0.8)
    assert people["hlp"] == pytest.approx(0.9) and people["hlp_method"] == "gold"
    assert people["gap_to_hlp"] == pytest.approx(0.1)
    assert people["potential_gain"] == pytest.approx(0.03)

    clean = row(table, "tag", "clean_speech")
    assert clean["n_items"] == 60 and clean["share"] == pytest.approx(0.6)
    assert clean["model_accuracy"] == pytest.approx(0.95)
    assert clean["hlp"] == pytest.approx(117 / 120)
    assert clean["gap_to_hlp"] == pytest.approx(0.025)
    assert clean["potential_gain"] == pytest.approx(0.015)

    low = row(table, "tag", "low_bandwidth")
    assert low["n_items"] == 6 and low["share"] == pytest.approx(0.06)
    assert low["model_accuracy"] == pytest.approx(5 / 6)
    assert low["hlp"] == pytest.approx(8 / 12)
    assert low["gap_to_hlp"] == pytest.approx(-1 / 6)  # the model is above HLP here
    assert low["potential_gain"] == 0.0

    car = row(table, "tag", "car_noise")
    assert car["n_items"] == 4 and car["share"] == pytest.approx(0.04)
    assert car["model_accuracy"] is None and car["potential_gain"] is None
    assert "4 scored items" in car["reasons"]["model_accuracy"]
    assert "too few items" in car["reasons"]["model_accuracy"]
    assert car["hlp"] is None and "4 items" in car["reasons"]["hlp"]

    untagged = row(table, "tag", "(no tag)")
    assert untagged["n_items"] == 0 and untagged["model_accuracy"] is None

    assert analysis["overall"]["n_items"] == 100
    assert analysis["overall"]["model_accuracy"] == pytest.approx(89 / 100)
    # The ground-truth labeler's own labels (all equal to the truth) are left out: with
    # them, clean speech would be at 177 / 180.
    assert analysis["hlp_basis"]["n_ground_truth_items"] == 100


def test_hlp_without_ground_truth_is_pairwise_on_the_slice(manager, make_user):
    """No ground truth: reference = nothing from gold, so set an SME decision as the
    final label (used for the model's accuracy, never as a reference for HLP)."""
    project, humans, _ = build_project(manager, make_user, name="Pairwise")
    rows = [
        # ext, tags, metadata, truth, (h1, h2), prediction
        (f"a{i}", [], {"site": "north"}, None, ("yes", "yes" if i < 4 else "no"), "yes")
        for i in range(6)
    ] + [(f"b{i}", [], {"site": "south"}, None, ("no", "no"), "no") for i in range(5)]
    predictions = add_items(project, rows, humans)
    # SME decisions on every item: the model's reference, not a ground truth for HLP.
    for external_id, *_ in rows:
        ItemDecision.objects.create(
            item=Item.objects.get(project=project, external_id=external_id),
            label_class=LabelClass.objects.get(project=project, key="yes"),
        )
    run = model_runs.upload_model_run(
        project=project, name="m", predictions=predictions, created_by=manager
    )
    analysis = model_runs.error_analysis(run)
    north = row(analysis["prioritisation"], "site", "north")
    # pairwise: 4 items agree, 2 disagree -> mean of per-item agreement = 4/6
    assert north["hlp"] == pytest.approx(4 / 6) and north["hlp_method"] == "pairwise"
    assert north["model_accuracy"] == 1.0  # predicted yes, SME said yes
    assert north["gap_to_hlp"] == pytest.approx(4 / 6 - 1)
    south = row(analysis["prioritisation"], "site", "south")
    assert south["hlp"] == 1.0 and south["model_accuracy"] == 0.0
    assert south["potential_gain"] == pytest.approx(1.0 * 5 / 11)
    assert analysis["prioritisation"][0]["value"] == "south"
    assert analysis["hlp_basis"]["n_ground_truth_items"] == 0


# Tag fractions, hand-counted. Six items, truth "yes"; the model is wrong on t1, t3, t5.
#   item  tags          model
#   t1    car, night    wrong
#   t2    car           right
#   t3    night         wrong
#   t4    car, night    right
#   t5    -             wrong
#   t6    -             right
# errors: 3.  car: items t1 t2 t4 (3/6 of data), errors t1 (1/3 of errors, rate 1/3).
#            night: items t1 t3 t4 (3/6), errors t1 t3 (2/3 of errors, rate 2/3).
TAGGED = [
    ("t1", ["car", "night"], "no"),
    ("t2", ["car"], "yes"),
    ("t3", ["night"], "no"),
    ("t4", ["car", "night"], "yes"),
    ("t5", [], "no"),
    ("t6", [], "yes"),
]


def test_tag_fractions_on_items_carrying_two_tags(manager, make_user):
    project, humans, expert = build_project(manager, make_user, name="Tags")
    rows = [(e, tags, {}, "yes", ("yes", "yes"), p) for e, tags, p in TAGGED]
    predictions = add_items(project, rows, humans, expert)
    run = model_runs.upload_model_run(
        project=project, name="m", predictions=predictions, created_by=manager
    )
    analysis = model_runs.error_analysis(run)
    stats = {t["tag"]: t for t in analysis["tags"]}
    assert set(stats) == {"car", "night"}
    car, night = stats["car"], stats["night"]
    assert (car["n_items"], car["n_errors"]) == (3, 1)
    assert car["share_of_data"] == 0.5
    assert car["share_of_errors"] == pytest.approx(1 / 3)
    assert car["error_rate"] == pytest.approx(1 / 3)
    assert (night["n_items"], night["n_errors"]) == (3, 2)
    assert night["share_of_data"] == 0.5
    assert night["share_of_errors"] == pytest.approx(2 / 3)
    assert night["error_rate"] == pytest.approx(2 / 3)
    # Items with two tags count in each slice of the table too.
    assert row(analysis["prioritisation"], "tag", "car")["n_items"] == 3
    assert row(analysis["prioritisation"], "tag", "night")["n_items"] == 3


def test_per_class_metrics_and_confusion_match_scikit_learn(manager, make_user):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    project, humans, expert = build_project(manager, make_user, name="Classes")
    truth = ["yes", "yes", "yes", "no", "no", "yes", "no", "yes"]
    predicted = ["yes", "no", "yes", "no", "yes", "yes", "no", "no"]
    rows = [
        (f"c{i}", [], {}, t, ("yes", "yes"), p)
        for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
    ]
    predictions = add_items(project, rows, humans, expert)
    run = model_runs.upload_model_run(
        project=project, name="m", predictions=predictions, created_by=manager
    )
    analysis = model_runs.error_analysis(run)
    labels = analysis["confusion"]["classes"]
    assert labels == ["yes", "no"]
    expected = confusion_matrix(truth, predicted, labels=labels).tolist()
    assert analysis["confusion"]["counts"] == expected == [[3, 2], [1, 2]]
    p, r, f, support = precision_recall_fscore_support(truth, predicted, labels=labels)
    for i, entry in enumerate(analysis["per_class"]):
        assert entry["class"] == labels[i]
        assert entry["precision"] == pytest.approx(p[i])
        assert entry["recall"] == pytest.approx(r[i])
        assert entry["f1"] == pytest.approx(f[i])
        assert entry["support"] == support[i]
    # Hand check of one: "yes" precision 3/4, recall 3/5.
    assert analysis["per_class"][0]["precision"] == 0.75
    assert analysis["per_class"][0]["recall"] == 0.6


# Comparison, hand-counted. Model A is the run compared, B the other (the candidate).
#   item  site   truth  A    B    A right  B right
#   n1    north  yes    yes  yes  yes      yes
#   n2    north  yes    no   yes  no       yes
#   n3    north  no     no   yes  yes      no
#   n4    north  no     yes  yes  no       no    (agree, both wrong)
#   s1    south  yes    yes  yes  yes      yes
#   s2    south  yes    yes  no   yes      no
#   s3    south  no     no   no   yes      yes
#   s4    south  -      yes  no   -        -     (no reference: disagrees, not scored)
#   s5    south  yes    yes  -    -        -     (only A predicted it)
# predicted by both: 8, they differ on n2 n3 s2 s4 -> disagreement 4/8.
# scored by both: 7.  A right 5/7, B right 4/7, difference -1/7.
# north: A 2/4, B 2/4, difference 0.  south (s1-s3): A 3/3, B 2/3, difference -1/3.
# one right, one wrong: n2, n3, s2.
COMPARED = [
    ("n1", "north", "yes", "yes", "yes"),
    ("n2", "north", "yes", "no", "yes"),
    ("n3", "north", "no", "no", "yes"),
    ("n4", "north", "no", "yes", "yes"),
    ("s1", "south", "yes", "yes", "yes"),
    ("s2", "south", "yes", "yes", "no"),
    ("s3", "south", "no", "no", "no"),
    ("s4", "south", None, "yes", "no"),
    ("s5", "south", "yes", "yes", None),
]


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    client.defaults["wsgi.url_scheme"] = "https"
    return client


def compared_runs(manager, make_user, name="Compare"):
    project, humans, _ = build_project(manager, make_user, name=name)
    rows = [(e, [], {"site": site}, t, ("yes", "yes"), a) for e, site, t, a, _ in COMPARED]
    run_a = model_runs.upload_model_run(
        project=project,
        name="current",
        predictions=add_items(project, rows, humans),
        created_by=manager,
    )
    run_b = model_runs.upload_model_run(
        project=project,
        name="candidate",
        predictions=[{"item": e, "value": b} for e, _, _, _, b in COMPARED if b],
        created_by=manager,
    )
    return project, run_a, run_b


def test_comparison_of_two_runs_equals_a_hand_count(manager, make_user):
    _, run_a, run_b = compared_runs(manager, make_user)
    client = client_for(manager)
    response = client.get(f"/api/v1/model-runs/{run_a.pk}/compare/{run_b.pk}/", secure=True)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["n_common"], body["n_scored"]) == (8, 7)
    assert body["disagreement_share"] == 0.5
    overall = body["overall"]
    assert overall["model_accuracy"] == pytest.approx(5 / 7)
    assert overall["other_accuracy"] == pytest.approx(4 / 7)
    assert overall["difference"] == pytest.approx(-1 / 7)
    slices = {(s["key"], s["value"]): s for s in body["slices"]}
    north, south = slices[("site", "north")], slices[("site", "south")]
    assert (north["n_items"], north["model_accuracy"], north["other_accuracy"]) == (4, 0.5, 0.5)
    assert north["difference"] == 0.0
    assert south["n_items"] == 3 and south["model_accuracy"] == 1.0
    assert south["other_accuracy"] == pytest.approx(2 / 3)
    assert south["difference"] == pytest.approx(-1 / 3)
    items = body["items"]
    assert items["count"] == 3
    assert [(r["item"], r["model_correct"], r["other_correct"]) for r in items["results"]] == [
        ("n2", False, True),
        ("n3", True, False),
        ("s2", True, False),
    ]
    assert items["results"][0] == {
        "item": "n2",
        "reference": "yes",
        "final_label_source": "ground_truth",
        "model": "no",
        "other": "yes",
        "model_correct": False,
        "other_correct": True,
    }

    paged = client.get(
        f"/api/v1/model-runs/{run_a.pk}/compare/{run_b.pk}/?page_size=2&page=2", secure=True
    ).json()["items"]
    assert paged["count"] == 3 and [r["item"] for r in paged["results"]] == ["s2"]
    assert paged["previous"] is not None and paged["next"] is None

    # The other way round, the difference changes sign.
    back = client.get(f"/api/v1/model-runs/{run_b.pk}/compare/{run_a.pk}/", secure=True).json()
    assert back["overall"]["difference"] == pytest.approx(1 / 7)


def test_comparing_with_a_run_of_another_project_is_a_404(manager, make_user):
    _, run_a, _ = compared_runs(manager, make_user)
    _, run_c, _ = compared_runs(manager, make_user, name="Elsewhere")
    # The manager manages both projects (each run is readable), and still cannot mix them.
    assert (
        client_for(manager).get(f"/api/v1/model-runs/{run_c.pk}/", secure=True).status_code == 200
    )
    response = client_for(manager).get(
        f"/api/v1/model-runs/{run_a.pk}/compare/{run_c.pk}/", secure=True
    )
    assert response.status_code == 404


def test_the_model_as_one_more_labeler_and_the_two_conventions_warning(manager, make_user):
    """h1 and h2 agree on 2 of 4 items with balanced classes: kappa 0 (both humans' mean
    kappa is 0, the spread [0, 0]). The model copies h1: kappa 1 with h1, 0 with h2,
    mean 0.5 -- above the humans' spread. With a conventions warning on the latest run,
    the payload says why that is not "better than humans"."""
    from consistency.models import AgreementRun, RunStatus

    project, humans, _ = build_project(manager, make_user, name="Conventions")
    h1 = ["yes", "no", "yes", "no"]
    h2 = ["yes", "no", "no", "yes"]
    rows = [(f"k{i}", [], {}, None, (h1[i], h2[i]), h1[i]) for i in range(4)]
    predictions = add_items(project, rows, humans)
    AgreementRun.objects.create(
        project=project,
        status=RunStatus.SUCCEEDED,
        finished_at=timezone.now(),
        results={"hlp": {"value": 0.5, "warnings": ["classes 'yes' and 'no': two conventions"]}},
    )
    run = model_runs.upload_model_run(
        project=project, name="m", predictions=predictions, created_by=manager
    )
    out = model_runs.error_analysis(run)["model_as_labeler"]
    kappas = {
        e["labeler"]: (e["n_shared"], e["agreement"], e["cohen_kappa"]) for e in out["per_labeler"]
    }
    assert kappas == {humans[0].username: (4, 1.0, 1.0), humans[1].username: (4, 0.5, 0.0)}
    assert out["model_mean_kappa"] == 0.5
    assert out["human_spread"] == [0.0, 0.0] and out["position"] == "above"
    assert len(out["warnings"]) == 2 and "two conventions" in out["warnings"][1]
    assert out["consensus"]["cohen_kappa"] is None and out["consensus"]["reasons"]


def test_the_model_run_page_lists_slices_by_potential_gain_and_sorts_and_compares(
    client, manager, make_user
):
    project, run = speech_project(manager, make_user)
    other = model_runs.upload_model_run(
        project=project,
        name="candidate",
        predictions=[{"item": "clean_speech-0", "value": "yes"}],
        created_by=manager,
    )
    client.force_login(manager)
    page = client.get(f"/model-runs/{run.pk}/", secure=True)
    assert page.status_code == 200
    html = page.content.decode()
    order = [
        html.index(f'data-slice="tag={t}"')
        for t in ("people_noise", "clean_speech", "low_bandwidth", "car_noise")
    ]
    assert order == sorted(order)
    assert 'data-chart="accuracy-vs-hlp"' in html
    sorted_page = client.get(f"/model-runs/{run.pk}/?sort=share", secure=True).content.decode()
    shares = [
        sorted_page.index(f'data-slice="tag={t}"')
        for t in ("clean_speech", "people_noise", "low_bandwidth", "car_noise")
    ]
    assert shares == sorted(shares)
    compared = client.get(f"/model-runs/{run.pk}/?compare={other.pk}", secure=True).content.decode()
    assert 'data-testid="compare-slices"' in compared
    # clean_speech-0: this run says "no" (wrong), the candidate "yes" (right)
    assert "<td>clean_speech-0</td>" in compared
