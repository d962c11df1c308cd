"""Bounding boxes of detection projects: the one validator every entry point uses.

A box is ``{"class": <class key>, "x": .., "y": .., "w": .., "h": ..}`` in image pixels,
``x``/``y`` the top-left corner. An annotation's value is a list of boxes; the empty list
is an explicit "nothing there", not a skip.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

MAX_BOXES_PER_ANNOTATION = 500
# Coordinates beyond this are a unit mistake (percent vs pixels, or a typo), not an image.
MAX_COORDINATE = 100_000.0
# Rounding keeps stored values and exports stable across formats (COCO, YOLO, LS percent).
COORDINATE_DECIMALS = 2
BOX_FIELDS = ("x", "y", "w", "h")


class BoxError(ValueError):
    """A box list that cannot be stored; the message names the box and field."""


def normalize_boxes(
    value: Any,
    *,
    class_keys: Collection[str],
    image_size: tuple[int, int] | None = None,
) -> list[dict]:
    """Validate ``value`` as a list of boxes and return it in canonical form.

    ``class_keys``: the project's class keys. ``image_size``: ``(width, height)`` in pixels
    when known; a box may then not reach past the image by more than one pixel (rounding
    in other tools). Returns a new list of ``{"class", "x", "y", "w", "h"}`` dicts with
    coordinates rounded to 2 decimals, in the order given. Raises :class:`BoxError`.
    """
    if not isinstance(value, list):
        raise BoxError(
            f"a detection label is a list of boxes {{class, x, y, w, h}} ([] = nothing "
            f"there), got {type(value).__name__}"
        )
    if len(value) > MAX_BOXES_PER_ANNOTATION:
        raise BoxError(f"at most {MAX_BOXES_PER_ANNOTATION} boxes per label, got {len(value)}")
    boxes = []
    for n, raw in enumerate(value, start=1):
        if not isinstance(raw, dict):
            raise BoxError(f"box {n}: expected an object {{class, x, y, w, h}}")
        key = raw.get("class", raw.get("label"))
        if not isinstance(key, str) or key not in class_keys:
            known = ", ".join(sorted(class_keys))
            raise BoxError(f"box {n}: unknown class {key!r}; known classes: {known}")
        box: dict[str, Any] = {"class": key}
        for field in BOX_FIELDS:
            number = raw.get(field)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise BoxError(f"box {n}: {field} must be a number, got {number!r}")
            if not math.isfinite(number) or abs(number) > MAX_COORDINATE:
                raise BoxError(f"box {n}: {field} must be a finite number of pixels")
            box[field] = round(float(number), COORDINATE_DECIMALS)
        if box["w"] <= 0 or box["h"] <= 0:
            raise BoxError(f"box {n}: w and h must be positive")
        if box["x"] < 0 or box["y"] < 0:
            raise BoxError(f"box {n}: x and y (top-left corner) must not be negative")
        if image_size is not None:
            width, height = image_size
            if box["x"] + box["w"] > width + 1 or box["y"] + box["h"] > height + 1:
                raise BoxError(f"box {n}: reaches outside the {width}x{height} image")
        boxes.append(box)
    return boxes
