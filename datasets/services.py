"""Every write of the datasets app: dataset versions and pipeline tokens.

Keyword-only, typed; validation raises Django ``ValidationError`` (a 400 with the field at
fault). A dataset version is requested synchronously (parameters checked, the agreement
run resolved) and built by the worker (``datasets.tasks.build_dataset_version``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from consistency import jobs
from consistency import selectors as consistency_selectors
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    RunStatus,
)
from datasets import lineage, splits
from datasets.models import DatasetRow, DatasetStatus, DatasetVersion, PipelineToken
from labeling import access
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import (
    Guideline,
    Item,
    LabelClass,
    Project,
    SourceBatch,
    TaskType,
)
from provenance import events
from review.models import Resolution, ResolutionAction

log = logging.getLogger(__name__)

# 2: rows carry ``final_label_source`` and the labels are the run's snapshot (params
# ``labels_as_of``). Versions built before keep their rows and columns, so they re-export
# byte-identically.
FORMAT_VERSION = 2
DEFAULT_SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
REQUEST_FIELDS = (
    "agreement_run",
    "consensus",
    "min_confidence",
    "include_borderline",
    "include_unresolved",
    "filters",
    "splits",
    "seed",
    "stratify_by",
    "group_by",
)
DATASET_CONSENSUS_METHODS = (ConsensusMethod.MAJORITY, ConsensusMethod.DAWID_SKENE)
ROW_INSERT_BATCH = 5000
# Fixed export columns, in order; metadata columns (``metadata.<key>``) follow, sorted.
BASE_COLUMNS = (
    ("external_id", "string"),
    ("item_id", "int"),
    ("label", "string"),
    ("final_label_source", "string"),
    ("split", "string"),
    ("confidence", "float"),
    ("agreement", "float"),
    ("n_labels", "int"),
    ("labelers", "list"),
    ("guideline_versions", "list"),
    ("status", "string"),
    ("resolution", "int"),
    ("source_batch", "int"),
    ("image_file", "string"),
    ("image_url", "string"),
    ("text", "string"),
)


def canonical_json(value: Any) -> str:
    """The one serialisation used for hashing and for JSONL lines: sorted keys, no spaces,
    UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


# --- Requesting a version ------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metadata_key(spec: str, field: str) -> str:
    key = spec[len("metadata.") :] if spec.startswith("metadata.") else ""
    if not key or len(key) > 100:
        raise ValidationError({field: f"{spec!r}: expected 'metadata.<key>'"})
    return key


def validate_dataset_request(*, project: Project, data: Any) -> dict:
    """Check a dataset request and resolve its defaults; returns the normalised request.

    Every field is optional (see DESIGN.md "dataset request"); the agreement run defaults
    to the project's latest succeeded run. Raises ValidationError naming the field.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError({"request": "expected a JSON object"})
    unknown = sorted(set(data) - set(REQUEST_FIELDS))
    if unknown:
        allowed = ", ".join(REQUEST_FIELDS)
        raise ValidationError(
            {"request": f"unknown field(s): {', '.join(unknown)}; allowed: {allowed}"}
        )

    # Detection datasets take their boxes from SME decisions and ground truth
    # (datasets.detection): an agreement run is optional for them.
    detection = project.task_type == TaskType.DETECTION
    run_id = data.get("agreement_run")
    if run_id is None:
        run = (
            AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
            .order_by("-created_at", "-id")
            .first()
        )
        if run is None and not detection:
            raise ValidationError(
                {
                    "agreement_run": "this project has no succeeded agreement run yet: start one "
                    f"(POST /api/v1/projects/{project.pk}/agreement-runs/) and build the dataset "
                    "when it has finished"
                }
            )
    else:
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise ValidationError({"agreement_run": "expected an agreement run id (an integer)"})
        run = AgreementRun.objects.filter(project=project, pk=run_id).first()
        if run is None:
            raise ValidationError({"agreement_run": f"no agreement run {run_id} in this project"})
        if run.status != RunStatus.SUCCEEDED:
            raise ValidationError(
                {"agreement_run": f"agreement run {run_id} is {run.status}, not succeeded"}
            )

    method = data.get("consensus", ConsensusMethod.MAJORITY)
    if method not in DATASET_CONSENSUS_METHODS:
        raise ValidationError(
            {"consensus": f"must be one of {', '.join(DATASET_CONSENSUS_METHODS)}, got {method!r}"}
        )
    if not detection and not Consensus.objects.filter(run=run, method=method).exists():
        raise ValidationError(
            {"consensus": f"agreement run {run.pk} has no {method} consensus to build from"}
        )

    min_confidence = data.get("min_confidence")
    if min_confidence is not None and (
        not _is_number(min_confidence) or not 0 <= min_confidence <= 1
    ):
        raise ValidationError({"min_confidence": "must be a number between 0 and 1"})

    flags = {}
    for name in ("include_borderline", "include_unresolved"):
        value = data.get(name, False)
        if not isinstance(value, bool):
            raise ValidationError({name: "must be true or false"})
        flags[name] = value

    filters = _validate_filters(data.get("filters") or {})

    try:
        ratios = splits.validate_ratios(data.get("splits") or DEFAULT_SPLITS)
    except ValueError as exc:
        raise ValidationError({"splits": str(exc)}) from exc

    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValidationError({"seed": "must be a non-negative integer"})

    stratify_by = data.get("stratify_by", ["label"])
    if stratify_by is None:
        stratify_by = []
    if not isinstance(stratify_by, list) or not all(isinstance(s, str) for s in stratify_by):
        raise ValidationError(
            {"stratify_by": "expected a list such as ['label', 'metadata.factory']"}
        )
    if len(set(stratify_by)) != len(stratify_by):
        raise ValidationError({"stratify_by": "lists a key twice"})
    for spec in stratify_by:
        if spec != "label":
            _metadata_key(spec, "stratify_by")

    group_by = data.get("group_by")
    if group_by is not None:
        if not isinstance(group_by, str) or not group_by.strip():
            raise ValidationError({"group_by": "expected a metadata key such as 'phone_serial'"})
        group_by = group_by[len("metadata.") :] if group_by.startswith("metadata.") else group_by
        if not group_by or len(group_by) > 100:
            raise ValidationError({"group_by": "expected a metadata key such as 'phone_serial'"})

    return {
        "agreement_run": run.pk if run is not None else None,
        "consensus": method,
        "min_confidence": min_confidence,
        **flags,
        "filters": filters,
        "splits": ratios,
        "seed": seed,
        "stratify_by": stratify_by,
        "group_by": group_by,
    }


def _validate_filters(filters: Any) -> dict:
    if not isinstance(filters, dict):
        raise ValidationError({"filters": "expected an object such as {'metadata.factory': 'A'}"})
    clean = {}
    for key, value in filters.items():
        if key != "tag":
            _metadata_key(key, "filters")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValidationError({"filters": f"{key}: an empty list matches nothing"})
        if not all(isinstance(v, str | bool) or _is_number(v) for v in values):
            raise ValidationError(
                {"filters": f"{key}: values must be strings, numbers or booleans"}
            )
        if key == "tag" and not all(isinstance(v, str) for v in values):
            raise ValidationError({"filters": "tag: expected a tag name or a list of names"})
        # Canonical: sorted and unique, so equivalent requests hash the same.
        clean[key] = sorted({canonical_json(v): v for v in values}.values(), key=canonical_json)
    return dict(sorted(clean.items()))


@transaction.atomic
def request_dataset_version(
    *, project: Project, requested_by: AbstractBaseUser | None, data: Any
) -> DatasetVersion:
    """Validate a dataset request and queue its build; returns the queued version."""
    request = validate_dataset_request(project=project, data=data)
    _refuse_filters_matching_nothing(project, request["filters"])
    version = DatasetVersion.objects.create(
        project=project, created_by=requested_by, request=request, heartbeat_at=timezone.now()
    )
    events.dataset_requested(
        project_id=project.pk,
        actor_id=getattr(requested_by, "pk", None),
        dataset_version_id=version.pk,
        after=request,
    )
    from datasets.tasks import build_dataset_version as build_task

    transaction.on_commit(lambda: build_task.delay(version.pk))
    return version


def _refuse_filters_matching_nothing(project: Project, filters: dict) -> None:
    """A request whose filters match no item of the project would build an empty version:
    refuse it at once (400 naming the filter and the values the project does have)."""
    if not filters:
        return
    items = Item.objects.filter(project=project).order_by()
    if "tag" in filters:
        items = items.filter(tags__name__in=filters["tag"]).distinct()
        if not items.exists():
            raise ValidationError(
                {"filters": f"tag: no item of this project has the tag(s) {filters['tag']}"}
            )
    seen: dict[str, set[str]] = defaultdict(set)
    for metadata in items.values_list("metadata", flat=True).iterator(chunk_size=5000):
        if _metadata_matches(metadata or {}, filters):
            return
        for key in filters:
            value = (metadata or {}).get(key[len("metadata.") :])
            if key != "tag" and value is not None and len(seen[key]) < 12:
                seen[key].add(str(value))
    present = "; ".join(
        f"{key} has {', '.join(sorted(values)) or 'no value'}"
        for key, values in sorted(seen.items())
    )
    raise ValidationError(
        {
            "filters": f"match no item of this project, so the version would have 0 rows"
            f" ({present or 'no item has these metadata keys'})"
        }
    )


# --- Building a version --------------------------------------------------------------------
def _value_key(label_class_id, value_text, value_number, roots) -> str | None:
    """A label's value (``labeling.selectors.label_value``, classes mapped to their root)
    as dataset text: numbers in ``g`` format, no value as None."""
    value = labeling_selectors.label_value(
        class_key=roots[label_class_id].key if label_class_id is not None else None,
        value_number=value_number,
        value_text=value_text,
    )
    if isinstance(value, float | int):
        return format(value, "g")
    return value or None


ITEM_ROW_FIELDS = (
    "id",
    "external_id",
    "image",
    "image_url",
    "text",
    "metadata",
    "source_batch_id",
)


def selected_items(
    project: Project, item_ids, filters: dict, *, extra_fields: tuple[str, ...] = ()
) -> list[dict]:
    """The items among ``item_ids`` that a version's ``filters`` keep (``tag`` in SQL, the
    ``metadata.<key>`` filters on the loaded metadata), as dicts of
    ``ITEM_ROW_FIELDS + extra_fields``, in no particular order."""
    items_qs = Item.objects.filter(project=project, pk__in=set(item_ids))
    if "tag" in filters:
        items_qs = items_qs.filter(tags__name__in=filters["tag"]).distinct()
    return [
        item
        for item in items_qs.values(*ITEM_ROW_FIELDS, *extra_fields).order_by()
        if _metadata_matches(item["metadata"] or {}, filters)
    ]


def _metadata_matches(metadata: dict, filters: dict) -> bool:
    for key, wanted in filters.items():
        if key == "tag":
            continue
        value = metadata.get(key[len("metadata.") :])
        if not any(value == w or (value is not None and str(value) == str(w)) for w in wanted):
            return False
    return True


def _column_type(values: list) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if all(_is_number(v) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "string"
    return "json"


def build_dataset_version(*, dataset_version_id: int) -> DatasetVersion:
    """Build a queued version: compute its rows and publish it, or mark it failed.

    Rows, counts, hash and the ``dataset.published`` event are written in one transaction:
    a version is either fully published or not at all. The build is *claimed* (queued ->
    building, ``attempts`` + 1) and heartbeats while it runs (``consistency.jobs``); a
    version that is not queued is returned unchanged (published, failed, or being built
    by a live execution: a redelivered message is a no-op), and a build whose worker died
    is re-queued or failed by :func:`datasets.recovery.reap_stalled_dataset_builds`.
    """
    now = timezone.now()
    claimed = DatasetVersion.objects.filter(
        pk=dataset_version_id, status=DatasetStatus.QUEUED
    ).update(status=DatasetStatus.BUILDING, attempts=F("attempts") + 1, heartbeat_at=now)
    version = DatasetVersion.objects.select_related("project").get(pk=dataset_version_id)
    if not claimed:
        return version
    held = DatasetVersion.objects.filter(
        pk=version.pk, status=DatasetStatus.BUILDING, attempts=version.attempts
    )
    lineage.emit_dataset_build(version, "START")
    try:
        with jobs.Heartbeat(held), transaction.atomic():
            if version.project.task_type == TaskType.DETECTION:
                # Imported here: datasets.detection builds on this module's helpers.
                from datasets import detection

                detection.build_version(version)
            else:
                _build(version)
    except jobs.Superseded:
        version.refresh_from_db()
        return version
    except Exception as exc:
        log.exception("dataset version %s failed", version.pk)
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        with transaction.atomic():
            error = message[:2000] or exc.__class__.__name__
            if not held.update(
                status=DatasetStatus.FAILED, error=error, finished_at=timezone.now()
            ):
                version.refresh_from_db()
                return version
            version.refresh_from_db()
            events.dataset_failed(
                project_id=version.project_id,
                actor_id=version.created_by_id,
                dataset_version_id=version.pk,
                reason=version.error,
            )
        lineage.emit_dataset_build(version, "FAIL", error=version.error)
        return version
    lineage.emit_dataset_build(version, "COMPLETE")
    return version


def run_label_snapshot(run: AgreementRun) -> dict:
    """Which labels a version built from ``run`` reads: ``{"agreement_run": id,
    "max_annotation_id": the highest annotation id when the run started, or None}``.

    The run records that id in ``data_version`` when it starts; the labels current then
    are rebuilt by ``labeling.selectors.annotations_as_of``. None (a run that recorded no
    data version) means the labels current at build time.

    The run's consensus is its stored rows. Ground truth, SME decisions and class merges
    are read as they stand at build time: they are deliberate decisions (the loop is
    run -> SME decides -> publish), named in ``params.class_merges`` and the lineage's
    resolutions, and each row says which one gave its label (``final_label_source``)."""
    max_id = (run.data_version or {}).get("max_annotation_id")
    return {
        "agreement_run": run.pk,
        "max_annotation_id": int(max_id) if max_id is not None else None,
    }


def _hold_build(version: DatasetVersion) -> None:
    """Inside the build's transaction, before publishing: raise Superseded unless this
    execution still holds the build. The row lock (SQLite: the transaction's write lock)
    orders it against the reaper, so a build given up for dead never publishes rows."""
    held = DatasetVersion.objects.select_for_update().filter(
        pk=version.pk, status=DatasetStatus.BUILDING, attempts=version.attempts
    )
    if not held.exists():
        raise jobs.Superseded(f"dataset version {version.pk} attempt {version.attempts}")


def _build(version: DatasetVersion) -> None:
    project = version.project
    request = version.request
    filters = request["filters"]
    run = AgreementRun.objects.get(pk=request["agreement_run"], project=project)

    classes = list(LabelClass.objects.filter(project=project))
    by_id = {c.pk: c for c in classes}
    root_of = labeling_selectors.class_roots({c.pk: c.merged_into_id for c in classes})
    roots = {class_id: by_id[root_id] for class_id, root_id in root_of.items()}
    class_merges = {
        c.key: roots[c.pk].key for c in sorted(classes, key=lambda c: c.key) if roots[c.pk] != c
    }
    borderline_keys = {roots[c.pk].key for c in classes if roots[c.pk].is_borderline}

    # The final label of each item: ground truth, else an SME decision, else the run's
    # consensus (consistency.selectors.final_labels, the one rule).
    final = consistency_selectors.final_labels(project, run, method=request["consensus"])
    # The resolution that decided an item (latest wins), named on its row.
    decided_by: dict[int, int] = {}
    for resolution_id, item_id in (
        Resolution.objects.filter(
            project=project,
            action__in=[ResolutionAction.SET_LABEL, ResolutionAction.MARK_BORDERLINE],
            items__isnull=False,
        )
        .order_by("created_at", "id")
        .values_list("id", "items__id")
    ):
        decided_by[item_id] = resolution_id

    items = selected_items(project, final, filters)
    item_ids = [item["id"] for item in items]

    # The labels are the run's snapshot (those current when it started), not the labels
    # current now: a label revised after the run does not change a version built from it.
    labels_as_of = run_label_snapshot(run)
    labels_by_item: dict[int, list[tuple[str, str | None, int | None, int]]] = defaultdict(list)
    for ann in (
        labeling_selectors.annotations_as_of(project, labels_as_of["max_annotation_id"])
        .filter(item_id__in=item_ids)
        .values_list(
            "item_id",
            "labeler__username",
            "label_class_id",
            "value_text",
            "value_number",
            "guideline__version",
            "labeler_id",
        )
        .order_by()
        .iterator(chunk_size=5000)
    ):
        item_id, username, class_id, text, number, guideline_version, labeler_id = ann
        labels_by_item[item_id].append(
            (username, _value_key(class_id, text, number, roots), guideline_version, labeler_id)
        )

    # Decide each item's final label and whether it is included.
    selected = []
    for item in items:
        chosen = final[item["id"]]
        label = _value_key(chosen.label_class_id, chosen.value_text, chosen.value_number, roots)
        status = chosen.status
        confidence = chosen.confidence if chosen.confidence is not None else chosen.support
        resolution_id = (
            decided_by.get(item["id"])
            if chosen.source == consistency_selectors.SOURCE_SME
            else None
        )
        if label is None:
            continue
        if label in borderline_keys:
            status = ConsensusStatus.BORDERLINE
        if status == ConsensusStatus.DISPUTED and not request["include_unresolved"]:
            continue
        if status == ConsensusStatus.BORDERLINE and not request["include_borderline"]:
            continue
        if request["min_confidence"] is not None and (
            confidence is None or confidence < request["min_confidence"]
        ):
            continue
        labels = labels_by_item.get(item["id"], [])
        n_labels = len(labels)
        agreement = (
            sum(1 for _, value, _, _ in labels if value == label) / n_labels if n_labels else None
        )
        selected.append(
            {
                "item": item,
                "label": label,
                "status": status,
                "confidence": _round(confidence),
                "agreement": _round(agreement),
                "n_labels": n_labels,
                "labelers": sorted({username for username, _, _, _ in labels}),
                "guideline_versions": sorted({g for _, _, g, _ in labels if g is not None}),
                "resolution": resolution_id,
                "final_label_source": chosen.source,
            }
        )

    if not selected:
        # An empty version is a mistake in the request, never a success.
        raise ValidationError(
            f"the version would have 0 rows: {len(final)} items have a final label in run "
            f"{run.pk}, {len(items)} of them pass the filters, and none of those passes "
            f"min_confidence={request['min_confidence']}, "
            f"include_borderline={request['include_borderline']}, "
            f"include_unresolved={request['include_unresolved']}; loosen the request"
        )
    assignment = _assign_splits(selected, request)

    metadata_values: dict[str, list] = defaultdict(list)
    for row in selected:
        for key, value in (row["item"]["metadata"] or {}).items():
            metadata_values[key].append(value)
    columns = [{"name": name, "type": kind} for name, kind in BASE_COLUMNS] + [
        {"name": f"metadata.{key}", "type": _column_type(values), "key": key}
        for key, values in sorted(metadata_values.items())
    ]

    selected.sort(key=lambda r: r["item"]["external_id"])
    params = {
        **request,
        "class_merges": class_merges,
        "labels_as_of": labels_as_of,
        "format_version": FORMAT_VERSION,
    }
    digest = hashlib.sha256(canonical_json(params).encode() + b"\n")
    split_counts = Counter({name: 0 for name in request["splits"]})
    class_counts: Counter = Counter()
    split_class_counts: dict[str, Counter] = defaultdict(Counter)
    batch = []
    for position, row in enumerate(selected):
        item = row["item"]
        split = assignment[item["id"]]
        image_name = item["image"] or ""
        record = {
            "external_id": item["external_id"],
            "item_id": item["id"],
            "label": row["label"],
            "final_label_source": row["final_label_source"],
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
        }
        line = canonical_json(record)
        digest.update(line.encode() + b"\n")
        split_counts[split] += 1
        class_counts[row["label"]] += 1
        split_class_counts[split][row["label"]] += 1
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
        if len(batch) >= ROW_INSERT_BATCH:
            DatasetRow.objects.bulk_create(batch)
            batch = []
    if batch:
        DatasetRow.objects.bulk_create(batch)

    jobs.failpoint("dataset.build")
    _hold_build(version)
    version.params = params
    version.columns = columns
    version.row_count = len(selected)
    version.split_counts = dict(split_counts)
    version.class_counts = {
        "all": dict(sorted(class_counts.items())),
        "by_split": {s: dict(sorted(split_class_counts[s].items())) for s in request["splits"]},
    }
    version.lineage = _lineage_summary(project, run, selected, class_merges)
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
            "agreement_run": run.pk,
        },
    )


def _assign_splits(selected: list[dict], request: dict) -> dict[int, str]:
    """Item id -> split, by ``datasets.splits`` over items or whole groups."""
    group_by = request["group_by"]
    stratify_by = request["stratify_by"]

    def stratum_values(row: dict) -> tuple:
        metadata = row["item"]["metadata"] or {}
        out = []
        for spec in stratify_by:
            if spec == "label":
                out.append(row["label"])
            else:
                value = metadata.get(spec[len("metadata.") :])
                out.append(canonical_json(value))
        return tuple(out)

    members: dict[str, list[dict]] = defaultdict(list)
    for row in selected:
        metadata = row["item"]["metadata"] or {}
        group = metadata.get(group_by) if group_by else None
        if group is None:
            key = "item\x1f" + row["item"]["external_id"]
        else:
            key = "group\x1f" + canonical_json(group)
        members[key].append(row)
    units = []
    for key, rows in members.items():
        if len(rows) == 1:
            stratum = stratum_values(rows[0])
        else:  # a group is stratified by its majority value of each key
            per_key = list(zip(*(stratum_values(r) for r in rows), strict=True))
            stratum = tuple(splits.majority(values) for values in per_key)
        units.append(splits.Unit(key=key, stratum=stratum, size=len(rows)))
    by_unit = splits.assign_splits(units, request["splits"], request["seed"])
    return {row["item"]["id"]: by_unit[key] for key, rows in members.items() for row in rows}


def _lineage_summary(
    project: Project, run: AgreementRun | None, selected: list[dict], class_merges: dict
) -> dict:
    """What contributed to the version, summarised (counts per batch and labeler), as of now."""
    batch_items: Counter = Counter()
    batch_labelers: Counter = Counter()
    labeler_counts: Counter = Counter()
    guideline_versions: set[int] = set()
    resolution_items: Counter = Counter()
    for row in selected:
        batch = row["item"]["source_batch_id"]
        batch_items[batch] += 1
        for labeler in row["labelers"]:
            batch_labelers[(batch, labeler)] += 1
            labeler_counts[labeler] += 1
        guideline_versions.update(row["guideline_versions"])
        if row["resolution"] is not None:
            resolution_items[row["resolution"]] += 1

    batches = {
        b.pk: b
        for b in SourceBatch.objects.filter(pk__in=[b for b in batch_items if b is not None])
        .select_related("created_by")
        .order_by()
    }
    # Merges decided by SMEs that shaped the classes of this version also contributed.
    merged_keys = set(class_merges) | set(class_merges.values())
    resolution_rows = list(
        Resolution.objects.filter(project=project)
        .filter(pk__in=list(resolution_items))
        .select_related("decided_by", "label_class", "into_class")
        .order_by("created_at", "id")
    )
    if merged_keys:
        resolution_rows += list(
            Resolution.objects.filter(
                project=project,
                action__in=[ResolutionAction.MERGE_CLASSES, ResolutionAction.UNMERGE_CLASSES],
            )
            .filter(label_class__key__in=merged_keys)
            .exclude(pk__in=list(resolution_items))
            .select_related("decided_by", "label_class", "into_class")
            .order_by("created_at", "id")
        )
    guidelines = Guideline.objects.filter(project=project, version__in=guideline_versions).order_by(
        "version"
    )

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "source_batches": [
            {
                "id": batch_id,
                "kind": batches[batch_id].kind if batch_id in batches else None,
                "origin": batches[batch_id].origin if batch_id in batches else "",
                "file_sha256": batches[batch_id].file_sha256 if batch_id in batches else "",
                "created_at": when(batches[batch_id].created_at) if batch_id in batches else None,
                "created_by": (
                    batches[batch_id].created_by.get_username()
                    if batch_id in batches and batches[batch_id].created_by
                    else None
                ),
                "n_items": n,
            }
            for batch_id, n in sorted(
                batch_items.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
            )
        ],
        "batch_labelers": [
            {"source_batch": batch, "labeler": labeler, "n_items": n}
            for (batch, labeler), n in sorted(
                batch_labelers.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0, kv[0][1])
            )
        ],
        "labelers": [{"labeler": k, "n_items": v} for k, v in sorted(labeler_counts.items())],
        "guidelines": [
            {"id": g.pk, "version": g.version, "published_at": when(g.published_at)}
            for g in guidelines
        ],
        "agreement_run": (
            {
                "id": run.pk,
                "params": run.params,
                "created_at": when(run.created_at),
                "finished_at": when(run.finished_at),
            }
            if run is not None
            else None
        ),
        "resolutions": [
            {
                "id": r.pk,
                "action": r.action,
                "rationale": r.rationale,
                "decided_by": r.decided_by.get_username(),
                "created_at": when(r.created_at),
                "label": r.label_class.key if r.label_class_id else None,
                "into": r.into_class.key if r.into_class_id else None,
                "n_items": resolution_items.get(r.pk, 0),
            }
            for r in resolution_rows
        ],
        "class_merges": class_merges,
    }


# --- Pipeline tokens -----------------------------------------------------------------------
TOKEN_PREFIX = "cnc_"
TOKEN_SCOPES = ("read", "write")


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def create_pipeline_token(
    *,
    project: Project,
    name: str,
    created_by: AbstractBaseUser | None,
    scopes: Iterable[str] = ("read",),
    expires_at: datetime | None = None,
) -> tuple[PipelineToken, str]:
    """Create a token for one project; returns the token and its secret (shown once).

    The token acts as a service user ``pipeline-<project slug>-<token id>`` with an
    unusable password, a ``viewer`` of this project only (``sme`` with the ``write``
    scope, so it may build dataset versions).
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": "a token needs a name of at most 100 characters"})
    scopes = sorted(set(scopes or ("read",)))
    bad = [s for s in scopes if s not in TOKEN_SCOPES]
    if bad:
        raise ValidationError({"scopes": f"unknown scope(s) {bad}; allowed: read, write"})
    if "read" not in scopes:
        scopes = sorted({*scopes, "read"})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "must be in the future"})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PipelineToken.objects.create(
        project=project,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(secret),
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
    )
    user = labeling_services.create_user(username=f"pipeline-{project.slug}-{token.pk}"[:150])
    labeling_services.set_membership(
        project=project,
        user=user,
        role=access.TOKEN_WRITE_ROLE if "write" in scopes else access.TOKEN_READ_ROLE,
        actor=created_by,
    )
    token.user = user
    token.save(update_fields=["user"])
    events.pipeline_token_created(
        project_id=project.pk,
        actor_id=getattr(created_by, "pk", None),
        token_id=token.pk,
        after={"name": name, "scopes": scopes, "prefix": token.prefix, "user": user.username},
    )
    return token, secret


@transaction.atomic
def revoke_pipeline_token(*, token: PipelineToken, revoked_by: AbstractBaseUser | None) -> None:
    """Revoke a token: it fails with 401 from now on; its service user is deactivated."""
    token = PipelineToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return
    token.revoked_at = timezone.now()
    token.revoked_by = revoked_by
    token.save(update_fields=["revoked_at", "revoked_by"])
    if token.user is not None:
        token.user.is_active = False
        token.user.save(update_fields=["is_active"])
    events.pipeline_token_revoked(
        project_id=token.project_id, actor_id=getattr(revoked_by, "pk", None), token_id=token.pk
    )
