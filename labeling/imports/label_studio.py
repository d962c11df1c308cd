"""The Label Studio adapter: a Label Studio JSON export (a list of tasks) as item rows
and label rows, for :func:`labeling.imports.annotations.import_label_studio` to check
and store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from labeling.imports.errors import _error
from labeling.models import TaskType

LABEL_STUDIO_PAYLOAD = {"image": "image_url", "text": "text", "audio": "audio_url"}


def is_label_studio_export(document: Any) -> bool:
    """True for a list of Label Studio tasks (objects with ``data`` and ``annotations``)."""
    return (
        isinstance(document, list)
        and bool(document)
        and all(isinstance(t, dict) and "data" in t and "annotations" in t for t in document)
    )


def label_studio_labeler(completed_by: Any) -> str | None:
    """The Concord labeler id for a Label Studio ``completed_by``: the user's email when
    the export carries a user object with one, else ``ls-user-<id>``."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip().lower()
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int | str) and not isinstance(completed_by, bool):
        text = str(completed_by).strip()
        if text:
            return f"ls-user-{text}"
    return None


def _label_studio_value(results: Any, task_type: str) -> Any:
    """The value of an annotation's ``result``: the first choice of a ``choices`` result,
    the text of a ``textarea`` result, the number of a ``rating`` result. Transcription
    projects prefer the text, the others the choice."""
    if not isinstance(results, list):
        return None
    found: dict[str, Any] = {}
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            continue
        kind, value = result.get("type"), result["value"]
        if kind == "choices" and value.get("choices") and "choices" not in found:
            found["choices"] = value["choices"][0]
        elif kind == "textarea" and value.get("text") and "textarea" not in found:
            text = value["text"]
            found["textarea"] = "\n".join(text) if isinstance(text, list) else text
        elif kind == "rating" and value.get("rating") is not None and "rating" not in found:
            found["rating"] = value["rating"]
    preference = (
        ("textarea", "choices", "rating")
        if task_type == TaskType.TRANSCRIPTION
        else ("choices", "rating", "textarea")
    )
    for kind in preference:
        if kind in found:
            return found[kind]
    return None


def _label_studio_boxes(results: Any) -> tuple[list[dict] | None, tuple[int, int] | None, str]:
    """The boxes of an annotation's ``rectanglelabels`` results (or ``rectangle`` results
    labelled by a ``labels`` result with the same id), converted from Label Studio's
    percent of the image to pixels with ``original_width`` / ``original_height``.

    Returns (boxes, (width, height) or None, error message or ""). An empty result is an
    explicit "nothing there" ([]); results that hold no rectangles are an error.
    """
    if not isinstance(results, list):
        return None, None, "result must be a list"
    labels_by_id: dict[Any, list] = {}
    for result in results:
        if isinstance(result, dict) and result.get("type") == "labels":
            value = result.get("value") if isinstance(result.get("value"), dict) else {}
            labels_by_id[result.get("id")] = value.get("labels") or []
    boxes: list[dict] = []
    size: tuple[int, int] | None = None
    for index, result in enumerate(results):
        if not isinstance(result, dict) or result.get("type") not in (
            "rectanglelabels",
            "rectangle",
        ):
            continue
        where = f"result[{index}]"
        value = result.get("value")
        if not isinstance(value, dict):
            return None, None, f"{where}: value must be an object"
        names = value.get("rectanglelabels") or labels_by_id.get(result.get("id")) or []
        if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
            return None, None, f"{where}: a rectangle needs exactly one label"
        if value.get("rotation") not in (None, 0, 0.0):
            return None, None, f"{where}: rotated rectangles cannot be stored as boxes"
        width, height = result.get("original_width"), result.get("original_height")
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for v in (width, height)
        ):
            return None, None, f"{where}: original_width and original_height are needed"
        this_size = (round(width), round(height))
        if size is not None and this_size != size:
            return None, None, f"{where}: the image size differs from the other results"
        size = this_size
        coords = [value.get(k) for k in ("x", "y", "width", "height")]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords):
            return None, None, f"{where}: x, y, width and height must be numbers (percent)"
        x, y, w, h = coords
        boxes.append(
            {
                "class": names[0],
                "x": x * width / 100,
                "y": y * height / 100,
                "w": w * width / 100,
                "h": h * height / 100,
            }
        )
    if not boxes and any(
        isinstance(r, dict) and r.get("type") not in ("labels", "rectangle", "rectanglelabels")
        for r in results
    ):
        # Results, but none of them boxes: an export of another kind of project, not an
        # answer of "nothing there".
        return None, None, "no rectanglelabels results to import as boxes"
    return boxes, size, ""


def label_studio_rows(
    tasks: list, *, task_type: str, base_url: str = ""
) -> tuple[list[tuple[int, dict]], list[tuple[int, dict, str]], list[dict], int]:
    """Split a Label Studio export into item rows, label rows and errors.

    Returns (item rows as (task number, row), label rows as (task number, row, field
    prefix), errors, number of cancelled annotations skipped). Label Studio stores uploaded
    files under relative paths (``/data/upload/...``): ``base_url`` (the Label Studio
    server) turns them into URLs; without it such a task is an error saying so.
    """
    item_rows, label_rows, errors = [], [], []
    n_cancelled = 0
    for n, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            errors.append(_error(n, "data", "a task needs a 'data' object"))
            continue
        data = task["data"]
        external_id = data.get("external_id", data.get("id", task.get("id")))
        row: dict[str, Any] = {"external_id": external_id}
        metadata = {}
        for key, value in data.items():
            if key in LABEL_STUDIO_PAYLOAD:
                if key != "text" and isinstance(value, str) and value.startswith("/"):
                    if not base_url:
                        errors.append(
                            _error(
                                n,
                                f"data.{key}",
                                f"{value[:200]!r} is a path on the Label Studio server; send "
                                "?base_url=https://<your label studio> to import it as a URL",
                            )
                        )
                    row[LABEL_STUDIO_PAYLOAD[key]] = urljoin(base_url, value) if base_url else value
                else:
                    row[LABEL_STUDIO_PAYLOAD[key]] = value
            elif key not in ("external_id", "id"):
                metadata[key] = value
        if task.get("meta") and isinstance(task["meta"], dict):
            metadata.update({k: v for k, v in task["meta"].items() if k not in metadata})
        if metadata:
            row["metadata"] = metadata
        item_rows.append((n, row))
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            errors.append(_error(n, "annotations", "annotations must be a list"))
            continue
        for index, annotation in enumerate(annotations):
            prefix = f"annotations[{index}]."
            if not isinstance(annotation, dict):
                errors.append(_error(n, prefix[:-1], "an annotation must be an object"))
                continue
            if annotation.get("was_cancelled"):
                n_cancelled += 1
                continue
            image_size = None
            if task_type == TaskType.DETECTION:
                value, image_size, problem = _label_studio_boxes(annotation.get("result"))
                if problem:
                    where = problem.split(":")[0] if problem.startswith("result[") else "result"
                    errors.append(_error(n, prefix + where, problem))
                    continue
            else:
                value = _label_studio_value(annotation.get("result"), task_type)
            label = {
                "item": str(external_id) if external_id is not None else None,
                "labeler": label_studio_labeler(annotation.get("completed_by")),
                "value": value,
                "created_at": annotation.get("created_at"),
                "gold": bool(annotation.get("ground_truth")),
            }
            lead_time = annotation.get("lead_time")
            if isinstance(lead_time, int | float) and not isinstance(lead_time, bool):
                label["time_spent_ms"] = max(0, round(lead_time * 1000))
            if label["labeler"] is None:
                errors.append(_error(n, prefix + "completed_by", "completed_by names no user"))
                continue
            if label["value"] is None:
                errors.append(
                    _error(
                        n,
                        prefix + "result",
                        "no choices, textarea or rating result to import",
                    )
                )
                continue
            if image_size is not None:
                label["image_size"] = image_size  # taken off before the row checks
            label_rows.append((n, label, prefix))
    return item_rows, label_rows, errors, n_cancelled
