"""Agreement runs on the demo data, checked against independent computations from the ORM."""

from __future__ import annotations

import functools

import krippendorff
import numpy as np
import pytest
from django.core.exceptions import ValidationError

from consistency import runs, selectors, tasks
from consistency.models import AgreementRun, AgreementRunChunk, Consensus, RunStatus
from labeling import services as labeling_services
from labeling.demo import IMAGE_PROJECT_SLUG, SPEECH_PROJECT_SLUG, loader
from labeling.demo.loader import seed_demo
from labeling.models import Annotation, GoldLabel, LabelClass, Project

pytestmark = pytest.mark.django_db

N_IMAGES = 60


_build_demo_once = functools.cache(loader.build_demo)  # rendering the PNGs dominates setup


@pytest.fixture
def demo(settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setattr(loader, "build_demo", _build_demo_once)
    seed_demo(seed=11, n_images=N_IMAGES)
    return Project.objects.get(slug=IMAGE_PROJECT_SLUG)


def run_agreement(project, **params) -> AgreementRun:
    """Create a run and execute it in-process (the on-commit enqueue does not fire here)."""
    run = runs.start_agreement_run(project=project, params=params)
    return runs.execute_agreement_run(run.pk)


def n_labeled_items(project) -> int:
    """Items with at least one label (the demo leaves some waiting for labelers)."""
    return (
        Annotation.objects.filter(project=project, is_current=True)
        .values("item_id")
        .distinct()
        .count()
    )


def root_key(label_class: LabelClass) -> str:
    while label_class.merged_into_id is not None:
        label_class = LabelClass.objects.get(pk=label_class.merged_into_id)
    return label_class.key


def reference_alpha(project) -> float:
    """Krippendorff's alpha by the `krippendorff` package from a labelers x items matrix."""
    rows = list(
        Annotation.objects.filter(project=project, is_current=True).select_related("label_class")
    )
    keys = sorted({root_key(a.label_class) for a in rows})
    items = sorted({a.item_id for a in rows})
    labelers = sorted({a.labeler_id for a in rows})
    matrix = np.full((len(labelers), len(items)), np.nan)
    for a in rows:
        matrix[labelers.index(a.labeler_id), items.index(a.item_id)] = keys.index(
            root_key(a.label_class)
        )
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")


def test_run_succeeds_and_alpha_equals_the_krippendorff_package(demo):
    run = run_agreement(demo, n_bootstrap=200, seed=1)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.progress == 1.0 and run.finished_at is not None
    overall = run.results["overall"]
    assert overall["krippendorff_alpha"] == pytest.approx(reference_alpha(demo), abs=1e-9)
    low, high = overall["krippendorff_alpha_ci"]
    assert low <= overall["krippendorff_alpha"] <= high
    assert overall["n_annotations"] == Annotation.objects.filter(project=demo).count()
    assert overall["n_items"] == n_labeled_items(demo) and overall["n_labelers"] == 8
    for key in ("fleiss_kappa", "percent_agreement", "mean_pairwise_cohen_kappa"):
        assert overall[key] is not None


def test_results_hold_every_contract_section(demo):
    results = run_agreement(demo, n_bootstrap=50).results
    assert {c["class"] for c in results["per_class"]} == {
        "no_defect",
        "shallow_scratch",
        "deep_scratch",
        "dent",
        "crack",
        "borderline",
    }
    assert all("support" in c and "krippendorff_alpha" in c for c in results["per_class"])
    assert len(results["per_labeler"]) == 8
    for entry in results["per_labeler"]:
        assert {"labeler", "n", "agreement_with_consensus", "cohen_kappa_mean"} <= set(entry)
    pairwise = results["pairwise"]
    assert len(pairwise["labelers"]) == 8 and len(pairwise["cohen_kappa"]) == 8
    assert results["confusion"]["classes"][0] == "no_defect"
    assert results["hlp"]["method"] == "gold"  # the demo has SME gold labels
    assert results["hlp"]["value"] is not None and results["hlp"]["per_slice"]
    keys = {s["key"] for s in results["slices"]}
    assert {"guideline_version", "tag", "camera", "captured_week"} <= keys
    for s in results["slices"]:
        assert {"key", "value", "n_items", "krippendorff_alpha", "hlp", "reasons"} <= set(s)
    assert results["data_version"]["changed_during_run"] is False


def test_gold_accuracy_matches_a_count_from_the_orm(demo):
    results = run_agreement(demo, n_bootstrap=0).results
    gold = dict(GoldLabel.objects.filter(item__project=demo).values_list("item_id", "label_class"))
    labels = Annotation.objects.filter(project=demo, is_current=True, item_id__in=list(gold))
    correct = sum(
        1 for item, cls in labels.values_list("item_id", "label_class") if gold[item] == cls
    )
    assert results["hlp"]["value"] == pytest.approx(correct / labels.count())
    assert results["hlp"]["ci"] is None


def test_careless_labeler_has_the_lowest_agreement_with_consensus(demo):
    per_labeler = run_agreement(demo, n_bootstrap=0).results["per_labeler"]
    worst = min(per_labeler, key=lambda e: e["agreement_with_consensus"])
    assert worst["labeler"] == "labeler5"


def test_class_merge_is_applied_and_undone_exactly(demo):
    before = run_agreement(demo, n_bootstrap=0).results["overall"]["krippendorff_alpha"]
    deep = LabelClass.objects.get(project=demo, key="deep_scratch")
    shallow = LabelClass.objects.get(project=demo, key="shallow_scratch")
    deep.merged_into = shallow
    deep.save(update_fields=["merged_into"])
    merged = run_agreement(demo, n_bootstrap=0).results
    assert merged["merges"] == {"deep_scratch": "shallow_scratch"}
    assert "deep_scratch" not in {c["class"] for c in merged["per_class"]}
    assert merged["overall"]["krippendorff_alpha"] > before
    assert merged["overall"]["krippendorff_alpha"] == pytest.approx(reference_alpha(demo), abs=1e-9)
    deep.merged_into = None
    deep.save(update_fields=["merged_into"])
    assert run_agreement(demo, n_bootstrap=0).results["overall"]["krippendorff_alpha"] == before


def test_consensus_rows_by_majority_and_dawid_skene(demo):
    run = run_agreement(demo, n_bootstrap=0)
    n_items = n_labeled_items(demo)
    for method in ("majority", "dawid_skene"):
        rows = Consensus.objects.filter(run=run, method=method)
        assert rows.count() == n_items
        summary = run.results["consensus"]["methods"][method]
        assert sum(summary[s] for s in ("agreed", "disputed", "borderline", "resolved")) == n_items
    disputed = Consensus.objects.filter(run=run, method="majority", status="disputed")
    assert all(c.label_class_id is None for c in disputed)
    # an item with a strict majority gets that class, with the majority share as support
    item = Consensus.objects.filter(run=run, method="majority", status="agreed").first().item
    keys = [root_key(a.label_class) for a in item.annotations.filter(is_current=True)]
    winner = max(set(keys), key=keys.count)
    row = Consensus.objects.get(run=run, method="majority", item=item)
    assert row.label_class.key == winner
    assert row.support == pytest.approx(keys.count(winner) / len(keys))


def test_sme_overrides_win_over_every_method(demo, monkeypatch):
    item_id = demo.items.order_by("id").first().pk
    crack = LabelClass.objects.get(project=demo, key="crack")
    monkeypatch.setattr(
        "consistency.consensus_store.sme_overrides", lambda project: {item_id: crack.pk}
    )
    run = run_agreement(demo, n_bootstrap=0)
    for row in Consensus.objects.filter(run=run, item_id=item_id):
        assert row.label_class_id == crack.pk and row.status == "resolved"


def test_chunked_run_equals_single_pass_exactly(demo):
    single = run_agreement(demo, n_bootstrap=100, seed=3)
    chunked = run_agreement(demo, n_bootstrap=100, seed=3, chunk_items=7)
    single.refresh_from_db()
    chunked.refresh_from_db()
    assert chunked.status == RunStatus.SUCCEEDED, chunked.error
    assert single.n_chunks == 1 and chunked.n_chunks == 9
    single.results.pop("params")
    chunked.results.pop("params")
    assert chunked.results == single.results
    assert not AgreementRunChunk.objects.filter(run=chunked).exists()
    for method in ("majority", "dawid_skene"):
        rows = [
            list(
                Consensus.objects.filter(run=r, method=method)
                .order_by("item_id")
                .values_list(
                    "item_id", "label_class_id", "support", "confidence", "entropy", "status"
                )
            )
            for r in (single, chunked)
        ]
        assert rows[0] == rows[1]


def test_chunked_run_through_the_celery_tasks_equals_single_pass(demo):
    single = run_agreement(demo, n_bootstrap=50)
    single.refresh_from_db()
    run = runs.start_agreement_run(project=demo, params={"n_bootstrap": 50, "chunk_items": 25})
    tasks.run_agreement.delay(run.pk)  # eager: the chunk tasks run in-process
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.n_chunks == 3
    single.results.pop("params")
    run.results.pop("params")
    assert run.results == single.results


def test_start_enqueues_the_task_on_commit(demo, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.start_agreement_run(project=demo, params={"n_bootstrap": 0})
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.celery_task_id


@pytest.mark.parametrize(
    ("params", "field", "word"),
    [
        ({"levle": "nominal"}, "params", "levle"),
        ({"level": "fuzzy"}, "level", "fuzzy"),
        ({"slices": ["no_such_key"]}, "slices", "no_such_key"),
        ({"n_bootstrap": 10001}, "n_bootstrap", "10000"),
        ({"consensus": ["vote"]}, "consensus", "vote"),
        ({"seed": -1}, "seed", "-1"),
    ],
)
def test_bad_params_are_rejected_naming_them(demo, params, field, word):
    with pytest.raises(ValidationError) as info:
        runs.start_agreement_run(project=demo, params=params)
    assert word in " ".join(info.value.message_dict[field])
    assert not AgreementRun.objects.exists()


def test_a_failure_marks_the_run_failed_with_a_readable_error(demo, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("the core refused the labels")

    monkeypatch.setattr("consistency.results.summarize", boom)
    run = run_agreement(demo, n_bootstrap=0)
    assert run.status == RunStatus.FAILED
    assert "the core refused the labels" in run.error
    assert run.finished_at is not None


def test_changed_labels_are_noted_as_a_new_data_version(demo):
    run = run_agreement(demo, n_bootstrap=0)
    assert run.data_version["n_annotations"] == Annotation.objects.filter(project=demo).count()
    annotation = Annotation.objects.filter(project=demo).first()
    labeling_services.submit_annotation(
        item=annotation.item, labeler=annotation.labeler, value="crack"
    )
    assert selectors.data_version(demo)["max_annotation_id"] > run.data_version["max_annotation_id"]


def test_transcription_project_reports_exact_match_and_wer(settings, demo):
    project = Project.objects.get(slug=SPEECH_PROJECT_SLUG)
    run = run_agreement(project, n_bootstrap=0)
    assert run.status == RunStatus.SUCCEEDED, run.error
    trans = run.results["transcription"]
    assert trans["rules"] and "lowercase" in trans["rules"]
    assert run.results["hlp"]["method"] == "wer"
    assert run.results["hlp"]["value"] == pytest.approx(1 - trans["mean_pairwise_wer"])
    assert run.results["overall"]["percent_agreement"] == pytest.approx(trans["percent_agreement"])


def test_empty_project_gives_nulls_with_reasons(project):
    run = run_agreement(project, n_bootstrap=0)
    assert run.status == RunStatus.SUCCEEDED, run.error
    overall = run.results["overall"]
    assert overall["krippendorff_alpha"] is None
    assert overall["reasons"]["krippendorff_alpha"]


def test_a_failing_part_of_a_chunked_run_fails_the_run_and_cleans_up(demo, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("Dawid-Skene did not converge")

    monkeypatch.setattr("consistency.consensus_store.dawid_skene", boom)
    run = run_agreement(demo, n_bootstrap=0, chunk_items=20)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "consensus: RuntimeError: Dawid-Skene did not converge" in run.error
    assert not AgreementRunChunk.objects.filter(run=run).exists()


def test_ordinal_level_orders_classes_by_rank(demo):
    results = run_agreement(demo, n_bootstrap=0, level="ordinal", slices=[]).results
    ranked = sorted(
        LabelClass.objects.filter(project=demo),
        key=lambda c: (c.rank is None, c.rank or 0),
    )
    order = [c.key for c in ranked]
    assert [c["class"] for c in results["per_class"]] == order
    rows = Annotation.objects.filter(project=demo, is_current=True).values_list(
        "item_id", "labeler_id", "label_class__key"
    )
    items = sorted({r[0] for r in rows})
    labelers = sorted({r[1] for r in rows})
    matrix = np.full((len(labelers), len(items)), np.nan)
    for item, labeler, key in rows:
        matrix[labelers.index(labeler), items.index(item)] = order.index(key)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert results["overall"]["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)


def test_interval_rating_project_uses_the_numbers(project, labelers):
    rating = labeling_services.create_project(
        name="Image quality", task_type="rating", level="interval", overlap=3
    )
    scores = {"p": (1, 2, 1), "q": (4, 4, 5), "r": (3, 2, 3), "s": (5, 5, 5), "t": (2, 4, 3)}
    for external_id, values in scores.items():
        item = rating.items.create(external_id=external_id, kind="text", text=external_id)
        for labeler, value in zip(labelers, values, strict=True):
            labeling_services.submit_annotation(item=item, labeler=labeler, value=float(value))
    run = run_agreement(rating, n_bootstrap=0, slices=[])
    assert run.status == RunStatus.SUCCEEDED, run.error
    matrix = np.array([[v[i] for v in scores.values()] for i in range(3)], dtype=float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
    overall = run.results["overall"]
    assert overall["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
    assert overall["fleiss_kappa"] is None and overall["reasons"]["fleiss_kappa"]
    assert run.results["consensus"]["reasons"]["methods"]


def test_a_run_larger_than_the_chunk_cap_is_chunked_even_with_one_worker(demo, settings):
    """CONCORD_AGREEMENT_MAX_CHUNK_ITEMS bounds a chunk's items (its memory) whatever the
    workers; the chunks, merged one at a time, give the single pass exactly."""
    from labeling.models import Item

    settings.CONCORD_AGREEMENT_PARALLEL_WORKERS = 1
    single = run_agreement(demo, n_bootstrap=50, seed=2)
    n_items = Item.objects.filter(project=demo).count()
    settings.CONCORD_AGREEMENT_MAX_CHUNK_ITEMS = 16
    chunked = run_agreement(demo, n_bootstrap=50, seed=2)
    single.refresh_from_db()
    chunked.refresh_from_db()
    assert chunked.status == RunStatus.SUCCEEDED, chunked.error
    assert single.n_chunks == 1 and chunked.n_chunks == -(-n_items // 16) > 1
    single.results.pop("params")
    chunked.results.pop("params")
    assert chunked.results == single.results
    rows = [
        list(
            Consensus.objects.filter(run=r)
            .order_by("method", "item_id")
            .values_list("method", "item_id", "label_class_id", "confidence", "status")
        )
        for r in (single, chunked)
    ]
    assert rows[0] == rows[1]


def test_slices_without_gold_from_item_counts_equal_slices_from_labels(demo, monkeypatch):
    """Without gold a run's slices are computed from per-item value counts; forcing the
    label path (as with more values than a dense table allows) gives the same results."""
    from consistency import results as results_module

    GoldLabel.objects.filter(item__project=demo).delete()
    params = {
        "n_bootstrap": 50,
        "seed": 5,
        "slices": ["guideline_version", "tag", "labeler", "captured_week", "camera", "factory"],
    }
    calls = {"counts": 0, "labels": 0}

    def spy(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        monkeypatch.setattr(results_module, function.__name__, counted)

    spy("counts", results_module.slice_summary_from_counts)
    spy("labels", results_module.slice_summary)
    by_counts = run_agreement(demo, **params)
    assert calls["counts"] > 5 and calls["labels"] == 0
    monkeypatch.setattr(results_module, "MAX_DENSE_VALUES", 0)
    by_labels = run_agreement(demo, **params)
    assert calls["labels"] == calls["counts"]
    assert by_counts.status == by_labels.status == RunStatus.SUCCEEDED
    assert len(by_counts.results["slices"]) > 5
    by_counts.results.pop("params")
    by_labels.results.pop("params")
    assert by_counts.results == by_labels.results
