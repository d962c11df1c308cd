"""Dataset versions of detection projects: the rows are items, the label a list of boxes.

A row's final boxes come from the item's ground truth (``GoldLabel.value_boxes``), else
an SME decision (``ItemDecision.value_boxes``), else, for a version built from an
agreement run, the run's consensus boxes (``consistency/box_runs.py``), by the same rule
as the final labels of other projects. Everything after :func:`final_boxes`, the rows,
splits and exporters, takes a list of boxes per row and does not care where it came from.

Each row's JSON line holds, beside the columns every dataset has:

- ``boxes``: ``[{class, x, y, w, h}]`` in image pixels (x/y top-left), classes mapped
  through merges, in a canonical order (top, left, class); ``[]`` = nothing there;
- ``label``: the classes present, as canonical JSON text (``'["dent","scratch"]'``,
  ``'[]'``): what ``stratify_by: ["label"]`` stratifies on and what the version's class
  counts summarise (per class: boxes, and rows holding the class);
- ``image_width`` / ``image_height``: the image size in pixels (YOLO normalises by it),
  null when unknown;
- ``final_label_source``: ``ground_truth`` | ``sme`` | ``consensus``.

The version's ``params.box_classes`` fixes the class order (YOLO class ids, COCO
category ids = index + 1) when the version is built, so a re-export never changes.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from consistency import box_runs
from consistency.models import AgreementRun, ConsensusStatus
from datasets import services
from datasets.models import DatasetRow, DatasetStatus, DatasetVersion
from labeling import selectors as labeling_selectors
from labeling.models import Annotation, LabelClass, Project
from provenance import events

SOURCE_SME = "sme"
SOURCE_GROUND_TRUTH = "ground_truth"
SOURCE_CONSENSUS = "consensus"
DETECTION_COLUMNS = (("boxes", "json"), ("image_width", "int"), ("image_height", "int"))


@dataclass(frozen=True)
class FinalBoxes:
    """An item's final boxes and where they came from (``ground_truth`` | ``sme`` |
    ``consensus``)."""

    boxes: list[dict]
    source: str


def final_boxes(
    project: Project, run: AgreementRun | None, *, include_unresolved: bool = False
) -> dict[int, FinalBoxes]:
    """``{item id: FinalBoxes}`` of the project's items that have final boxes, by the rule
    of :func:`consistency.box_runs.final_boxes` (ground truth, else an SME decision, else
    the run's consensus boxes). As for class labels, the consensus of a disputed item (a
    cluster short of the quorum, or a class without a majority) is left out unless
    ``include_unresolved``."""
    return {
        item_id: FinalBoxes(final["boxes"], final["source"])
        for item_id, final in box_runs.final_boxes(project, run).items()
        if include_unresolved
        or final["source"] != SOURCE_CONSENSUS
        or final["status"] != ConsensusStatus.DISPUTED
    }


def canonical_boxes(boxes: list[dict], class_root: dict[str, str]) -> list[dict]:
    """Boxes with classes mapped to their merge roots, in a fixed order (y, x, class, w,
    h): the same boxes always give the same row bytes, whatever order they were drawn in."""
    mapped = [
        {
            "class": class_root.get(b["class"], b["class"]),
            "x": b["x"],
            "y": b["y"],
            "w": b["w"],
            "h": b["h"],
        }
        for b in boxes
    ]
    return sorted(mapped, key=lambda b: (b["y"], b["x"], b["class"], b["w"], b["h"]))


def classes_label(boxes: list[dict]) -> str:
    """The classes present in ``boxes`` as canonical JSON text, ``'[]'`` for none."""
    return services.canonical_json(sorted({b["class"] for b in boxes}))


def _image_size(item: dict) -> tuple[int | None, int | None]:
    """The item's image size: from ingest, else read from the uploaded file (the header
    only), else (None, None)."""
    if item["width"] and item["height"]:
        return item["width"], item["height"]
    if item["image"]:
        try:
            with default_storage.open(item["image"], "rb") as fh, Image.open(fh) as image:
                return image.size
        except (OSError, UnidentifiedImageError):
            return None, None
    return None, None


def build_version(version: DatasetVersion) -> None:
    """Build a detection version's rows, counts, hash and lineage (inside the caller's
    transaction), as :func:`datasets.services._build` does for labels."""
    project = version.project
    request = version.request
    filters = request["filters"]
    run = None
    if request.get("agreement_run"):
        run = AgreementRun.objects.get(pk=request["agreement_run"], project=project)

    classes = list(LabelClass.objects.filter(project=project))
    by_id = {c.pk: c for c in classes}
    root_of = labeling_selectors.class_roots({c.pk: c.merged_into_id for c in classes})
    class_root = {c.key: by_id[root_of[c.pk]].key for c in classes}
    class_merges = {k: v for k, v in sorted(class_root.items()) if k != v}
    box_classes = labeling_selectors.detection_class_order(project)

    final = final_boxes(
        project, run, include_unresolved=bool(request.get("include_unresolved", False))
    )
    items = services.selected_items(project, final, filters, extra_fields=("width", "height"))
    labels_by_item: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
    for item_id, username, guideline_version in (
        Annotation.objects.filter(item_id__in=[i["id"] for i in items], is_current=True)
        .values_list("item_id", "labeler__username", "guideline__version")
        .order_by()
        .iterator(chunk_size=5000)
    ):
        labels_by_item[item_id].append((username, guideline_version))

    selected = []
    for item in items:
        chosen = final[item["id"]]
        boxes = canonical_boxes(chosen.boxes, class_root)
        labels = labels_by_item.get(item["id"], [])
        selected.append(
            {
                "item": item,
                "label": classes_label(boxes),
                "boxes": boxes,
                "source": chosen.source,
                "status": "resolved",
                "confidence": 1.0,
                "agreement": None,
                "n_labels": len(labels),
                "labelers": sorted({u for u, _ in labels}),
                "guideline_versions": sorted({g for _, g in labels if g is not None}),
                "resolution": None,
            }
        )

    assignment = services._assign_splits(selected, request)
    metadata_values: dict[str, list] = defaultdict(list)
    for row in selected:
        for key, value in (row["item"]["metadata"] or {}).items():
            metadata_values[key].append(value)
    columns = (
        [{"name": name, "type": kind} for name, kind in services.BASE_COLUMNS]
        + [{"name": name, "type": kind} for name, kind in DETECTION_COLUMNS]
        + [
            {"name": f"metadata.{key}", "type": services._column_type(values), "key": key}
            for key, values in sorted(metadata_values.items())
        ]
    )

    selected.sort(key=lambda r: r["item"]["external_id"])
    params = {
        **request,
        "class_merges": class_merges,
        "box_classes": box_classes,
        "format_version": services.FORMAT_VERSION,
    }
    digest = hashlib.sha256(services.canonical_json(params).encode() + b"\n")
    split_counts = Counter({name: 0 for name in request["splits"]})
    box_counts: Counter = Counter()
    row_counts: Counter = Counter()
    split_box_counts: dict[str, Counter] = defaultdict(Counter)
    batch = []
    for position, row in enumerate(selected):
        item = row["item"]
        split = assignment[item["id"]]
        image_name = item["image"] or ""
        width, height = _image_size(item)
        record = {
            "external_id": item["external_id"],
            "item_id": item["id"],
            "label": row["label"],
            "split": split,
            "confidence": row["confidence"],
            "agreement": row["agreement"],
            "n_labels": row["n_labels"],
            "labelers": row["labelers"],
            "guideline_versions": row["guideline_versions"],
            "status": row["status"],
            "resolution": row["resolution"],
            "source_batch": item["source_batch_id"],
            "image_file": image_name.rsplit("/", 1)[-1] if image_name else None,
            "image_url": item["image_url"] or None,
            "text": item["text"] or None,
            "metadata": item["metadata"] or {},
            "boxes": row["boxes"],
            "image_width": width,
            "image_height": height,
            "final_label_source": row["source"],
        }
        line = services.canonical_json(record)
        digest.update(line.encode() + b"\n")
        split_counts[split] += 1
        for box in row["boxes"]:
            box_counts[box["class"]] += 1
            split_box_counts[split][box["class"]] += 1
        for key in {b["class"] for b in row["boxes"]}:
            row_counts[key] += 1
        batch.append(
            DatasetRow(
                version=version,
                position=position,
                external_id=item["external_id"],
                split=split,
                label=row["label"][:200],
                item_id_ref=item["id"],
                image_name=image_name,
                line=line,
            )
        )
        if len(batch) >= services.ROW_INSERT_BATCH:
            DatasetRow.objects.bulk_create(batch)
            batch = []
    if batch:
        DatasetRow.objects.bulk_create(batch)

    # Publish only while this execution still holds the build (see services._hold_build).
    services._hold_build(version)

    version.params = params
    version.columns = columns
    version.row_count = len(selected)
    version.split_counts = dict(split_counts)
    version.class_counts = {
        "all": dict(sorted(box_counts.items())),
        "rows_with_class": dict(sorted(row_counts.items())),
        "by_split": {s: dict(sorted(split_box_counts[s].items())) for s in request["splits"]},
        "unit": "boxes",
    }
    version.lineage = services._lineage_summary(project, run, selected, class_merges)
    version.content_hash = digest.hexdigest()
    version.status = DatasetStatus.SUCCEEDED
    version.error = ""
    version.finished_at = timezone.now()
    version.save()
    events.dataset_published(
        project_id=project.pk,
        actor_id=version.created_by_id,
        dataset_version_id=version.pk,
        after={
            "content_hash": version.content_hash,
            "row_count": version.row_count,
            "split_counts": version.split_counts,
            "agreement_run": run.pk if run is not None else None,
        },
    )
