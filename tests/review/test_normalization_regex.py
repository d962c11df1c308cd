"""Users' regular expressions cannot freeze a process (issue 13, finding 1): normalisation
rules with ``regex: true`` run on RE2, whose time is linear in the text."""

from __future__ import annotations

import pytest
import re2
from rest_framework.test import APIClient

from consistency import normalization
from labeling import services
from labeling.models import Item, PayloadKind, Role, TaskType

# With Python's backtracking ``re`` this pattern explores every way of splitting the text
# among the three nested repetitions before failing: hours for a few dozen characters.
CATASTROPHIC = {"find": "((.+)+)+X", "replace": "y", "regex": True}
TEXT = "a" * 40 + "!"


def test_a_users_regex_is_compiled_by_re2():
    (rule,) = normalization.validate_rules([{"find": "um+", "regex": True}])
    assert isinstance(rule.compiled(), type(re2.compile("a")))


def test_the_catastrophic_pattern_finishes_and_changes_nothing():
    assert normalization.apply_rules(TEXT, [CATASTROPHIC]) == TEXT
    assert normalization.normalize_texts([TEXT, TEXT + "X"], [CATASTROPHIC]) == [TEXT, "y"]


@pytest.mark.parametrize("find", [r"(a)\1", r"(?<!\w)um", r"um(?=\s)"])
def test_patterns_re2_cannot_run_are_refused_naming_the_rule(find):
    with pytest.raises(ValueError, match="rule 1: not a valid regular expression"):
        normalization.validate_rules([{"find": find, "regex": True}])


def test_groups_and_case_still_work_on_re2():
    rules = [{"find": r"(?P<a>\w+)-(\w+)", "replace": r"\2 \g<a>", "regex": True}]
    assert normalization.apply_rules("left-right", rules) == "right left"
    rules = [{"find": "UM+", "replace": "um", "regex": True, "case_sensitive": False}]
    assert normalization.apply_rules("Umm yes UMMM", rules) == "um yes um"


def test_whole_word_regex_leaves_matches_glued_to_a_word():
    rules = [{"find": "um+", "replace": "X", "regex": True, "whole_word": True}]
    assert normalization.apply_rules("umm yes ummy umm, sumo um_", rules) == (
        "X yes ummy X, sumo um_"
    )
    preview = normalization.preview(["umm yummy umm"], rules)
    assert preview["per_rule"][0]["n_texts"] == 1


class HttpsApiClient(APIClient):
    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


@pytest.fixture
def api():
    return HttpsApiClient()


@pytest.mark.django_db
def test_the_preview_endpoint_answers_the_catastrophic_pattern(api, manager, make_user):
    project = services.create_project(
        name="Calls", task_type=TaskType.TRANSCRIPTION, created_by=manager
    )
    labeler = make_user("speaker")
    services.set_membership(project=project, user=labeler, role=Role.LABELER)
    viewer = make_user("watcher")
    services.set_membership(project=project, user=viewer, role=Role.VIEWER)
    item = Item.objects.create(project=project, external_id="c-1", kind=PayloadKind.TEXT)
    services.submit_annotation(item=item, labeler=labeler, value=TEXT)
    api.force_authenticate(manager)
    url = f"/api/v1/projects/{project.pk}/normalization/preview/"
    response = api.post(url, {"rules": [CATASTROPHIC]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["n_changed"] == 0
    refused = api.post(url, {"rules": [{"find": r"(a)\1", "regex": True}]}, format="json")
    assert refused.status_code == 400 and "rule 1" in refused.json()["detail"]
