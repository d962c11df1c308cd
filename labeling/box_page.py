"""The labeling page of detection projects: what the page needs beyond a class page.

The page draws boxes with ``static/concord/boxes.js`` and posts them as JSON text in the
form's ``value`` field. Blind as every labeling page: the only boxes it shows are the
labeler's own (when revising) and the reference boxes of the guideline's example items
(ground truth, else an SME decision), never another labeler's.
"""

from __future__ import annotations

import json
from typing import Any

from labeling import selectors
from labeling.models import GoldLabel, Item, ItemDecision, Project


def page_context(*, project: Project, own_value: Any, item: Item | None) -> dict:
    """Template context of a detection page: ``box_classes`` (display order, each with
    its key ``kbd``) and ``box_state`` for ``json_script`` (classes, the labeler's own
    boxes when revising, the image size in pixels when known)."""
    rows = selectors.display_classes(project)
    return {
        "box_classes": rows,
        "box_state": {
            "classes": [{"key": r["key"], "name": r["name"], "kbd": r["kbd"]} for r in rows],
            "boxes": own_value if isinstance(own_value, list) else [],
            "revising": isinstance(own_value, list),
            "image": (
                {"width": item.width, "height": item.height}
                if item is not None and item.width and item.height
                else None
            ),
        },
    }


def add_example_boxes(examples: list[dict]) -> None:
    """Give each guideline example (``{"item": Item, ...}``) its reference boxes: ground
    truth, else the SME decision, as ``boxes`` (percent of the image, for overlaying a
    thumbnail of any size) when the image size is known, and ``box_count``."""
    ids = [ex["item"].pk for ex in examples]
    reference = dict(
        ItemDecision.objects.filter(item_id__in=ids, value_boxes__isnull=False).values_list(
            "item_id", "value_boxes"
        )
    )
    reference.update(
        GoldLabel.objects.filter(item_id__in=ids, value_boxes__isnull=False).values_list(
            "item_id", "value_boxes"
        )
    )
    for ex in examples:
        item = ex["item"]
        boxes = reference.get(item.pk)
        ex["box_count"] = None if boxes is None else len(boxes)
        ex["boxes"] = []
        if boxes and item.width and item.height:
            ex["boxes"] = [
                {
                    "class": b["class"],
                    "left": round(100 * b["x"] / item.width, 3),
                    "top": round(100 * b["y"] / item.height, 3),
                    "width": round(100 * b["w"] / item.width, 3),
                    "height": round(100 * b["h"] / item.height, 3),
                }
                for b in boxes
            ]


def posted_boxes(text: str, *, nothing: bool = False) -> Any:
    """The boxes of a posted form (JSON text), or [] when the labeler chose "nothing
    there"; text that is not JSON is returned as is, and the value check refuses it with
    a message naming the expected shape."""
    if nothing:
        return []
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
