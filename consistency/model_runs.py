"""Model runs: predictions uploaded by a pipeline, and their error analysis.

``upload_model_run`` validates every row first and stores nothing when any row is bad
(one transaction, one ``model_run.uploaded`` event). ``error_analysis`` sets the model's
accuracy against the reference labels (gold, else the latest succeeded agreement run's
majority consensus) beside that run's HLP, overall, per metadata slice and per tag.
Numbers that cannot be computed are ``None`` with a reason, never a made-up 0.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from consistency import box_runs
from consistency.class_map import ClassMap, class_map
from consistency.metrics import error_analysis as ea
from consistency.models import (
    AgreementRun,
    ConsensusMethod,
    Flag,
    FlagKind,
    FlagStatus,
    ModelRun,
    Prediction,
)
from consistency.scan import scan_annotations
from consistency.selectors import (
    FINAL_LABEL_SOURCES,
    SOURCE_CONSENSUS,
    final_labels,
    latest_finished_run,
)
from labeling.boxes import BoxError, normalize_boxes
from labeling.imports.errors import ImportRejected
from labeling.imports.parsing import parse_csv, parse_jsonl
from labeling.models import GoldLabel, GoldSource, Item, LabelClass, Project, TaskType
from provenance import events
from provenance.bulk import chunks, insert_rows

User = get_user_model()

MAX_SLICE_DISTINCT = 50
MAX_ERRORS_LISTED = 100
MISSING = "(missing)"
NO_TAG = "(no tag)"
# Below this many scored items (or items under an HLP) a slice's figures are null.
MIN_SLICE_ITEMS = 5


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

    Rows are ``{item: <external id>, value: <class key | number | text | boxes>,
    confidence?}``; the value's kind follows the project's task type (detection: a list
    of boxes ``{class, x, y, w, h, score?}`` in pixels, score 0-1, default 1). Raises
    ``ValidationError`` naming the 1-based row numbers at fault; then nothing is stored.
    """
    if not isinstance(predictions, list) or not predictions:
        _check_name_and_params(name, params)
        raise ValidationError({"predictions": ["predictions must be a non-empty list of rows"]})
    return _store(
        project=project,
        name=name,
        rows=list(enumerate(predictions, start=1)),
        created_by=created_by,
        params=params,
    )


def upload_model_run_file(
    *,
    project: Project,
    data: bytes,
    fmt: str,
    created_by: AbstractBaseUser | None,
    name: str | None = None,
) -> ModelRun:
    """Store a model run sent as a request body, all or nothing.

    ``fmt`` (from the Content-Type or a file name):

    - ``"json"``: an object ``{name, predictions: [rows], params?}``, or a list of rows
      (then ``name`` comes from the argument); rows numbered from 1;
    - ``"jsonl"``: one row object per line, numbered by line;
    - ``"csv"``: a header with ``item``, ``value`` and optionally ``confidence``; data
      rows numbered from 1. CSV cells are text, so ``confidence`` (and a rating's value)
      is read as a number.

    Rows are as in :func:`upload_model_run`. Raises ``ValidationError`` naming the rows
    (or the field) at fault; then nothing is stored.
    """
    if fmt == "json":
        try:
            document = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ValidationError({"body": ["the body must be UTF-8 text"]}) from exc
        except json.JSONDecodeError as exc:
            raise ValidationError(
                {"body": [f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]}
            ) from exc
        if isinstance(document, list):
            return upload_model_run(
                project=project, name=name, predictions=document, created_by=created_by
            )
        if not isinstance(document, dict):
            raise ValidationError(
                {"body": ["send an object {name, predictions, params?} or a list of rows"]}
            )
        unknown = sorted(set(document) - {"name", "predictions", "params"})
        if unknown:
            raise ValidationError({k: ["unknown field"] for k in unknown})
        return upload_model_run(
            project=project,
            name=document.get("name", name),
            predictions=document.get("predictions"),
            params=document.get("params"),
            created_by=created_by,
        )
    try:
        if fmt == "jsonl":
            rows, errors = parse_jsonl(data)
        elif fmt == "csv":
            rows, errors = parse_csv(data, required=("item", "value"))
            rows = [(n, _csv_row(cells, project.task_type)) for n, cells in rows]
        else:
            raise ValidationError(
                {"format": [f"predictions are sent as JSON, JSONL or CSV, not {fmt}"]}
            )
    except ImportRejected as exc:
        raise ValidationError({"predictions": [exc.message]}) from exc
    if not rows and not errors:
        _check_name_and_params(name, None)
        raise ValidationError({"predictions": ["the body holds no prediction rows"]})
    return _store(
        project=project,
        name=name,
        rows=rows,
        created_by=created_by,
        params=None,
        unreadable=[(e["row"], f"row {e['row']}: {e['message']}") for e in errors],
    )


def _csv_row(cells: dict, task_type: str) -> dict:
    """A CSV row as a prediction row: numbers where the row needs numbers."""
    row: dict[str, Any] = dict(cells)
    if task_type == TaskType.DETECTION and isinstance(row.get("value"), str):
        # A box list in a CSV cell is JSON text; text that is not JSON stays text and the
        # row check names it.
        with contextlib.suppress(ValueError):
            row["value"] = json.loads(row["value"])
    for column in ("confidence",) + (("value",) if task_type == TaskType.RATING else ()):
        if column in row:
            # Text that is not a number stays text: the row check names it.
            with contextlib.suppress(ValueError):
                row[column] = float(row[column])
    return row


def _check_name_and_params(name: Any, params: Any) -> dict:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["name must be a non-empty text"]})
    if len(name) > 200:
        raise ValidationError({"name": ["name must be at most 200 characters"]})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError({"params": ["params must be a JSON object"]})
    return params


def _reject(errors: list[str]) -> None:
    shown = errors[:MAX_ERRORS_LISTED]
    if len(errors) > MAX_ERRORS_LISTED:
        shown.append(f"... and {len(errors) - MAX_ERRORS_LISTED} more rows at fault")
    raise ValidationError({"predictions": shown})


def _store(
    *,
    project: Project,
    name: str,
    rows: list[tuple[int, Any]],
    created_by: AbstractBaseUser | None,
    params: dict | None,
    unreadable: Sequence[tuple[int, str]] = (),
) -> ModelRun:
    """Check every numbered row, then write the run, its predictions and one event in one
    transaction (nothing when any row is bad). ``unreadable``: (row, message naming it) of
    rows the parser could not read, reported with the others in row order."""
    params = _check_name_and_params(name, params)
    wanted_ids = {
        str(row["item"])
        for _, row in rows
        if isinstance(row, dict) and isinstance(row.get("item"), str | int)
    }
    items: dict[str, int] = {}
    wanted = sorted(wanted_ids)
    for chunk in chunks(wanted):
        items.update(
            Item.objects.filter(project=project, external_id__in=chunk).values_list(
                "external_id", "id"
            )
        )
    classes = dict(LabelClass.objects.filter(project=project).values_list("key", "id"))
    task = project.task_type
    image_sizes: dict[str, tuple[int, int]] = {}
    if task == TaskType.DETECTION:
        for chunk in chunks(wanted):
            for external_id, width, height in Item.objects.filter(
                project=project, external_id__in=chunk, width__isnull=False, height__isnull=False
            ).values_list("external_id", "width", "height"):
                image_sizes[external_id] = (width, height)

    faults: list[tuple[int, str]] = list(unreadable)
    checked: list[dict] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        prediction, fault = _check_row(
            number, row, items=items, classes=classes, task=task, seen=seen, image_sizes=image_sizes
        )
        if fault is not None:
            faults.append((number, fault))
        else:
            checked.append(prediction)
    if faults:
        faults.sort(key=lambda f: f[0])
        _reject(
            [
                message if message.startswith("row ") else f"row {n}: {message}"
                for n, message in faults
            ]
        )

    actor = created_by if created_by is not None and created_by.is_authenticated else None
    with transaction.atomic():
        run = ModelRun.objects.create(
            project=project,
            name=name.strip(),
            created_by=actor,
            params=params,
            n_predictions=len(checked),
        )
        for prediction in checked:
            prediction["model_run_id"] = run.pk
        insert_rows(Prediction, checked)
        events.model_run_uploaded(
            project_id=project.pk,
            actor_id=actor.pk if actor else None,
            model_run_id=run.pk,
            after={"name": run.name, "n_predictions": run.n_predictions, "params": params},
        )
        raise_label_error_flags(run)
    return run


def _check_row(
    number: int,
    row: Any,
    *,
    items: dict[str, int],
    classes: dict[str, int],
    task: str,
    seen: dict[str, int],
    image_sizes: dict[str, tuple[int, int]] | None = None,
) -> tuple[dict | None, str | None]:
    """(prediction, None) for a good row -- ``{item_id, confidence, label_class_id |
    value_number | value_text}`` -- or (None, the message naming the row)."""
    if not isinstance(row, dict):
        return None, f"row {number}: must be an object {{item, value, confidence?}}"
    unknown_keys = sorted(set(row) - {"item", "value", "confidence"})
    if unknown_keys:
        return None, f"row {number}: unknown field(s) {', '.join(unknown_keys)}"
    raw_item = row.get("item")
    if isinstance(raw_item, bool) or not isinstance(raw_item, str | int) or raw_item == "":
        return None, f"row {number}: item (the item's external id) is required"
    external_id = str(raw_item)
    if external_id not in items:
        return None, f"row {number}: unknown item {external_id!r}"
    if external_id in seen:
        return None, (
            f"row {number}: duplicate prediction for item {external_id!r} "
            f"(first in row {seen[external_id]})"
        )
    seen[external_id] = number
    confidence = row.get("confidence")
    if confidence is not None:
        confidence = _number(confidence)
        if confidence is None or not 0.0 <= confidence <= 1.0:
            return None, f"row {number}: confidence must be a number between 0 and 1"
    value = row.get("value")
    image_sizes = image_sizes or {}
    prediction: dict[str, Any] = {"item_id": items[external_id], "confidence": confidence}
    if task == TaskType.DETECTION:
        boxes, fault = _check_boxes(value, classes, image_sizes.get(external_id))
        if fault is not None:
            return None, f"row {number}: {fault}"
        prediction["value_boxes"] = boxes
    elif task == TaskType.CLASSIFICATION:
        if not isinstance(value, str) or value not in classes:
            return None, f"row {number}: unknown class {value!r}"
        prediction["label_class_id"] = classes[value]
    elif task == TaskType.RATING:
        number_value = _number(value)
        if number_value is None:
            return None, f"row {number}: value must be a number"
        prediction["value_number"] = number_value
    else:
        if not isinstance(value, str):
            return None, f"row {number}: value must be a text"
        prediction["value_text"] = value
    return prediction, None


def _check_boxes(value: Any, classes: dict[str, int], image_size) -> tuple[list | None, str | None]:
    """Predicted boxes ``[{class, x, y, w, h, score?}]`` (score 0-1, default 1) in canonical
    form, or (None, the fault)."""
    if not isinstance(value, list):
        return None, "value must be a list of boxes {class, x, y, w, h, score} ([] = none)"
    scores = []
    for n, raw in enumerate(value, start=1):
        if not isinstance(raw, dict):
            scores.append(1.0)  # normalize_boxes names the malformed box
            continue
        score = _number(raw.get("score", 1.0))
        if score is None or not 0.0 <= score <= 1.0:
            return None, f"box {n}: score must be a number between 0 and 1"
        scores.append(score)
    try:
        boxes = normalize_boxes(
            [
                {k: v for k, v in b.items() if k != "score"} if isinstance(b, dict) else b
                for b in value
            ],
            class_keys=classes,
            image_size=image_size,
        )
    except BoxError as exc:
        return None, str(exc)
    return [{**b, "score": s} for b, s in zip(boxes, scores, strict=True)], None


# ------------------------------------------------------------------ error analysis


def _slice_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _entry(key, value, n: int, n_correct: int, hlp, hlp_reason) -> dict:
    reasons: dict[str, str] = {}
    accuracy = None
    if n == 0:
        reasons["model_accuracy"] = "no predicted item with a reference label in this slice"
    else:
        accuracy = n_correct / n
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


@dataclass(frozen=True)
class _Slice:
    """One slice of the project's items: a metadata value or a tag."""

    key: str
    value: str
    items: np.ndarray  # item ids of the project in the slice, sorted


@dataclass(frozen=True)
class _Scored:
    """The items of a model run that have a reference label (sorted by item id)."""

    items: np.ndarray  # (S,) item ids
    reference: np.ndarray  # (S,) class codes
    predicted: np.ndarray  # (S,) class codes
    n_gold: int
    n_consensus: int
    n_predicted: int
    # scored items per final_label_source (ground_truth | sme | consensus)
    by_source: dict

    @property
    def correct(self) -> np.ndarray:
        return self.reference == self.predicted

    def positions(self, items: np.ndarray) -> np.ndarray:
        """Positions (into the scored arrays) of those of ``items`` that are scored."""
        return np.flatnonzero(np.isin(self.items, items, assume_unique=True))


def _references(
    project: Project, classes: ClassMap
) -> tuple[dict, dict, AgreementRun | None, dict]:
    """(gold {item: code}, consensus {item: code}, the agreement run read,
    {item: final_label_source}).

    The reference of an item is its final label (``consistency.selectors.final_labels``:
    its ground truth, else an SME decision, else the majority consensus of the latest
    finished agreement run). Ground truth and SME decisions count together in ``n_gold``
    (the first contract); ``final_label_source`` tells them apart. Codes are root classes
    after merges.
    """
    run = latest_finished_run(project)
    gold: dict[int, int] = {}
    consensus: dict[int, int] = {}
    sources: dict[int, str] = {}
    for item_id, final in final_labels(project, run, method=ConsensusMethod.MAJORITY).items():
        if final.label_class_id not in classes.code_of:
            continue
        code = classes.code_of[final.label_class_id]
        (consensus if final.source == SOURCE_CONSENSUS else gold)[item_id] = code
        sources[item_id] = final.source
    return gold, consensus, run, sources


def _scored(
    model_run: ModelRun, classes: ClassMap, gold: dict, consensus: dict, sources: dict
) -> _Scored:
    rows = Prediction.objects.filter(model_run=model_run, label_class__isnull=False).values_list(
        "item_id", "label_class_id"
    )
    items, reference, predicted = [], [], []
    n_predicted = n_gold = n_consensus = 0
    by_source = dict.fromkeys(FINAL_LABEL_SOURCES, 0)
    for item_id, class_id in rows.iterator(chunk_size=20_000):
        n_predicted += 1
        if class_id not in classes.code_of:
            continue  # a class deleted from under the run: no root to compare
        if item_id in gold:
            ref = gold[item_id]
            n_gold += 1
        elif item_id in consensus:
            ref = consensus[item_id]
            n_consensus += 1
        else:
            continue
        by_source[sources[item_id]] += 1
        items.append(item_id)
        reference.append(ref)
        predicted.append(classes.code_of[class_id])
    order = np.argsort(np.asarray(items, dtype=np.int64), kind="stable")
    return _Scored(
        items=np.asarray(items, dtype=np.int64)[order],
        reference=np.asarray(reference, dtype=np.int64)[order],
        predicted=np.asarray(predicted, dtype=np.int64)[order],
        n_gold=n_gold,
        n_consensus=n_consensus,
        n_predicted=n_predicted,
        by_source=by_source,
    )


def _slices(project: Project) -> tuple[list[_Slice], dict[str, str]]:
    """Every metadata slice (keys with at most ``MAX_SLICE_DISTINCT`` values) and every
    tag (with ``(no tag)`` for the untagged items, when any item is tagged), in the order
    metadata keys, values, then tags -- each sorted. Returns (slices, reasons)."""
    reasons: dict[str, str] = {}
    metadata = dict(Item.objects.filter(project=project).values_list("id", "metadata"))
    out: list[_Slice] = []
    keys = sorted({k for m in metadata.values() if isinstance(m, dict) for k in m})
    for key in keys:
        groups: dict[str, list[int]] = {}
        for item_id, m in metadata.items():
            value = _slice_text(m.get(key) if isinstance(m, dict) else None)
            groups.setdefault(value, []).append(item_id)
        if len(groups) > MAX_SLICE_DISTINCT:
            reasons[f"slice:{key}"] = (
                f"{len(groups)} distinct values (more than {MAX_SLICE_DISTINCT}); not sliced"
            )
            continue
        for value in sorted(groups):
            out.append(_Slice(key, value, np.sort(np.asarray(groups[value], dtype=np.int64))))
    tags: dict[str, list[int]] = {}
    for item_id, tag in Item.tags.through.objects.filter(item__project=project).values_list(
        "item_id", "tag__name"
    ):
        tags.setdefault(tag, []).append(item_id)
    if tags:
        tagged = {i for ids in tags.values() for i in ids}
        tags[NO_TAG] = [i for i in metadata if i not in tagged]
    for tag in sorted(tags):
        out.append(_Slice("tag", tag, np.unique(np.asarray(tags[tag], dtype=np.int64))))
    return out, reasons


def _human_labels(project: Project, classes: ClassMap) -> dict:
    """The inputs of :func:`group_hlp`: current human labels as codes, and ground truth.

    Ground truth for HLP excludes SME decisions (``source == sme``): those are made on the
    items humans find hard, so measuring humans against them is biased by construction.
    The ground-truth labeler of an item is the labeler whose annotation carries its ground
    truth (``GoldLabel.labeler``); that labeler's own label on the item is left out.
    """
    cols = scan_annotations(project.pk)
    codes = classes.codes(cols.label_class)
    keep = codes >= 0
    gold_rows = [
        (item_id, classes.code_of[class_id], labeler if labeler is not None else -1)
        for item_id, class_id, labeler in GoldLabel.objects.filter(
            item__project=project, label_class__isnull=False
        )
        .exclude(source=GoldSource.SME)
        .values_list("item_id", "label_class_id", "labeler_id")
        if class_id in classes.code_of
    ]
    gold = np.asarray(gold_rows, dtype=np.int64).reshape(-1, 3)
    return {
        "label_item": cols.item[keep],
        "label_labeler": cols.labeler[keep],
        "label_value": codes[keep],
        "gold_item": gold[:, 0],
        "gold_value": gold[:, 1],
        "gold_labeler": gold[:, 2],
    }


def _model_as_labeler(
    model_run: ModelRun, classes: ClassMap, humans: dict, consensus: dict, results: dict
) -> dict:
    """The model as one more labeler (see :func:`consistency.metrics.error_analysis.
    model_as_labeler`), labelers by username, with the warnings a reader needs: a model
    "above" the humans' spread where the labels follow two conventions may only have
    picked one of them."""
    predicted = _class_predictions(model_run, classes)
    out = ea.model_as_labeler(
        humans["label_item"],
        humans["label_labeler"],
        humans["label_value"],
        np.fromiter(predicted.keys(), dtype=np.int64, count=len(predicted)),
        np.fromiter(predicted.values(), dtype=np.int64, count=len(predicted)),
        n_classes=len(classes.keys),
        consensus_item=np.fromiter(consensus.keys(), dtype=np.int64, count=len(consensus)),
        consensus_value=np.fromiter(consensus.values(), dtype=np.int64, count=len(consensus)),
    )
    ids = [e["labeler"] for e in out["per_labeler"]]
    names = dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
    for entry in out["per_labeler"]:
        entry["labeler_id"] = entry["labeler"]
        entry["labeler"] = names.get(entry["labeler"], f"user {entry['labeler']}")
    out["human_mean_kappas"] = {
        names.get(k, f"user {k}"): v for k, v in out["human_mean_kappas"].items()
    }
    warnings = []
    if out["position"] == "above":
        warnings.append(
            "the model agrees with the labelers more than they agree with each other: "
            "check that it does not just follow one labeling convention"
        )
        conventions = ((results.get("hlp") or {}).get("warnings")) or []
        if conventions:
            warnings.append(
                "the latest agreement run found labels that follow two conventions ("
                + "; ".join(conventions)
                + "): HLP is low because humans disagree on the convention, so a model "
                "that picked one convention beats HLP without being better"
            )
    out["warnings"] = warnings
    out["definition"] = (
        "Cohen's kappa of the model with each labeler on the items both labeled; "
        "consensus: the latest agreement run's majority label; human_spread: the range of "
        "each labeler's mean kappa with the other labelers (current labels)"
    )
    return out


def _not_classification(project: Project) -> dict:
    why = f"error analysis is computed for classification projects (this one: {project.task_type})"
    return {
        "reference": None,
        "overall": _entry(None, None, 0, 0, None, why),
        "slices": [],
        "prioritisation": [],
        "tags": [],
        "per_class": [],
        "confusion": None,
        "model_as_labeler": None,
        "label_errors": [],
        "reasons": dict.fromkeys(
            ("overall", "prioritisation", "tags", "per_class", "confusion", "model_as_labeler"),
            why,
        ),
    }


def error_analysis(model_run: ModelRun) -> dict:
    """The model's error analysis against the reference labels.

    Returns the DESIGN "Error analysis" document: ``reference`` (where the reference
    labels came from), ``overall`` and ``slices`` (accuracy beside the latest agreement
    run's HLP), ``prioritisation`` (accuracy beside HLP measured per tag and metadata
    slice, ranked by potential gain; see :mod:`consistency.metrics.error_analysis`),
    ``tags`` (share of data, share of errors, error rate), ``per_class`` and
    ``confusion`` (rows: reference, columns: prediction), ``reasons``. Fractions are in
    [0, 1]; a figure that cannot be computed is None with a reason.
    """
    project = model_run.project
    if project.task_type == TaskType.DETECTION:
        slices, _ = _slices(project)
        return box_runs.detection_error_analysis(
            model_run, [(s.key, s.value, s.items.tolist()) for s in slices]
        )
    if project.task_type != TaskType.CLASSIFICATION:
        return _not_classification(project)

    classes = class_map(project, "nominal")
    gold, consensus, run, sources = _references(project, classes)
    scored = _scored(model_run, classes, gold, consensus, sources)
    correct = scored.correct
    slices, reasons = _slices(project)
    positions = [scored.positions(s.items) for s in slices]

    # ---- accuracy beside the latest agreement run's HLP (the first contract, kept)
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
    n_scored = int(scored.items.size)
    overall = _entry(None, None, n_scored, int(correct.sum()), overall_hlp, overall_hlp_reason)
    if not scored.n_predicted:
        reasons["overall"] = "the model run has no class predictions"
    run_slices = {
        (s.get("key"), s.get("value")): s
        for s in results.get("slices") or []
        if isinstance(s, dict) and s.get("value") is not None
    }

    def run_hlp(key: str, value: str) -> tuple[float | None, str | None]:
        if run is None:
            return None, no_run
        found = run_slices.get((key, value))
        if found is None:
            return None, f"agreement run {run.pk} has no slice {key}={value}"
        if found.get("hlp") is None:
            why = (found.get("reasons") or {}).get("hlp")
            return None, why or f"agreement run {run.pk} has no HLP for {key}={value}"
        return found["hlp"], None

    entries = []
    for s, pos in zip(slices, positions, strict=True):
        hlp, why = run_hlp(s.key, s.value)
        entries.append(_entry(s.key, s.value, int(pos.size), int(correct[pos].sum()), hlp, why))

    # ---- prioritisation: HLP measured on each slice's items, ranked by potential gain
    humans = _human_labels(project, classes)
    hlps = ea.group_hlp(
        humans["label_item"],
        humans["label_labeler"],
        humans["label_value"],
        [s.items for s in slices],
        gold_item=humans["gold_item"],
        gold_value=humans["gold_value"],
        gold_labeler=humans["gold_labeler"],
    )
    table = ea.prioritisation(
        [
            {
                "key": s.key,
                "value": s.value,
                "n_items": int(pos.size),
                "n_correct": int(correct[pos].sum()),
                "hlp": hlp,
            }
            for s, pos, hlp in zip(slices, positions, hlps, strict=True)
        ],
        n_scored=n_scored,
        min_items=MIN_SLICE_ITEMS,
    )
    tags = ea.tag_statistics(
        correct,
        {
            s.value: pos
            for s, pos in zip(slices, positions, strict=True)
            if s.key == "tag" and s.value != NO_TAG
        },
    )
    report = ea.classification_report(scored.reference, scored.predicted, classes.keys)
    as_labeler = _model_as_labeler(model_run, classes, humans, consensus, results)
    suspected = suspected_label_errors(model_run)
    reasons.update(suspected["reasons"])

    return {
        "reference": {
            "agreement_run": run.pk if run is not None else None,
            "n_gold": scored.n_gold,
            "n_consensus": scored.n_consensus,
            "final_label_source": scored.by_source,
            "n_without_reference": scored.n_predicted - n_scored,
        },
        "overall": overall,
        "slices": entries,
        "prioritisation": table,
        "tags": tags,
        "per_class": report["per_class"],
        "confusion": report["confusion"],
        "macro_f1": report["macro_f1"],
        "model_as_labeler": as_labeler,
        "label_errors": label_error_rows(model_run, suspected),
        "hlp_basis": {
            "method": "gold" if humans["gold_item"].size else "pairwise",
            "n_ground_truth_items": int(humans["gold_item"].size),
            "min_slice_items": MIN_SLICE_ITEMS,
            "definition": (
                "per slice: human labels against ground truth (imported or set by a "
                "manager; SME decisions excluded), the ground-truth labeler's own label "
                "left out; where the slice has no such label, pairwise agreement"
            ),
        },
        "reasons": reasons,
    }


# ------------------------------------------------------------------ label errors


def _label_error_signature(external_id: str) -> str:
    return f"{FlagKind.LABEL_ERROR}|items={external_id}"


def suspected_label_errors(model_run: ModelRun) -> dict:
    """Items whose final label the model confidently contradicts while the humans split.

    Final labels: ``consistency.selectors.final_labels`` (ground truth, else an SME
    decision, else the majority consensus of the latest finished agreement run); human
    labels: the current annotations; both as root classes after merges. Only predictions
    with a confidence count (the per-class thresholds are means over them). See
    :func:`consistency.metrics.error_analysis.label_errors` for the rule and the score.

    Returns ``{"agreement_run": the run read or None, "thresholds": {class key: mean
    confidence or None}, "errors": [{item (id), external_id, final_label, final_source,
    predicted, confidence, threshold, human_agreement, n_labels, score}] by score,
    "reasons": {}}``. Not computable (not classification, no confidences, no final
    labels): ``errors`` empty and a reason under ``"label_errors"``.
    """
    project = model_run.project
    out: dict[str, Any] = {"agreement_run": None, "thresholds": {}, "errors": [], "reasons": {}}
    if project.task_type != TaskType.CLASSIFICATION:
        out["reasons"]["label_errors"] = (
            f"label errors are found in classification projects (this one: {project.task_type})"
        )
        return out
    classes = class_map(project, "nominal")
    rows = [
        (item_id, classes.code_of[class_id], confidence)
        for item_id, class_id, confidence in Prediction.objects.filter(
            model_run=model_run, label_class__isnull=False, confidence__isnull=False
        )
        .values_list("item_id", "label_class_id", "confidence")
        .iterator(chunk_size=20_000)
        if class_id in classes.code_of
    ]
    if not rows:
        out["reasons"]["label_errors"] = "the model run has no class predictions with a confidence"
        return out
    run = latest_finished_run(project)
    out["agreement_run"] = run.pk if run is not None else None
    final = {
        item_id: (classes.code_of[f.label_class_id], f.source)
        for item_id, f in final_labels(project, run, method=ConsensusMethod.MAJORITY).items()
        if f.label_class_id in classes.code_of
    }
    if not final:
        out["reasons"]["label_errors"] = (
            "no item has a final label (no agreement run has finished and no SME decision)"
        )
        return out
    cols = scan_annotations(project.pk)
    codes = classes.codes(cols.label_class)
    keep = codes >= 0
    found = ea.label_errors(
        np.asarray([r[0] for r in rows], dtype=np.int64),
        np.asarray([r[1] for r in rows], dtype=np.int64),
        np.asarray([r[2] for r in rows], dtype=np.float64),
        np.fromiter(final.keys(), dtype=np.int64, count=len(final)),
        np.asarray([v[0] for v in final.values()], dtype=np.int64),
        cols.item[keep],
        codes[keep],
        n_classes=len(classes.keys),
    )
    keys = classes.keys
    out["thresholds"] = dict(zip(keys, found["thresholds"], strict=True))
    external = {}
    ids = [e["item"] for e in found["errors"]]
    for chunk in chunks(ids):
        external.update(Item.objects.filter(pk__in=chunk).values_list("id", "external_id"))
    out["errors"] = [
        {
            "item": e["item"],
            "external_id": external[e["item"]],
            "final_label": keys[e["final"]],
            "final_source": final[e["item"]][1],
            "predicted": keys[e["predicted"]],
            "confidence": e["confidence"],
            "threshold": e["threshold"],
            "human_agreement": e["human_agreement"],
            "n_labels": e["n_labels"],
            "score": e["score"],
        }
        for e in found["errors"]
    ]
    return out


@transaction.atomic
def raise_label_error_flags(model_run: ModelRun) -> list[Flag]:
    """Store the model run's suspected label errors as open flags of kind ``label_error``.

    Each flag holds one item, links to the latest finished agreement run (flags belong to
    a run; that run's consensus is the final label questioned), has ``impact`` = the
    score, the predicted and final classes, and the model run in ``evidence``. An item
    with an open or dismissed ``label_error`` flag gets no new one, so uploading the
    same predictions again adds nothing. Without a finished agreement run no flag is
    raised. One ``flags.generated`` event when flags were written. Returns them.
    """
    found = suspected_label_errors(model_run)
    run_id = found["agreement_run"]
    if run_id is None or not found["errors"]:
        return []
    project = model_run.project
    taken = {
        (evidence or {}).get("signature")
        for evidence in Flag.objects.filter(
            project=project,
            kind=FlagKind.LABEL_ERROR,
            status__in=(FlagStatus.OPEN, FlagStatus.DISMISSED),
        ).values_list("evidence", flat=True)
    }
    class_ids = dict(
        LabelClass.objects.filter(project=project, merged_into__isnull=True).values_list(
            "key", "id"
        )
    )
    flags, links = [], []
    for e in found["errors"]:
        signature = _label_error_signature(e["external_id"])
        if signature in taken:
            continue
        taken.add(signature)
        flags.append(
            Flag(
                project=project,
                run_id=run_id,
                kind=FlagKind.LABEL_ERROR,
                impact=e["score"],
                suggested_action="set_label",
                summary=(
                    f"model run {model_run.name!r} predicts {e['predicted']} "
                    f"({e['confidence']:.0%} confident); final label {e['final_label']}, "
                    f"which {e['human_agreement']:.0%} of {e['n_labels']} human labels give"
                )[:300],
                evidence={
                    "model_run": model_run.pk,
                    "model_run_name": model_run.name,
                    "predicted": e["predicted"],
                    "confidence": e["confidence"],
                    "threshold": e["threshold"],
                    "final_label": e["final_label"],
                    "final_source": e["final_source"],
                    "human_agreement": e["human_agreement"],
                    "n_labels": e["n_labels"],
                    "score": e["score"],
                    "definition": (
                        "score = model confidence x (1 - share of human labels agreeing "
                        "with the final label); flagged when the confidence reaches the "
                        "mean confidence of the model's predictions of that class and the "
                        "human labels are split"
                    ),
                    "signature": signature,
                },
            )
        )
        links.append(
            (
                e["item"],
                [class_ids[k] for k in (e["predicted"], e["final_label"]) if k in class_ids],
            )
        )
    Flag.objects.bulk_create(flags)
    Flag.items.through.objects.bulk_create(
        [
            Flag.items.through(flag_id=f.pk, item_id=item)
            for f, (item, _) in zip(flags, links, strict=True)
        ],
        batch_size=2000,
    )
    Flag.classes.through.objects.bulk_create(
        [
            Flag.classes.through(flag_id=f.pk, labelclass_id=c)
            for f, (_, cs) in zip(flags, links, strict=True)
            for c in cs
        ],
        batch_size=2000,
    )
    if flags:
        events.flags_generated(
            project_id=project.pk,
            agreement_run_id=run_id,
            after={
                "n_flags": len(flags),
                "by_kind": {FlagKind.LABEL_ERROR.value: len(flags)},
                "model_run": model_run.pk,
            },
        )
    return flags


def label_error_rows(
    model_run: ModelRun, found: dict | None = None, *, limit: int = MAX_ERRORS_LISTED
) -> list[dict]:
    """The payload's ``label_errors``: the top ``limit`` suspected label errors (of
    ``found``, :func:`suspected_label_errors` when not given) as ``{item, external_id,
    final_label, final_source, predicted, confidence, human_agreement, score, flag}``
    (``final_source``: ground_truth | sme | consensus; ``flag``: id of
    the item's latest ``label_error`` flag, or None)."""
    if found is None:
        found = suspected_label_errors(model_run)
    errors = found["errors"][:limit]
    flag_of: dict[int, int] = {}
    for item_id, flag_id in (
        Flag.items.through.objects.filter(
            flag__project_id=model_run.project_id,
            flag__kind=FlagKind.LABEL_ERROR,
            item_id__in=[e["item"] for e in errors],
        )
        .order_by("flag_id")
        .values_list("item_id", "flag_id")
    ):
        flag_of[item_id] = flag_id
    keep = (
        "item",
        "external_id",
        "final_label",
        "final_source",
        "predicted",
        "confidence",
        "human_agreement",
    )
    return [
        {**{k: e[k] for k in keep}, "score": e["score"], "flag": flag_of.get(e["item"])}
        for e in errors
    ]


# ------------------------------------------------------------------ comparison


def _class_predictions(model_run: ModelRun, classes: ClassMap) -> dict[int, int]:
    """``{item id: root class code}`` of a run's class predictions."""
    rows = Prediction.objects.filter(model_run=model_run, label_class__isnull=False).values_list(
        "item_id", "label_class_id"
    )
    return {
        item_id: classes.code_of[class_id]
        for item_id, class_id in rows.iterator(chunk_size=20_000)
        if class_id in classes.code_of
    }


def compare_runs(model_run: ModelRun, other: ModelRun) -> dict:
    """Two model runs of one project side by side (a candidate in shadow mode).

    Both are scored on the same items: those both runs predicted and that have a
    reference label (see :func:`error_analysis`). Returns ``{model_run, other_run,
    n_common, n_scored, disagreement_share, overall, slices, items, reasons}``:
    ``slices[]`` = ``{key, value, n_items, model_accuracy, other_accuracy, difference}``
    with ``difference = other_accuracy - model_accuracy``; ``disagreement_share`` = items
    the two predict differently / items both predicted (reference or not); ``items`` =
    the scored items where exactly one run is right, by item id, as ``{item (external
    id), reference, model, other, model_correct, other_correct}``.

    Raises ``ValueError`` when the runs belong to different projects.
    """
    if model_run.project_id != other.project_id:
        raise ValueError("both model runs must belong to the same project")
    project = model_run.project
    reasons: dict[str, str] = {}
    if project.task_type != TaskType.CLASSIFICATION:
        why = f"model runs are compared in classification projects (this one: {project.task_type})"
        return {
            "model_run": model_run.pk,
            "other_run": other.pk,
            "n_common": 0,
            "n_scored": 0,
            "disagreement_share": None,
            "overall": None,
            "slices": [],
            "items": [],
            "reasons": {"disagreement_share": why, "slices": why},
        }
    classes = class_map(project, "nominal")
    gold, consensus, _, sources = _references(project, classes)
    mine = _class_predictions(model_run, classes)
    theirs = _class_predictions(other, classes)
    common = np.asarray(sorted(set(mine) & set(theirs)), dtype=np.int64)
    a = np.asarray([mine[i] for i in common.tolist()], dtype=np.int64)
    b = np.asarray([theirs[i] for i in common.tolist()], dtype=np.int64)
    disagreement = float((a != b).mean()) if common.size else None
    if disagreement is None:
        reasons["disagreement_share"] = "no item is predicted by both runs"

    reference = np.asarray(
        [gold.get(i, consensus.get(i, -1)) for i in common.tolist()], dtype=np.int64
    )
    has_ref = reference >= 0
    items, reference, a, b = common[has_ref], reference[has_ref], a[has_ref], b[has_ref]
    right_a, right_b = a == reference, b == reference
    slices, slice_reasons = _slices(project)
    reasons.update(slice_reasons)
    groups = [{"key": None, "value": None, "positions": np.arange(items.size)}] + [
        {
            "key": s.key,
            "value": s.value,
            "positions": np.flatnonzero(np.isin(items, s.items, assume_unique=True)),
        }
        for s in slices
    ]
    compared = ea.compare_groups(right_a, right_b, groups)

    split = np.flatnonzero(right_a != right_b)
    external = dict(
        Item.objects.filter(pk__in=items[split].tolist()).values_list("id", "external_id")
    )
    keys = classes.keys
    rows = [
        {
            "item": external[int(items[p])],
            "reference": keys[reference[p]],
            "final_label_source": sources[int(items[p])],
            "model": keys[a[p]],
            "other": keys[b[p]],
            "model_correct": bool(right_a[p]),
            "other_correct": bool(right_b[p]),
        }
        for p in split.tolist()
    ]
    return {
        "model_run": model_run.pk,
        "other_run": other.pk,
        "n_common": int(common.size),
        "n_scored": int(items.size),
        "disagreement_share": disagreement,
        "overall": compared[0],
        "slices": compared[1:],
        "items": rows,
        "reasons": reasons,
    }
