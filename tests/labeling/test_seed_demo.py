import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from labeling.demo import IMAGE_PROJECT_SLUG, SPEECH_PROJECT_SLUG, build_demo
from labeling.demo.loader import awaiting_labels, seed_demo
from labeling.models import Annotation, GoldLabel, Guideline, Item, Project
from provenance.models import Event

N_IMAGES = 48


def _snapshot(slug):
    items = {
        i.external_id: (i.metadata, sorted(t.name for t in i.tags.all()), i.content_hash)
        for i in Item.objects.filter(project__slug=slug).prefetch_related("tags")
    }
    labels = sorted(
        Annotation.objects.filter(project__slug=slug, is_current=True).values_list(
            "item__external_id",
            "labeler__username",
            "label_class__key",
            "value_text",
            "guideline__version",
        )
    )
    return items, labels


@pytest.mark.django_db
def test_seed_demo_stores_exactly_what_the_seed_generates(settings):
    settings.DEBUG = True
    seed_demo(seed=3, n_images=N_IMAGES)
    expected = build_demo(seed=3, n_images=N_IMAGES).project(IMAGE_PROJECT_SLUG)

    items, labels = _snapshot(IMAGE_PROJECT_SLUG)
    assert set(items) == {i.external_id for i in expected.items}
    some = expected.items[5]
    assert items[some.external_id][0] == some.metadata
    assert items[some.external_id][1] == sorted(some.tags)
    waiting = awaiting_labels(expected)
    assert len(waiting) == round(N_IMAGES * 0.1)
    assert labels == sorted(
        (a.item, a.labeler, a.value, "", a.guideline_version)
        for a in expected.annotations
        if a.item not in waiting
    )
    assert Guideline.objects.filter(project__slug=IMAGE_PROJECT_SLUG).count() == 2
    assert GoldLabel.objects.filter(item__project__slug=IMAGE_PROJECT_SLUG).count() == len(
        expected.gold
    )


@pytest.mark.django_db
def test_seed_demo_is_idempotent(settings):
    settings.DEBUG = True
    seed_demo(seed=3, n_images=N_IMAGES)
    before = {slug: _snapshot(slug) for slug in (IMAGE_PROJECT_SLUG, SPEECH_PROJECT_SLUG)}
    n_events = Event.objects.count()

    report = seed_demo(seed=3, n_images=N_IMAGES)

    assert report.created == {}
    assert {slug: _snapshot(slug) for slug in before} == before
    assert Event.objects.count() == n_events
    assert Project.objects.count() == 3


@pytest.mark.django_db
def test_different_seeds_give_different_labels(settings):
    settings.DEBUG = True
    a = build_demo(seed=1, n_images=N_IMAGES).project(IMAGE_PROJECT_SLUG).annotations
    b = build_demo(seed=2, n_images=N_IMAGES).project(IMAGE_PROJECT_SLUG).annotations
    assert [(x.item, x.labeler, x.value) for x in a] != [(x.item, x.labeler, x.value) for x in b]


@pytest.mark.django_db
def test_seed_demo_refuses_to_create_known_passwords_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured, match="only with DEBUG=1"):
        seed_demo(seed=3, n_images=N_IMAGES)
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_seed_demo_command_prints_the_log_ins(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo", "--seed", "3", "--images", str(N_IMAGES))
    out = capsys.readouterr().out
    assert "admin / concord-admin" in out
    assert Item.objects.filter(project__slug=IMAGE_PROJECT_SLUG).count() == N_IMAGES


@pytest.mark.django_db
def test_a_labeler_finds_items_waiting_in_the_demo(settings):
    from labeling.assignment import next_item_for

    settings.DEBUG = True
    seed_demo(seed=3, n_images=N_IMAGES)
    project = Project.objects.get(slug=IMAGE_PROJECT_SLUG)
    labeler = project.members.get(username="labeler1")
    assignment = next_item_for(project, labeler)
    assert assignment is not None
    waiting = awaiting_labels(build_demo(seed=3, n_images=N_IMAGES).project(IMAGE_PROJECT_SLUG))
    assert assignment.item.external_id in waiting


@pytest.mark.django_db
def test_seed_demo_seeds_the_box_project_with_its_boxes_and_ground_truth(settings):
    from labeling.demo import BOX_PROJECT_SLUG

    settings.DEBUG = True
    seed_demo(seed=3, n_images=N_IMAGES)
    expected = build_demo(seed=3, n_images=N_IMAGES).project(BOX_PROJECT_SLUG)
    project = Project.objects.get(slug=BOX_PROJECT_SLUG)
    assert project.task_type == "detection"
    assert sorted(project.classes.values_list("key", flat=True)) == ["crack", "dent", "scratch"]
    waiting = awaiting_labels(expected)
    stored = {
        (a.item.external_id, a.labeler.username): a.value_boxes
        for a in Annotation.objects.filter(project=project, is_current=True).select_related(
            "item", "labeler"
        )
    }
    assert stored == {
        (a.item, a.labeler): a.value for a in expected.annotations if a.item not in waiting
    }
    gold = {
        g.item.external_id: g.value_boxes
        for g in GoldLabel.objects.filter(item__project=project).select_related("item")
    }
    assert gold == {g.item: g.value for g in expected.gold}
    assert any(boxes == [] for boxes in gold.values())  # "nothing there" is ground truth too
    example_ids = set(
        Guideline.objects.get(project=project).example_items.values_list("external_id", flat=True)
    )
    assert example_ids == set(expected.guidelines[0].examples) and example_ids <= set(gold)
