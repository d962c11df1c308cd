"""Reads of the datasets app: an item's history, dataset versions, diffs and lineage.

Each selector loads what it needs with a fixed number of queries (no N+1), then builds
plain data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Q, QuerySet

from datasets.models import DatasetRow, DatasetStatus, DatasetVersion
from labeling.models import (
    Annotation,
    GoldLabel,
    GoldSource,
    Item,
    ItemDecision,
    LabelClass,
    Project,
)
from labeling.selectors import annotation_value, class_roots
from provenance.models import Event, Verb
from review.models import Resolution, ResolutionAction

MERGE_VERBS = (Verb.CLASS_MERGED, Verb.CLASS_UNMERGED)
CLASS_SUBJECT_TYPES = ("label_class", "class")


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


# --- History ---------------------------------------------------------------------------------
def item_history(item: Item) -> dict:
    """The item's whole story in time order: source batch and metadata, every annotation
    and revision, gold labels, resolutions, merges of its labels' classes and guideline
    versions, each with who, when and why.

    An SME decision (``decision``, and each set-label / mark-borderline resolution of the
    item in the timeline) that contradicts the item's ground truth -- another class once
    merges are applied -- carries ``conflicts_with_ground_truth: true`` and is listed in
    ``conflicts``: it is allowed, never silent, and never overwrites the ground truth.

    ``item`` should come with ``source_batch__created_by`` selected. Nine queries in all.
    """
    project_id = item.project_id
    tags = sorted(item.tags.values_list("name", flat=True))
    annotations = list(
        Annotation.objects.filter(item=item)
        .select_related("labeler", "label_class", "guideline")
        .order_by("created_at", "id")
    )
    item_events = list(Event.objects.filter(item_id_ref=item.pk).select_related("actor"))
    gold = GoldLabel.objects.filter(item=item).select_related("label_class", "created_by").first()
    decision = (
        ItemDecision.objects.filter(item=item).select_related("label_class", "decided_by").first()
    )
    classes = {c.pk: c for c in LabelClass.objects.filter(project_id=project_id)}
    root_of = class_roots({c.pk: c.merged_into_id for c in classes.values()})
    class_ids = {a.label_class_id for a in annotations if a.label_class_id}
    if gold is not None and gold.label_class_id:
        class_ids.add(gold.label_class_id)
    if decision is not None and decision.label_class_id:
        class_ids.add(decision.label_class_id)
    # The classes a label can map to, and those mapped onto them, are all "its" classes.
    related = set(class_ids)
    for class_id in class_ids:
        current = classes.get(class_id)
        while (
            current is not None and current.merged_into_id and current.merged_into_id not in related
        ):
            related.add(current.merged_into_id)
            current = classes.get(current.merged_into_id)
    related |= {c.pk for c in classes.values() if c.merged_into_id in related}
    class_refs = {str(pk) for pk in related} | {classes[pk].key for pk in related if pk in classes}
    project_events = list(
        Event.objects.filter(project_id=project_id)
        .filter(
            Q(verb=Verb.GUIDELINE_PUBLISHED)
            | Q(
                verb__in=MERGE_VERBS,
                subject_type__in=CLASS_SUBJECT_TYPES,
                subject_id__in=class_refs,
            )
        )
        .select_related("actor")
    )
    resolutions = list(
        Resolution.objects.filter(
            Q(items=item)
            | Q(
                project_id=project_id,
                action__in=[ResolutionAction.MERGE_CLASSES, ResolutionAction.UNMERGE_CLASSES],
            )
            & (Q(label_class_id__in=related) | Q(into_class_id__in=related))
        )
        .distinct()
        .select_related("decided_by", "label_class", "into_class", "guideline")
        .order_by("created_at", "id")
    )

    events_by_annotation = {e.subject_id: e for e in item_events if e.subject_type == "annotation"}
    resolution_ids = {str(r.pk) for r in resolutions}
    timeline: list[dict] = []
    for event in item_events:
        if event.subject_type == "annotation":
            continue  # told by the annotation rows below, with the event's reason
        if event.subject_type == "resolution" and event.subject_id in resolution_ids:
            continue
        kind = {Verb.ITEM_GOLD_SET: "gold"}.get(event.verb, "item")
        timeline.append(_event_entry(event, kind))
    for annotation in annotations:
        event = events_by_annotation.get(str(annotation.pk))
        verb = (
            event.verb
            if event
            else (Verb.ANNOTATION_REVISED if annotation.supersedes_id else Verb.ANNOTATION_CREATED)
        )
        timeline.append(
            {
                "at": annotation.created_at,
                "type": "annotation",
                "verb": verb,
                "actor": _username(annotation.labeler),
                "annotation": annotation.pk,
                "value": annotation_value(annotation),
                "maps_to": _root_key(classes, root_of, annotation.label_class_id),
                "guideline_version": annotation.guideline.version if annotation.guideline else None,
                "comment": annotation.comment,
                "is_current": annotation.is_current,
                "supersedes": annotation.supersedes_id,
                "source": annotation.source,
                "reason": event.reason if event else "",
            }
        )
    truth_root = (
        root_of.get(gold.label_class_id)
        if gold is not None and gold.source != GoldSource.SME and gold.label_class_id
        else None
    )

    def conflicts(class_id: int | None) -> bool:
        """Whether a decided class contradicts the ground truth (after merges)."""
        return (
            truth_root is not None and class_id is not None and root_of.get(class_id) != truth_root
        )

    decides = (ResolutionAction.SET_LABEL, ResolutionAction.MARK_BORDERLINE)
    conflict_list = []
    for resolution in resolutions:
        conflict = resolution.action in decides and conflicts(resolution.label_class_id)
        if conflict:
            conflict_list.append(
                {
                    "resolution": resolution.pk,
                    "flag": resolution.flag_id,
                    "label": resolution.label_class.key,
                    "ground_truth": classes[gold.label_class_id].key,
                    "decided_by": _username(resolution.decided_by),
                    "at": resolution.created_at,
                }
            )
        timeline.append(
            {
                "at": resolution.created_at,
                "type": "resolution",
                "verb": f"resolution.{resolution.action}",
                "actor": _username(resolution.decided_by),
                "resolution": resolution.pk,
                "flag": resolution.flag_id,
                "action": resolution.action,
                "label": resolution.label_class.key if resolution.label_class else None,
                "into": resolution.into_class.key if resolution.into_class else None,
                "guideline_version": resolution.guideline.version if resolution.guideline else None,
                "reason": resolution.rationale,
                "conflicts_with_ground_truth": conflict,
            }
        )
    for event in project_events:
        kind = "guideline" if event.verb == Verb.GUIDELINE_PUBLISHED else "merge"
        timeline.append(_event_entry(event, kind))
    timeline.sort(key=lambda entry: (entry["at"], _TYPE_ORDER.get(entry["type"], 9)))

    batch = item.source_batch
    return {
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "kind": item.kind,
            "metadata": item.metadata,
            "tags": tags,
            "image_url": item.image_url or None,
            "content_hash": item.content_hash,
            "created_at": item.created_at,
        },
        "source_batch": (
            {
                "id": batch.pk,
                "kind": batch.kind,
                "origin": batch.origin,
                "file_sha256": batch.file_sha256,
                "created_by": _username(batch.created_by),
                "created_at": batch.created_at,
                "status": batch.status,
            }
            if batch is not None
            else None
        ),
        "gold": (
            {
                "value": gold.label_class.key
                if gold.label_class
                else (gold.value_text or gold.value_number),
                "source": gold.source,
                "created_by": _username(gold.created_by),
                "created_at": gold.created_at,
            }
            if gold is not None
            else None
        ),
        "decision": (
            {
                "label": decision.label_class.key if decision.label_class else None,
                "decided_by": _username(decision.decided_by),
                "created_at": decision.created_at,
                "rationale": decision.rationale,
                "resolution": decision.resolution_id,
                "conflicts_with_ground_truth": conflicts(decision.label_class_id),
            }
            if decision is not None
            else None
        ),
        "conflicts": conflict_list,
        "timeline": timeline,
    }


_TYPE_ORDER = {"item": 0, "guideline": 1, "annotation": 2, "gold": 3, "merge": 4, "resolution": 5}


def _event_entry(event: Event, kind: str) -> dict:
    return {
        "at": event.created_at,
        "type": kind,
        "verb": event.verb,
        "actor": _username(event.actor),
        "event": event.pk,
        "subject": f"{event.subject_type}:{event.subject_id}",
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
    }


def _root_key(
    classes: dict[int, LabelClass], root_of: dict[int, int], class_id: int | None
) -> str | None:
    """The class a label maps to today when its class has been merged, else None."""
    if class_id is None or class_id not in classes:
        return None
    root_id = root_of[class_id]
    return classes[root_id].key if root_id != class_id else None


# --- Dataset versions ------------------------------------------------------------------------
def dataset_versions(project: Project) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(project=project).select_related("created_by")


def dataset_version_payload(version: DatasetVersion) -> dict:
    """The REST shape of a version (DESIGN.md "dataset version")."""
    return {
        "id": version.pk,
        "project": version.project_id,
        "status": version.status,
        "params": version.params or version.request,
        "row_count": version.row_count,
        "split_counts": version.split_counts,
        "class_counts": version.class_counts,
        "content_hash": version.content_hash or None,
        "columns": [c["name"] for c in version.columns],
        "error": version.error or None,
        "created_by": _username(version.created_by),
        "created_at": version.created_at,
        "finished_at": version.finished_at,
    }


def _row_stream(version: DatasetVersion) -> Iterator[tuple[str, str, str, str]]:
    return (
        DatasetRow.objects.filter(version=version)
        .order_by("position")
        .values_list("external_id", "label", "split", "line")
        .iterator(chunk_size=5000)
    )


def dataset_diff(a: DatasetVersion, b: DatasetVersion, *, limit: int = 1000) -> dict:
    """Items added in ``b``, removed from ``a``, and relabeled between them, each relabel
    with its reasons (an SME resolution, a class merge or unmerge, new labels, another
    agreement run or consensus method), as far as the versions' params and rows tell.

    Both versions' rows are ordered by external id, so this is one merge pass in constant
    memory; at most ``limit`` entries of each list are returned (the counts are complete).
    """
    added, removed, relabeled = [], [], []
    counts = {"added": 0, "removed": 0, "relabeled": 0, "moved_split": 0, "unchanged": 0}
    rows_a, rows_b = _row_stream(a), _row_stream(b)
    ra, rb = next(rows_a, None), next(rows_b, None)
    while ra is not None or rb is not None:
        if rb is None or (ra is not None and ra[0] < rb[0]):
            counts["removed"] += 1
            if len(removed) < limit:
                removed.append({"external_id": ra[0], "label": ra[1], "split": ra[2]})
            ra = next(rows_a, None)
        elif ra is None or rb[0] < ra[0]:
            counts["added"] += 1
            if len(added) < limit:
                added.append({"external_id": rb[0], "label": rb[1], "split": rb[2]})
            rb = next(rows_b, None)
        else:
            if ra[1] != rb[1]:
                counts["relabeled"] += 1
                if len(relabeled) < limit:
                    relabeled.append(_relabel_entry(a, b, json.loads(ra[3]), json.loads(rb[3])))
            else:
                counts["unchanged"] += 1
            if ra[2] != rb[2]:
                counts["moved_split"] += 1
            ra, rb = next(rows_a, None), next(rows_b, None)
    params_changed = {
        key: [a.params.get(key), b.params.get(key)]
        for key in sorted(set(a.params) | set(b.params))
        if a.params.get(key) != b.params.get(key)
    }
    return {
        "from": a.pk,
        "to": b.pk,
        "params_changed": params_changed,
        "counts": counts,
        "added": added,
        "removed": removed,
        "relabeled": relabeled,
        "truncated": any(counts[k] > limit for k in ("added", "removed", "relabeled")),
    }


def _relabel_entry(a: DatasetVersion, b: DatasetVersion, row_a: dict, row_b: dict) -> dict:
    old, new = row_a["label"], row_b["label"]
    merges_a = a.params.get("class_merges", {})
    merges_b = b.params.get("class_merges", {})
    resolutions_b = {r["id"]: r for r in b.lineage.get("resolutions", [])}
    reasons = []
    if row_b.get("resolution") and row_b.get("resolution") != row_a.get("resolution"):
        decision = resolutions_b.get(row_b["resolution"], {})
        reasons.append(
            {
                "kind": "resolution",
                "resolution": row_b["resolution"],
                "action": decision.get("action"),
                "decided_by": decision.get("decided_by"),
                "rationale": decision.get("rationale"),
                "text": f"SME resolution #{row_b['resolution']} set the label to {new!r}",
            }
        )
    if merges_b.get(old) == new and merges_a.get(old) != new:
        reasons.append(
            {
                "kind": "class_merge",
                "from_class": old,
                "into": new,
                "text": f"class {old!r} was merged into {new!r}",
            }
        )
    if merges_a.get(new) == old and merges_b.get(new) != old:
        reasons.append(
            {
                "kind": "class_unmerge",
                "class": new,
                "was_merged_into": old,
                "text": f"class {new!r} is no longer merged into {old!r}",
            }
        )
    if row_a.get("n_labels") != row_b.get("n_labels") or row_a.get("labelers") != row_b.get(
        "labelers"
    ):
        added = sorted(set(row_b.get("labelers") or []) - set(row_a.get("labelers") or []))
        reasons.append(
            {
                "kind": "new_labels",
                "n_labels": [row_a.get("n_labels"), row_b.get("n_labels")],
                "labelers_added": added,
                "text": f"labels changed: {row_a.get('n_labels')} → {row_b.get('n_labels')} labels",
            }
        )
    run_a, run_b = a.params.get("agreement_run"), b.params.get("agreement_run")
    method_a, method_b = a.params.get("consensus"), b.params.get("consensus")
    if (run_a, method_a) != (run_b, method_b):
        reasons.append(
            {
                "kind": "consensus",
                "agreement_run": [run_a, run_b],
                "consensus": [method_a, method_b],
                "text": f"consensus from run #{run_a} ({method_a}) → run #{run_b} ({method_b})",
            }
        )
    if not reasons:
        reasons.append({"kind": "consensus", "text": "the consensus label changed"})
    return {
        "external_id": row_b["external_id"],
        "from": old,
        "to": new,
        "split": [row_a["split"], row_b["split"]],
        "reasons": reasons,
    }


# --- Lineage ---------------------------------------------------------------------------------
def lineage_graph(version: DatasetVersion) -> dict:
    """``{nodes, edges}`` from source batches through item and annotation summaries, the
    agreement run, guidelines and resolutions to the version (summarised, not per label)."""
    summary = version.lineage or {}
    nodes: list[dict] = []
    edges: list[dict] = []
    version_node = f"dataset_version:{version.pk}"
    run = summary.get("agreement_run") or {}
    run_node = f"agreement_run:{run.get('id')}"
    for batch in summary.get("source_batches", []):
        batch_key = batch["id"] if batch["id"] is not None else "none"
        batch_node = f"source_batch:{batch_key}"
        items_node = f"item_summary:{batch_key}"
        nodes.append(
            {
                "id": batch_node,
                "type": "source_batch",
                "source_batch": batch["id"],
                "label": batch["origin"]
                or ("no source batch" if batch["id"] is None else f"batch {batch['id']}"),
                "kind": batch["kind"],
                "file_sha256": batch.get("file_sha256"),
                "created_by": batch.get("created_by"),
                "created_at": batch.get("created_at"),
            }
        )
        nodes.append(
            {
                "id": items_node,
                "type": "item_summary",
                "source_batch": batch["id"],
                "n_items": batch["n_items"],
                "label": f"{batch['n_items']} items",
            }
        )
        edges.append({"from": batch_node, "to": items_node, "relation": "imported"})
        edges.append({"from": items_node, "to": version_node, "relation": "rows_of"})
    labelers = {row["labeler"]: row["n_items"] for row in summary.get("labelers", [])}
    for labeler, n in labelers.items():
        nodes.append(
            {
                "id": f"annotation_summary:{labeler}",
                "type": "annotation_summary",
                "labeler": labeler,
                "n_items": n,
                "label": f"{labeler}: {n} items",
            }
        )
        # Without an agreement run (detection versions built from decisions and ground
        # truth) the labels feed the version's lineage directly.
        edges.append(
            {
                "from": f"annotation_summary:{labeler}",
                "to": run_node if run else version_node,
                "relation": "input_to",
            }
        )
    for row in summary.get("batch_labelers", []):
        batch_key = row["source_batch"] if row["source_batch"] is not None else "none"
        edges.append(
            {
                "from": f"item_summary:{batch_key}",
                "to": f"annotation_summary:{row['labeler']}",
                "relation": "labeled_by",
                "n_items": row["n_items"],
            }
        )
    for guideline in summary.get("guidelines", []):
        node = f"guideline:{guideline['version']}"
        nodes.append(
            {
                "id": node,
                "type": "guideline",
                "version": guideline["version"],
                "published_at": guideline.get("published_at"),
                "label": f"guideline v{guideline['version']}",
            }
        )
        for labeler in labelers:
            edges.append(
                {"from": node, "to": f"annotation_summary:{labeler}", "relation": "guided"}
            )
    if run:
        nodes.append(
            {
                "id": run_node,
                "type": "agreement_run",
                "agreement_run": run.get("id"),
                "params": run.get("params"),
                "finished_at": run.get("finished_at"),
                "label": f"agreement run {run.get('id')}",
            }
        )
        edges.append({"from": run_node, "to": version_node, "relation": "consensus_for"})
    for resolution in summary.get("resolutions", []):
        node = f"resolution:{resolution['id']}"
        nodes.append(
            {
                **resolution,
                "id": node,
                "type": "resolution",
                "resolution": resolution["id"],
                "label": f"{resolution['action']} by {resolution['decided_by']}",
            }
        )
        edges.append({"from": node, "to": version_node, "relation": "decided"})
    nodes.append(
        {
            "id": version_node,
            "type": "dataset_version",
            "dataset_version": version.pk,
            "content_hash": version.content_hash,
            "row_count": version.row_count,
            "class_merges": summary.get("class_merges", {}),
            "label": f"dataset version {version.pk}",
        }
    )
    return {"dataset_version": version.pk, "nodes": nodes, "edges": edges}


def published(version: DatasetVersion) -> bool:
    return version.status == DatasetStatus.SUCCEEDED


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
