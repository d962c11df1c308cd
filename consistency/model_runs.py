"""Model runs: predictions uploaded by a pipeline, and their error analysis.

``upload_model_run`` validates every row first and stores nothing when any row is bad
(one transaction, one ``model_run.uploaded`` event). ``error_analysis`` sets the model's
accuracy against the reference labels (gold, else the latest succeeded agreement run's
majority consensus) beside that run's HLP, overall, per metadata slice and per tag.
Numbers that cannot be computed are ``None`` with a reason, never a made-up 0.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from consistency.models import (
    ConsensusMethod,
    ModelRun,
    Prediction,
)
from consistency.selectors import SOURCE_SME, final_labels, latest_finished_run
from labeling.models import GoldLabel, GoldSource, Item, LabelClass, Project, TaskType
from labeling.selectors import effective_class_map
from provenance import events

MAX_SLICE_DISTINCT = 50
MAX_ERRORS_LISTED = 100
MISSING = "(missing)"
NO_TAG = "(no tag)"


# ------------------------------------------------------------------ upload


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def upload_model_run(
    *,
    project: Project,
    name: str,
    predictions: list[dict],
    created_by: AbstractBaseUser | None,
    params: dict | None = None,
) -> ModelRun:
    """Store a model run and its predictions, all or nothing.

    Rows are ``{item: <external id>, value: <class key | number | text>, confidence?}``;
    the value's kind follows the project's task type. Raises ``ValidationError`` naming
    the 1-based row numbers at fault.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["name must be a non-empty text"]})
    if len(name) > 200:
        raise ValidationError({"name": ["name must be at most 200 characters"]})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError({"params": ["params must be a JSON object"]})
    if not isinstance(predictions, list) or not predictions:
        raise ValidationError({"predictions": ["predictions must be a non-empty list of rows"]})

    wanted_ids = {
        str(row["item"])
        for row in predictions
        if isinstance(row, dict) and isinstance(row.get("item"), str | int)
    }
    items = dict(
        Item.objects.filter(project=project, external_id__in=wanted_ids).values_list(
            "external_id", "id"
        )
    )
    classes = dict(LabelClass.objects.filter(project=project).values_list("key", "id"))
    task = project.task_type

    errors: list[str] = []
    rows: list[Prediction] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(predictions, start=1):
        if not isinstance(row, dict):
            errors.append(f"row {number}: must be an object {{item, value, confidence?}}")
            continue
        unknown_keys = sorted(set(row) - {"item", "value", "confidence"})
        if unknown_keys:
            errors.append(f"row {number}: unknown field(s) {', '.join(unknown_keys)}")
            continue
        raw_item = row.get("item")
        if isinstance(raw_item, bool) or not isinstance(raw_item, str | int) or raw_item == "":
            errors.append(f"row {number}: item (the item's external id) is required")
            continue
        external_id = str(raw_item)
        if external_id not in items:
            errors.append(f"row {number}: unknown item {external_id!r}")
            continue
        if external_id in seen:
            errors.append(
                f"row {number}: duplicate prediction for item {external_id!r} "
                f"(first in row {seen[external_id]})"
            )
            continue
        seen[external_id] = number
        confidence = row.get("confidence")
        if confidence is not None:
            confidence = _number(confidence)
            if confidence is None or not 0.0 <= confidence <= 1.0:
                errors.append(f"row {number}: confidence must be a number between 0 and 1")
                continue
        value = row.get("value")
        prediction = Prediction(item_id=items[external_id], confidence=confidence)
        if task == TaskType.CLASSIFICATION:
            if not isinstance(value, str) or value not in classes:
                errors.append(f"row {number}: unknown class {value!r}")
                continue
            prediction.label_class_id = classes[value]
        elif task == TaskType.RATING:
            number_value = _number(value)
            if number_value is None:
                errors.append(f"row {number}: value must be a number")
                continue
            prediction.value_number = number_value
        else:
            if not isinstance(value, str):
                errors.append(f"row {number}: value must be a text")
                continue
            prediction.value_text = value
        rows.append(prediction)

    if errors:
        shown = errors[:MAX_ERRORS_LISTED]
        if len(errors) > MAX_ERRORS_LISTED:
            shown.append(f"... and {len(errors) - MAX_ERRORS_LISTED} more rows at fault")
        raise ValidationError({"predictions": shown})

    actor = created_by if created_by is not None and created_by.is_authenticated else None
    with transaction.atomic():
        run = ModelRun.objects.create(
            project=project,
            name=name.strip(),
            created_by=actor,
            params=params,
            n_predictions=len(rows),
        )
        for prediction in rows:
            prediction.model_run = run
        Prediction.objects.bulk_create(rows, batch_size=2000)
        events.model_run_uploaded(
            project_id=project.pk,
            actor_id=actor.pk if actor else None,
            model_run_id=run.pk,
            after={"name": run.name, "n_predictions": run.n_predictions, "params": params},
        )
    return run


# ------------------------------------------------------------------ error analysis


def _slice_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _entry(key, value, item_ids, correct, hlp, hlp_reason) -> dict:
    n = len(item_ids)
    reasons: dict[str, str] = {}
    accuracy = None
    if n == 0:
        reasons["model_accuracy"] = "no predicted item with a reference label in this slice"
    else:
        accuracy = sum(1 for i in item_ids if correct[i]) / n
    if hlp is None:
        reasons["hlp"] = hlp_reason or "no HLP available"
    return {
        "key": key,
        "value": value,
        "n_items": n,
        "model_accuracy": accuracy,
        "hlp": hlp,
        "reasons": reasons,
    }


def error_analysis(model_run: ModelRun) -> dict:
    """Model accuracy against the reference, overall, per metadata slice and per tag."""
    project = model_run.project
    if project.task_type != TaskType.CLASSIFICATION:
        why = (
            "error analysis is computed for classification projects "
            f"(this one: {project.task_type})"
        )
        return {
            "reference": None,
            "overall": _entry(None, None, [], {}, None, why),
            "slices": [],
            "reasons": {"overall": why},
        }

    roots = effective_class_map(project)
    run = latest_finished_run(project)
    # The reference: an imported gold label, else the item's final label (an SME decision,
    # else the majority consensus of the latest run).
    gold = dict(
        GoldLabel.objects.filter(item__project=project, label_class__isnull=False)
        .exclude(source=GoldSource.SME)
        .values_list("item_id", "label_class_id")
    )
    final = final_labels(project, run, method=ConsensusMethod.MAJORITY)
    predicted = dict(
        Prediction.objects.filter(model_run=model_run, label_class__isnull=False).values_list(
            "item_id", "label_class_id"
        )
    )
    correct: dict[int, bool] = {}
    n_gold = n_consensus = 0
    for item_id, class_id in predicted.items():
        chosen = final.get(item_id)
        if item_id in gold:
            reference = gold[item_id]
            n_gold += 1
        elif chosen is not None and chosen.label_class_id is not None:
            reference = chosen.label_class_id
            if chosen.source == SOURCE_SME:
                n_gold += 1  # an SME decision is a gold label
            else:
                n_consensus += 1
        else:
            continue
        correct[item_id] = roots.get(class_id, class_id) == roots.get(reference, reference)
    evaluated = sorted(correct)

    reasons: dict[str, str] = {}
    results = (run.results or {}) if run is not None else {}
    no_run = "no succeeded agreement run in this project"
    if run is None:
        overall_hlp, overall_hlp_reason = None, no_run
    else:
        hlp_block = results.get("hlp") or {}
        overall_hlp = hlp_block.get("value")
        overall_hlp_reason = (hlp_block.get("reasons") or {}).get(
            "value", f"agreement run {run.pk} has no overall HLP"
        )
    overall = _entry(None, None, evaluated, correct, overall_hlp, overall_hlp_reason)
    if not predicted:
        reasons["overall"] = "the model run has no class predictions"

    run_slices = {
        (s.get("key"), s.get("value")): s
        for s in results.get("slices") or []
        if isinstance(s, dict) and s.get("value") is not None
    }

    def hlp_for(key: str, value: str) -> tuple[float | None, str | None]:
        if run is None:
            return None, no_run
        found = run_slices.get((key, value))
        if found is None:
            return None, f"agreement run {run.pk} has no slice {key}={value}"
        if found.get("hlp") is None:
            why = (found.get("reasons") or {}).get("hlp")
            return None, why or f"agreement run {run.pk} has no HLP for {key}={value}"
        return found["hlp"], None

    slices: list[dict] = []
    metadata = dict(Item.objects.filter(project=project).values_list("id", "metadata"))
    keys = sorted({k for m in metadata.values() if isinstance(m, dict) for k in m})
    for key in keys:
        values = {
            i: _slice_text(m.get(key) if isinstance(m, dict) else None) for i, m in metadata.items()
        }
        distinct = sorted(set(values.values()))
        if len(distinct) > MAX_SLICE_DISTINCT:
            reasons[f"slice:{key}"] = (
                f"{len(distinct)} distinct values (more than {MAX_SLICE_DISTINCT}); not sliced"
            )
            continue
        for value in distinct:
            members = [i for i in evaluated if values.get(i) == value]
            hlp, why = hlp_for(key, value)
            slices.append(_entry(key, value, members, correct, hlp, why))

    tags: dict[str, set[int]] = {}
    tagged: set[int] = set()
    for item_id, tag in Item.tags.through.objects.filter(item__project=project).values_list(
        "item_id", "tag__name"
    ):
        tags.setdefault(tag, set()).add(item_id)
        tagged.add(item_id)
    if tags:
        tags[NO_TAG] = set(metadata) - tagged
    for tag in sorted(tags):
        members = [i for i in evaluated if i in tags[tag]]
        hlp, why = hlp_for("tag", tag)
        slices.append(_entry("tag", tag, members, correct, hlp, why))

    return {
        "reference": {
            "agreement_run": run.pk if run is not None else None,
            "n_gold": n_gold,
            "n_consensus": n_consensus,
            "n_without_reference": len(predicted) - len(evaluated),
        },
        "overall": overall,
        "slices": slices,
        "reasons": reasons,
    }
