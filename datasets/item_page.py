"""The item page: one item's payload, labels, consensus per run, flags and decisions, and
its whole history (events with before/after) — the provenance of one dataset row, read
in a browser. Lives in ``datasets`` because the history is ``datasets.selectors.
item_history``, which reads labeling, consistency and review."""

from __future__ import annotations

import json

from django.shortcuts import render
from django.urls import reverse

from consistency.models import Consensus
from datasets import selectors
from labeling import selectors as labeling_selectors
from labeling.access import REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import Annotation, Item, ItemDecision


def _pretty(value) -> str:
    if value in (None, "", {}, []):
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


@page_access(
    REVIEW_ROLES,
    scope=Item.objects.select_related("source_batch__created_by", "project"),
    url_kwarg="item_id",
)
def item_page(request, item: Item, role: str):
    """Everything about one item for review roles; labelers' comments for SMEs and
    managers only (viewers see the labels without them)."""
    project = item.project
    history = selectors.item_history(item)
    for entry in history["timeline"]:
        entry["before_text"] = _pretty(entry.get("before"))
        entry["after_text"] = _pretty(entry.get("after"))
        entry["value_text"] = _pretty(entry.get("value"))
    labels = list(
        Annotation.objects.filter(item=item)
        .select_related("labeler", "label_class", "guideline")
        .order_by("-is_current", "created_at", "id")
    )
    label_rows = [
        {
            "labeler": a.labeler.get_username(),
            "value": labeling_selectors.annotation_value(a),
            "created_at": a.created_at,
            "guideline": a.guideline.version if a.guideline else None,
            "comment": a.comment,
            "is_current": a.is_current,
            "time_spent_s": round(a.time_spent_ms / 1000, 1) if a.time_spent_ms else None,
            "source": a.get_source_display(),
        }
        for a in labels
    ]
    consensus = list(
        Consensus.objects.filter(item=item)
        .select_related("run", "label_class")
        .order_by("-run__created_at", "-run_id", "method")
    )
    decision = ItemDecision.objects.filter(item=item).select_related("label_class", "decided_by")
    image_src = ""
    if item.image:
        image_src = reverse("item-image", args=[item.pk])
    return render(
        request,
        "manage/item.html",
        {
            "project": project,
            "role": role,
            "item": item,
            "image_src": image_src,
            "metadata_rows": labeling_selectors.metadata_rows(item.metadata),
            "history": history,
            "labels": label_rows,
            "show_comments": role in SME_ROLES,
            "consensus": consensus,
            "flags": item.flags.select_related("run").order_by("-created_at"),
            "decision": decision.first(),
        },
    )
