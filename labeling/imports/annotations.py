"""Label imports: historical labels (JSON, JSONL, CSV) and Label Studio JSON exports,
stored as one source batch with revision chains, labeler accounts, gold labels and events.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from labeling import handout
from labeling import selectors as labeling_selectors
from labeling.boxes import BoxError, normalize_boxes
from labeling.imports import boxes as box_adapters
from labeling.imports.errors import (
    ImportRejected,
    ImportResult,
    _conflicts_rejected,
    _error,
    _reject_or_continue,
    _sort_errors,
)
from labeling.imports.items import (
    MAX_IN_QUERY,
    _fetch_by_external_id,
    _finish_batch,
    _store_items,
)
from labeling.imports.label_studio import is_label_studio_export, label_studio_rows
from labeling.imports.parsing import ZipArchive, parse_json, parse_rows
from labeling.imports.rows import AnnotationRow, _validate_item_rows, clean_annotation_row
from labeling.models import (
    Annotation,
    AnnotationSource,
    GoldLabel,
    GoldSource,
    Guideline,
    Item,
    LabelClass,
    Project,
    ProjectMembership,
    Role,
    SourceBatch,
    SourceBatchKind,
    SourceBatchStatus,
    TaskType,
)
from labeling.selectors import annotation_value
from provenance import events
from provenance.bulk import BATCH_SIZE, chunks

User = get_user_model()
_url_validator = URLValidator(schemes=["http", "https"])


def _value_resolver(project: Project):
    """A function turning a submitted value into annotation fields (or raising ValueError
    with a message), with the project's classes loaded once.

    Detection: the value is a list of boxes (a CSV cell holds it as JSON text), checked by
    :func:`labeling.boxes.normalize_boxes` against the image size when one is known."""
    classes = {c.key: c for c in LabelClass.objects.filter(project=project)}
    known = ", ".join(sorted(classes))

    def resolve(value: Any, image_size: tuple[int, int] | None = None) -> dict:
        if project.task_type == TaskType.DETECTION:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        "a detection label is a JSON list of boxes {class, x, y, w, h} "
                        f"([] = nothing there): {exc.msg} at column {exc.colno}"
                    ) from exc
            try:
                return {
                    "value_boxes": normalize_boxes(value, class_keys=classes, image_size=image_size)
                }
            except BoxError as exc:
                raise ValueError(str(exc)) from exc
        if project.task_type == TaskType.TRANSCRIPTION:
            if not isinstance(value, str) or not value.strip():
                raise ValueError("a transcription needs non-empty text")
            return {"value_text": value}
        if isinstance(value, str):
            key = value.strip()
            if key in classes:
                c = classes[key]
                return {"label_class": c, "value_number": c.value}
            if project.task_type == TaskType.RATING:
                try:
                    return {"value_number": float(key)}
                except ValueError:
                    pass
            raise ValueError(f"unknown class {key!r}; known classes: {known}")
        if project.task_type == TaskType.RATING and isinstance(value, int | float):
            return {"value_number": float(value)}
        raise ValueError(f"expected a class key, got {value!r}")

    return resolve


def _image_sizes(project: Project, item_ids: dict[str, int]) -> dict[str, tuple[int, int]]:
    """{external id: (width, height)} of the items whose image size is known."""
    pks = [pk for pk in item_ids.values() if pk]
    sizes: dict[int, tuple[int, int]] = {}
    for chunk in chunks(pks):
        for pk, width, height in Item.objects.filter(
            pk__in=chunk, width__gt=0, height__gt=0
        ).values_list("pk", "width", "height"):
            sizes[pk] = (width, height)
    return {eid: sizes[pk] for eid, pk in item_ids.items() if pk in sizes}


def _check_annotation_rows(
    *, project: Project, rows: list[AnnotationRow], item_ids: dict[str, int] | None
) -> tuple[list[AnnotationRow], list[dict]]:
    """Resolve values, items and guideline versions; drop and report rows that fail.

    ``item_ids`` maps external ids to pks; None means look them up (one query). An
    external id mapped to 0 stands for an item this import is about to create.
    """
    resolve = _value_resolver(project)
    versions = dict(Guideline.objects.filter(project=project).values_list("version", "pk"))
    if item_ids is None:
        item_ids = _fetch_by_external_id(project, sorted({r.item_external_id for r in rows}))
    # Boxes are checked against the image: the size the file states (COCO, YOLO, Label
    # Studio), else the size computed when the item's image was ingested.
    sizes = _image_sizes(project, item_ids) if project.task_type == TaskType.DETECTION else {}
    good, errors = [], []
    for row in rows:
        p = row.field_prefix
        row_errors = []
        if row.item_external_id not in item_ids:
            row_errors.append(
                _error(
                    row.row,
                    p + "item",
                    f"the project has no item with external_id {row.item_external_id!r}",
                )
            )
        try:
            row.fields = resolve(row.value, row.image_size or sizes.get(row.item_external_id))
        except ValueError as exc:
            row_errors.append(_error(row.row, p + "value", str(exc)))
        if row.guideline_version is not None and row.guideline_version not in versions:
            row_errors.append(
                _error(
                    row.row,
                    p + "guideline_version",
                    f"the project has no guideline version {row.guideline_version}",
                )
            )
        if row_errors:
            errors.extend(row_errors)
        else:
            row.fields["guideline_id"] = versions.get(row.guideline_version)
            good.append(row)
    # Two gold rows for one item must agree.
    gold_values: dict[str, tuple[int, Any]] = {}
    conflicting = set()
    for row in good:
        if not row.gold:
            continue
        key = _fields_key(row.fields)
        if row.item_external_id in gold_values and gold_values[row.item_external_id][1] != key:
            errors.append(
                _error(
                    row.row,
                    row.field_prefix + "gold",
                    f"gold label for {row.item_external_id!r} disagrees with row "
                    f"{gold_values[row.item_external_id][0]}",
                )
            )
            conflicting.add(id(row))
        else:
            gold_values.setdefault(row.item_external_id, (row.row, key))
    good = [r for r in good if id(r) not in conflicting]
    return good, errors


def _fields_key(fields: dict) -> tuple:
    label_class = fields.get("label_class")
    boxes = fields.get("value_boxes")
    return (
        label_class.pk if label_class else None,
        fields.get("value_number"),
        fields.get("value_text", ""),
        None if boxes is None else json.dumps(boxes, sort_keys=True),
    )


@_conflicts_rejected
def import_annotations(
    *,
    project: Project,
    data: bytes,
    fmt: str,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    base_url: str = "",
) -> ImportResult:
    """Import historical labels (JSON, JSONL or CSV rows of ``{item, labeler, value,
    created_at?, guideline_version?, time_spent_ms?, comment?, gold?}``) as one batch.

    Unknown labeler ids become inactive labeler accounts (unusable password) added to the
    project as labelers; a manager activates them. For one item and labeler, the row with
    the latest ``created_at`` (ties: the later row) is current, earlier rows are its
    superseded revisions, and a current annotation already stored is superseded when an
    imported row is newer (else the imported rows are stored as older revisions).
    A JSON list of Label Studio tasks is recognised and handed to :func:`import_label_studio`.
    """
    if fmt not in ("json", "jsonl", "csv"):
        raise ImportRejected(f"labels can be imported as json, jsonl or csv, not {fmt}")
    if len(data) > settings.CONCORD_MAX_IMPORT_BYTES:
        raise ImportRejected(
            f"the file is {len(data)} bytes; the limit is {settings.CONCORD_MAX_IMPORT_BYTES}",
            status=413,
        )
    if fmt == "json" and box_adapters.looks_like_coco(data):
        return import_coco(
            project=project,
            data=data,
            actor=actor,
            origin=origin,
            content_type=content_type,
            partial=partial,
        )
    if fmt == "json":
        raw_rows = parse_json(data, list_keys=("annotations", "rows"))
        if is_label_studio_export([v for _, v in raw_rows]):
            return import_label_studio(
                project=project,
                tasks=[v for _, v in raw_rows],
                file_sha256=hashlib.sha256(data).hexdigest(),
                actor=actor,
                origin=origin,
                content_type=content_type,
                partial=partial,
                base_url=base_url,
            )
        errors: list[dict] = []
    else:
        raw_rows, errors = parse_rows(data, fmt, csv_required=("item", "labeler", "value"))
    n_rows = len(raw_rows) + len(errors)
    rows = []
    for n, raw in raw_rows:
        row, row_errors = clean_annotation_row(n, raw)
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    return _import_label_rows(
        project=project,
        rows=rows,
        errors=errors,
        n_rows=n_rows,
        file_sha256=hashlib.sha256(data).hexdigest(),
        fmt=fmt,
        actor=actor,
        origin=origin,
        content_type=content_type,
        partial=partial,
    )


def _import_label_rows(
    *,
    project: Project,
    rows: list[AnnotationRow],
    errors: list[dict],
    n_rows: int,
    file_sha256: str,
    fmt: str,
    actor: AbstractBaseUser | None,
    origin: str,
    content_type: str,
    partial: bool,
    extra: dict | None = None,
    what: str = "rows",
) -> ImportResult:
    """Check shaped label rows against the project and store them as one batch (or raise
    :class:`ImportRejected`, nothing stored). Every label import ends here."""
    good, check_errors = _check_annotation_rows(project=project, rows=rows, item_ids=None)
    errors = errors + check_errors
    _reject_or_continue(good=good, errors=errors, n_rows=n_rows, partial=partial, what=what)
    errors = _sort_errors(errors)
    with transaction.atomic():
        batch = SourceBatch.objects.create(
            project=project,
            kind=SourceBatchKind.ANNOTATIONS,
            origin=origin[:500],
            content_type=content_type[:100],
            file_sha256=file_sha256,
            created_by=actor if getattr(actor, "pk", None) else None,
            status=SourceBatchStatus.PARTIAL if errors else SourceBatchStatus.SUCCEEDED,
        )
        stored = _store_annotations(project=project, rows=good, batch=batch, actor=actor)
        _finish_batch(
            batch=batch,
            actor=actor,
            n_rows=n_rows,
            n_created=stored["n_created"],
            n_updated=stored["n_superseded"],
            errors=errors,
            extra={"format": fmt, **stored, **(extra or {})},
        )
    return ImportResult(
        source_batch=batch.pk,
        n_rows=n_rows,
        n_created=stored["n_created"],
        n_updated=stored["n_superseded"],
        errors=errors,
        extra={
            **{k: v for k, v in stored.items() if k not in ("n_created",)},
            **(extra or {}),
        },
    )


def _ensure_labelers(
    *, project: Project, usernames: set[str], actor: AbstractBaseUser | None
) -> tuple[dict[str, int], int, int]:
    """{username: user pk}; unknown ids become inactive accounts with an unusable password,
    and every labeler not yet a member joins the project as a labeler.
    Returns (ids, accounts created, memberships added)."""
    names = sorted(usernames)
    users: dict[str, int] = {}
    for chunk in chunks(names):
        users.update(User.objects.filter(username__in=chunk).values_list("username", "pk"))
    new_users = [
        User(
            username=name,
            email=name if "@" in name else "",  # Label Studio labelers are named by email
            is_active=False,
            password=make_password(None),
        )
        for name in names
        if name not in users
    ]
    if new_users:
        User.objects.bulk_create(new_users, batch_size=BATCH_SIZE)
        for chunk in chunks([u.username for u in new_users]):
            users.update(User.objects.filter(username__in=chunk).values_list("username", "pk"))
    members = set(
        ProjectMembership.objects.filter(
            project=project, user_id__in=list(users.values())
        ).values_list("user_id", flat=True)
    )
    joining = [(name, pk) for name, pk in users.items() if pk not in members]
    if joining:
        ProjectMembership.objects.bulk_create(
            [ProjectMembership(project=project, user_id=pk, role=Role.LABELER) for _, pk in joining]
        )
        events.members_added_bulk(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            rows=[
                (pk, {"role": Role.LABELER, "username": name, "via": "import"})
                for name, pk in joining
            ],
        )
    return users, len(new_users), len(joining)


def _existing_current(
    project: Project, item_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[int, datetime]]:
    """{(item, labeler): (annotation pk, created_at)} of current annotations on the items."""
    qs = Annotation.objects.filter(project=project, is_current=True)
    cols = ("item_id", "labeler_id", "pk", "created_at")
    if len(item_ids) <= MAX_IN_QUERY:
        found = qs.filter(item_id__in=list(item_ids)).values_list(*cols)
    else:
        wanted = set(item_ids)
        found = (r for r in qs.values_list(*cols).iterator(chunk_size=10_000) if r[0] in wanted)
    return {(i, labeler): (pk, created) for i, labeler, pk, created in found}


def _store_annotations(
    *,
    project: Project,
    rows: list[AnnotationRow],
    batch: SourceBatch,
    actor: AbstractBaseUser | None,
    source: str = AnnotationSource.IMPORT,
) -> dict:
    """Write checked rows: revision chains, superseded current rows, gold labels, events."""
    item_ids = _fetch_by_external_id(project, sorted({r.item_external_id for r in rows}))
    labelers, n_accounts, n_members = _ensure_labelers(
        project=project, usernames={r.labeler for r in rows}, actor=actor
    )
    now = timezone.now()
    groups: dict[tuple[int, int], list[AnnotationRow]] = defaultdict(list)
    for row in rows:
        groups[(item_ids[row.item_external_id], labelers[row.labeler])].append(row)
    existing = _existing_current(project, sorted({k[0] for k in groups}))
    # Arrange each (item, labeler)'s rows oldest first; the chain position is the level
    # at which the row is inserted, so every row's predecessor already has a pk.
    levels: list[list[tuple[Annotation, AnnotationRow]]] = []
    chains: dict[tuple[int, int], list[Annotation]] = {}
    superseded: list[int] = []
    for key, group in groups.items():
        order = sorted(enumerate(group), key=lambda p: (p[1].created_at or now, p[0]))
        ordered = [r for _, r in order]
        newest_at = ordered[-1].created_at or now
        previous_pk = None
        stays_current = False
        if key in existing:
            old_pk, old_at = existing[key]
            if newest_at >= old_at:
                superseded.append(old_pk)
                previous_pk = old_pk
            else:
                stays_current = True  # the stored label is newer than every imported row
        chain = []
        for position, row in enumerate(ordered):
            annotation = Annotation(
                project=project,
                item_id=key[0],
                labeler_id=key[1],
                time_spent_ms=row.time_spent_ms,
                comment=row.comment,
                source=source,
                is_current=(position == len(ordered) - 1) and not stays_current,
                supersedes_id=previous_pk if position == 0 else None,
                created_at=row.created_at or now,
                **row.fields,
            )
            while len(levels) <= position:
                levels.append([])
            levels[position].append((annotation, row))
            chain.append(annotation)
        chains[key] = chain
    for chunk in chunks(superseded):
        Annotation.objects.filter(pk__in=chunk).update(is_current=False)
    for position, level in enumerate(levels):
        if position:
            for annotation, _ in level:
                chain = chains[(annotation.item_id, annotation.labeler_id)]
                annotation.supersedes_id = chain[position - 1].pk
        Annotation.objects.bulk_create([a for a, _ in level], batch_size=BATCH_SIZE)
    all_pairs = [pair for level in levels for pair in level]
    events.annotations_imported_bulk(
        project_id=project.pk,
        actor_id=getattr(actor, "pk", None),
        batch_id=batch.pk,
        rows=[
            (
                a.pk,
                a.item_id,
                {
                    "value": annotation_value(a),
                    "labeler": r.labeler,
                    "created_at": a.created_at.isoformat(),
                    "guideline_version": r.guideline_version,
                    "is_current": a.is_current,
                    "supersedes": a.supersedes_id,
                },
            )
            for a, r in all_pairs
        ],
    )
    n_gold = _store_gold(project=project, pairs=all_pairs, actor=actor)
    # The hand-out state of the items and the labelers' counters move with the labels
    # (issue 14): recounted for the items and labelers of this batch, items locked in pk
    # order like every writer.
    touched = sorted({k[0] for k in groups})
    handout.lock_items(touched)
    handout.refresh_items(project, touched, now=now)
    handout.rebuild_labeler_counts(project, {k[1] for k in groups})
    return {
        "n_created": len(all_pairs),
        "n_superseded": len(superseded),
        "n_labelers_created": n_accounts,
        "n_members_added": n_members,
        "n_gold": n_gold,
    }


def _store_gold(
    *,
    project: Project,
    pairs: list[tuple[Annotation, AnnotationRow]],
    actor: AbstractBaseUser | None,
) -> int:
    """Gold labels for rows marked gold: one per item, replacing a stored one."""
    gold: dict[int, Annotation] = {}
    for annotation, row in pairs:
        if row.gold:
            gold[annotation.item_id] = annotation
    if not gold:
        return 0
    item_ids = sorted(gold)
    before: dict[int, dict] = {}
    for chunk in chunks(item_ids):
        for g in GoldLabel.objects.filter(item_id__in=chunk).select_related("label_class"):
            before[g.item_id] = {"value": annotation_value(g), "source": g.source}
        GoldLabel.objects.filter(item_id__in=chunk).delete()
    actor_id = getattr(actor, "pk", None)
    GoldLabel.objects.bulk_create(
        [
            GoldLabel(
                item_id=item_id,
                label_class_id=a.label_class_id,
                value_number=a.value_number,
                value_text=a.value_text,
                value_boxes=a.value_boxes,
                source=GoldSource.IMPORT,
                created_by_id=actor_id,
                labeler_id=a.labeler_id,
            )
            for item_id, a in gold.items()
        ],
        batch_size=BATCH_SIZE,
    )
    events.gold_set_bulk(
        project_id=project.pk,
        actor_id=actor_id,
        rows=[
            (
                item_id,
                before.get(item_id),
                {"value": annotation_value(a), "source": GoldSource.IMPORT},
            )
            for item_id, a in gold.items()
        ],
        reason="imported",
    )
    return len(gold)


@_conflicts_rejected
def import_label_studio(
    *,
    project: Project,
    tasks: list,
    file_sha256: str,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    base_url: str = "",
) -> ImportResult:
    """Import a Label Studio JSON export: tasks become items (created or updated), their
    non-cancelled annotations become labels, ``ground_truth`` annotations also gold labels.
    Rows are numbered by task (1-based); ``field`` names the annotation."""
    if not isinstance(tasks, list):
        raise ImportRejected("a Label Studio export is a JSON list of tasks")
    if base_url:
        try:
            _url_validator(base_url)
        except ValidationError as exc:
            raise ImportRejected(f"base_url {base_url[:200]!r} is not an http(s) URL") from exc
    item_raw, label_raw, errors, n_cancelled = label_studio_rows(
        tasks, task_type=project.task_type, base_url=base_url
    )
    item_rows, item_errors = _validate_item_rows(item_raw, allow_file=False)
    errors += item_errors
    good_tasks = {r.external_id for r in item_rows}
    bad_tasks = {e["row"] for e in errors}
    labels = []
    for n, raw, prefix in label_raw:
        image_size = raw.pop("image_size", None)
        row, row_errors = clean_annotation_row(n, raw, prefix=prefix)
        errors.extend(row_errors)
        if row is not None:
            row.image_size = image_size
            labels.append(row)
    known = _fetch_by_external_id(project, sorted(good_tasks))
    item_ids = {eid: known.get(eid, 0) for eid in good_tasks}
    labels, label_errors = _check_annotation_rows(project=project, rows=labels, item_ids=item_ids)
    errors += label_errors
    # A task with any error is left out whole, so no item lands without its labels.
    bad_tasks |= {e["row"] for e in errors}
    item_rows = [r for r in item_rows if r.row not in bad_tasks]
    labels = [r for r in labels if r.row not in bad_tasks]
    _reject_or_continue(
        good=item_rows, errors=errors, n_rows=len(tasks), partial=partial, what="tasks"
    )
    errors = _sort_errors(errors)
    with transaction.atomic():
        batch = SourceBatch.objects.create(
            project=project,
            kind=SourceBatchKind.LABEL_STUDIO,
            origin=origin[:500],
            content_type=content_type[:100],
            file_sha256=file_sha256,
            created_by=actor if getattr(actor, "pk", None) else None,
            status=SourceBatchStatus.PARTIAL if errors else SourceBatchStatus.SUCCEEDED,
        )
        created_ids, updated_ids, _, _ = _store_items(
            project=project, rows=item_rows, batch=batch, actor=actor, saved_files=[]
        )
        stored = (
            _store_annotations(project=project, rows=labels, batch=batch, actor=actor)
            if labels
            else {
                "n_created": 0,
                "n_superseded": 0,
                "n_labelers_created": 0,
                "n_members_added": 0,
                "n_gold": 0,
            }
        )
        extra = {
            "format": "label_studio",
            "n_items_created": len(created_ids),
            "n_items_updated": len(updated_ids),
            "n_annotations_created": stored["n_created"],
            "n_superseded": stored["n_superseded"],
            "n_labelers_created": stored["n_labelers_created"],
            "n_members_added": stored["n_members_added"],
            "n_gold": stored["n_gold"],
            "n_cancelled_skipped": n_cancelled,
        }
        _finish_batch(
            batch=batch,
            actor=actor,
            n_rows=len(tasks),
            n_created=stored["n_created"],
            n_updated=stored["n_superseded"],
            errors=errors,
            extra=extra,
        )
    return ImportResult(
        source_batch=batch.pk,
        n_rows=len(tasks),
        n_created=stored["n_created"],
        n_updated=stored["n_superseded"],
        errors=errors,
        extra=extra,
    )


def import_label_studio_file(
    *,
    project: Project,
    data: bytes,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    base_url: str = "",
) -> ImportResult:
    """A Label Studio JSON export file (bytes): see :func:`import_label_studio`."""
    if len(data) > settings.CONCORD_MAX_IMPORT_BYTES:
        raise ImportRejected(
            f"the file is {len(data)} bytes; the limit is {settings.CONCORD_MAX_IMPORT_BYTES}",
            status=413,
        )
    tasks = [value for _, value in parse_json(data, list_keys=("tasks",))]
    return import_label_studio(
        project=project,
        tasks=tasks,
        file_sha256=hashlib.sha256(data).hexdigest(),
        actor=actor,
        origin=origin,
        content_type=content_type,
        partial=partial,
        base_url=base_url,
    )


def _detection_only(project: Project, what: str) -> None:
    if project.task_type != TaskType.DETECTION:
        raise ImportRejected(
            f"{what} holds boxes: it can be imported into a detection project only "
            f"(this project is {project.task_type})"
        )


def _check_size(data: bytes) -> None:
    if len(data) > settings.CONCORD_MAX_IMPORT_BYTES:
        raise ImportRejected(
            f"the file is {len(data)} bytes; the limit is {settings.CONCORD_MAX_IMPORT_BYTES}",
            status=413,
        )


@_conflicts_rejected
def import_coco(
    *,
    project: Project,
    data: bytes,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    labeler: str | None = None,
    gold: bool = False,
) -> ImportResult:
    """Import a COCO JSON file's boxes into a detection project, one label per (image,
    labeler), as one batch (see :func:`labeling.imports.boxes.coco_rows` for how images,
    categories and labelers are matched). Images name existing items; nothing is stored
    when any image, annotation or category is at fault (unless ``partial``)."""
    _detection_only(project, "a COCO file")
    _check_size(data)
    document = box_adapters.parse_coco(data)
    rows, errors, n_images, extra = box_adapters.coco_rows(
        document,
        known_items=lambda ids: _fetch_by_external_id(project, ids),
        labeler=labeler or None,
        gold=gold,
    )
    # A category error concerns every image: nothing can be stored safely.
    if any(e["row"] == 0 for e in errors):
        raise ImportRejected(
            "the COCO categories cannot be read; nothing was imported",
            errors=_sort_errors(errors),
        )
    return _import_label_rows(
        project=project,
        rows=rows,
        errors=errors,
        n_rows=n_images,
        file_sha256=hashlib.sha256(data).hexdigest(),
        fmt="coco",
        actor=actor,
        origin=origin,
        content_type=content_type,
        partial=partial,
        extra={"format": "coco", **extra},
        what="images",
    )


@_conflicts_rejected
def import_yolo(
    *,
    project: Project,
    data: bytes,
    labeler: str,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    gold: bool = False,
) -> ImportResult:
    """Import a YOLO zip (images with one ``class cx cy w h`` text file each) into a
    detection project as ``labeler``'s labels, one batch (see
    :func:`labeling.imports.boxes.yolo_rows`). Images name existing items."""
    _detection_only(project, "a YOLO archive")
    _check_size(data)
    if not labeler:
        raise ImportRejected(
            "YOLO files name no labeler: send ?labeler=<labeler id>",
            errors=[_error(None, "labeler", "required for YOLO imports")],
        )
    archive = ZipArchive(
        data,
        max_member_bytes=settings.CONCORD_MAX_IMAGE_BYTES,
        max_total_bytes=settings.CONCORD_MAX_ZIP_UNCOMPRESSED_BYTES,
    )
    rows, errors, n_images, extra = box_adapters.yolo_rows(
        archive,
        class_order=labeling_selectors.detection_class_order(project),
        known_items=lambda ids: _fetch_by_external_id(project, ids),
        labeler=labeler,
        gold=gold,
        max_image_bytes=settings.CONCORD_MAX_IMAGE_BYTES,
        max_image_pixels=settings.CONCORD_MAX_IMAGE_PIXELS,
    )
    return _import_label_rows(
        project=project,
        rows=rows,
        errors=errors,
        n_rows=n_images,
        file_sha256=hashlib.sha256(data).hexdigest(),
        fmt="yolo",
        actor=actor,
        origin=origin,
        content_type=content_type,
        partial=partial,
        extra={"format": "yolo", **extra},
        what="images",
    )
