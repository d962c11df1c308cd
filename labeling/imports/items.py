"""Item imports: JSON, JSONL, CSV or a zip of images with a manifest, stored as one
source batch with its items, tags, uploaded images and ``item.imported`` events."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from labeling import images
from labeling.imports.errors import (
    MAX_REPORTED_ERRORS,
    ImportRejected,
    ImportResult,
    _conflicts_rejected,
    _error,
    _reject_or_continue,
    _sort_errors,
)
from labeling.imports.formats import FORMATS
from labeling.imports.parsing import ZipArchive, _csv_item_row, _safe_member_name, parse_rows
from labeling.imports.rows import ItemRow, _validate_item_rows
from labeling.models import (
    ImageStatsStatus,
    Item,
    PayloadKind,
    Project,
    SourceBatch,
    SourceBatchKind,
    SourceBatchStatus,
    Tag,
    item_image_path,
)
from provenance import events
from provenance.bulk import chunks, insert_rows, update_rows

# Up to this many ids are looked up with one ``IN (...)`` query; above it the project's
# whole id index is read in one query (cheaper than a huge parameter list, and SQLite
# limits the number of parameters).
MAX_IN_QUERY = 2000


def _fetch_by_external_id(project: Project, external_ids: Sequence[str]) -> dict[str, int]:
    """{external_id: item pk} for those of ``external_ids`` the project has, in one query."""
    if not external_ids:
        return {}
    items = Item.objects.filter(project=project)
    if len(external_ids) <= MAX_IN_QUERY:
        items = items.filter(external_id__in=list(external_ids))
        return dict(items.values_list("external_id", "pk"))
    wanted = set(external_ids)
    return {
        eid: pk
        for eid, pk in items.values_list("external_id", "pk").iterator(chunk_size=10_000)
        if eid in wanted
    }


def _check_zip_images(rows: list[ItemRow], archive: ZipArchive, base: str) -> list[dict]:
    """Read and verify each row's image; a row that fails is removed and reported."""
    errors = []
    limits = {
        "max_bytes": settings.CONCORD_MAX_IMAGE_BYTES,
        "max_pixels": settings.CONCORD_MAX_IMAGE_PIXELS,
    }
    for row in rows:
        name = _safe_member_name(f"{base}{row.file}") if row.file else None
        if name is None:
            errors.append(_error(row.row, "file", f"unsafe path {row.file!r}"))
            continue
        if name not in archive.members:
            errors.append(_error(row.row, "file", f"{row.file!r} is not in the archive"))
            continue
        try:
            data = archive.read(name)
            images.open_checked(data, **limits)
        except images.ImageRejected as exc:
            errors.append(_error(row.row, "file", f"{row.file}: {exc}"))
            continue
        row.image_bytes = data
        row.content_hash = hashlib.sha256(data).hexdigest()
    return errors


@_conflicts_rejected
def import_items(
    *,
    project: Project,
    data: bytes,
    fmt: str,
    actor: AbstractBaseUser | None = None,
    origin: str = "",
    content_type: str = "",
    partial: bool = False,
    fetch_image_urls: bool = False,
) -> ImportResult:
    """Import item rows (see module docstring) as one source batch.

    ``fmt`` is ``json`` | ``jsonl`` | ``csv`` | ``zip``. Existing external ids are updated
    (payload always; metadata and tags when the row gives them); new ones are created.
    Uploaded images get their statistics from the worker after commit; ``image_url``
    items are fetched for statistics only when ``fetch_image_urls`` is true.
    Raises :class:`ImportRejected` (nothing stored) for a bad file or, unless ``partial``,
    any invalid row.
    """
    if fmt not in FORMATS:
        raise ImportRejected(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if len(data) > settings.CONCORD_MAX_IMPORT_BYTES:
        raise ImportRejected(
            f"the file is {len(data)} bytes; the limit is {settings.CONCORD_MAX_IMPORT_BYTES}",
            status=413,
        )
    if fmt == "zip":
        archive = ZipArchive(
            data,
            max_member_bytes=settings.CONCORD_MAX_IMAGE_BYTES,
            max_total_bytes=settings.CONCORD_MAX_ZIP_UNCOMPRESSED_BYTES,
        )
        manifest_name, manifest_fmt = archive.manifest()
        base = manifest_name.rsplit("/", 1)[0] + "/" if "/" in manifest_name else ""
        try:
            manifest = archive.read(manifest_name, limit=settings.CONCORD_MAX_IMPORT_BYTES)
        except images.ImageRejected as exc:
            over_limit = "limit" in str(exc)
            raise ImportRejected(f"manifest: {exc}", status=413 if over_limit else 400) from exc
        raw_rows, errors = parse_rows(manifest, manifest_fmt, csv_required=("external_id", "file"))
        n_rows = len(raw_rows) + len(errors)
        if manifest_fmt == "csv":
            raw_rows = [(n, _csv_item_row(cells)) for n, cells in raw_rows]
        good, row_errors = _validate_item_rows(raw_rows, allow_file=True)
        errors += row_errors
        image_rows = [r for r in good if r.kind == PayloadKind.IMAGE]
        bad_images = _check_zip_images(image_rows, archive, base)
        bad_rows = {e["row"] for e in bad_images}
        good = [r for r in good if r.row not in bad_rows]
        errors += bad_images
    else:
        raw_rows, errors = parse_rows(data, fmt, csv_required=("external_id",))
        n_rows = len(raw_rows) + len(errors)
        if fmt == "csv":
            raw_rows = [(n, _csv_item_row(cells)) for n, cells in raw_rows]
        good, row_errors = _validate_item_rows(raw_rows, allow_file=False)
        errors += row_errors
    _reject_or_continue(good=good, errors=errors, n_rows=n_rows, partial=partial)
    errors = _sort_errors(errors)
    saved_files: list[str] = []
    try:
        with transaction.atomic():
            batch = SourceBatch.objects.create(
                project=project,
                kind=SourceBatchKind.ITEMS,
                origin=origin[:500],
                content_type=content_type[:100],
                file_sha256=hashlib.sha256(data).hexdigest(),
                created_by=actor if getattr(actor, "pk", None) else None,
                status=SourceBatchStatus.PARTIAL if errors else SourceBatchStatus.SUCCEEDED,
            )
            created_ids, updated_ids, stats_ids, fetch_ids = _store_items(
                project=project,
                rows=good,
                batch=batch,
                actor=actor,
                saved_files=saved_files,
                fetch_image_urls=fetch_image_urls,
            )
            _finish_batch(
                batch=batch,
                actor=actor,
                n_rows=n_rows,
                n_created=len(created_ids),
                n_updated=len(updated_ids),
                errors=errors,
                extra={"format": fmt},
            )
            _enqueue_stats(stats_ids, fetch_ids if fetch_image_urls else [])
    except Exception:
        _delete_files(saved_files)
        raise
    return ImportResult(
        source_batch=batch.pk,
        n_rows=n_rows,
        n_created=len(created_ids),
        n_updated=len(updated_ids),
        errors=errors,
    )


def _delete_files(names: list[str]) -> None:
    storage = Item._meta.get_field("image").storage
    for name in names:
        with contextlib.suppress(OSError):
            storage.delete(name)


def _enqueue_stats(image_ids: list[int], url_ids: list[int]) -> None:
    from labeling import services

    if image_ids:
        services.enqueue_image_stats(item_ids=image_ids)
    if url_ids:
        services.enqueue_remote_image_stats(item_ids=url_ids)


def _finish_batch(
    *,
    batch: SourceBatch,
    actor: AbstractBaseUser | None,
    n_rows: int,
    n_created: int,
    n_updated: int,
    errors: list[dict],
    extra: dict | None = None,
) -> None:
    batch.n_rows = n_rows
    batch.n_created = n_created
    batch.n_updated = n_updated
    batch.n_errors = len(errors)
    batch.errors = errors[:MAX_REPORTED_ERRORS]
    batch.save(update_fields=["n_rows", "n_created", "n_updated", "n_errors", "errors"])
    events.batch_imported(
        project_id=batch.project_id,
        actor_id=getattr(actor, "pk", None),
        batch_id=batch.pk,
        after={
            "kind": batch.kind,
            "status": batch.status,
            "file_sha256": batch.file_sha256,
            "n_rows": n_rows,
            "n_created": n_created,
            "n_updated": n_updated,
            "n_errors": len(errors),
            **(extra or {}),
        },
    )


def _store_items(
    *,
    project: Project,
    rows: list[ItemRow],
    batch: SourceBatch,
    actor: AbstractBaseUser | None,
    saved_files: list[str],
    fetch_image_urls: bool = False,
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Create or update ``rows``; returns (created ids, updated ids, ids needing image
    statistics from an uploaded file, ids with an image URL).

    Rows are written as column dicts (no model instance per row: constructing 100,000
    instances costs more than writing them). An update rewrites the payload and resets
    the image statistics (the worker recomputes them); metadata only where the row gives
    it; tags only where the row gives them."""
    existing = _fetch_by_external_id(project, [r.external_id for r in rows])
    storage = Item._meta.get_field("image").storage
    now = timezone.now()
    new_rows, updates = [], []
    for row in rows:
        values = {
            "project_id": project.pk,
            "external_id": row.external_id,
            "kind": row.kind,
            "image": "",
            "image_url": row.image_url,
            "text": row.text,
            "audio_url": row.audio_url,
            "content_hash": row.content_hash,
            "stats_status": (
                ImageStatsStatus.PENDING
                if row.kind == PayloadKind.IMAGE
                or (row.kind == PayloadKind.IMAGE_URL and fetch_image_urls)
                else ImageStatsStatus.NOT_APPLICABLE
            ),
            "source_batch_id": batch.pk,
            "updated_at": now,
        }
        if row.metadata is not None:
            values["metadata"] = row.metadata
        if row.image_bytes is not None:
            suffix = row.file.rsplit(".", 1)[-1] if "." in row.file else "bin"
            stub = Item(project_id=project.pk, content_hash=row.content_hash)
            name = storage.save(
                item_image_path(stub, f"upload.{suffix}"), ContentFile(row.image_bytes)
            )
            saved_files.append(name)
            values["image"] = name
        pk = existing.get(row.external_id)
        if pk is None:
            values.setdefault("metadata", {})
            new_rows.append((row, values))
        else:
            values["id"] = pk
            updates.append((row, values))
    insert_rows(Item, [v for _, v in new_rows])
    if new_rows:
        # Every new item carries this batch: one query reads their ids back (portable,
        # unlike relying on RETURNING from a many-row insert).
        ids = dict(
            Item.objects.filter(source_batch=batch, project=project).values_list(
                "external_id", "pk"
            )
        )
        for _, values in new_rows:
            values["id"] = ids[values["external_id"]]
    created_ids = [v["id"] for _, v in new_rows]
    base_fields = [
        "kind",
        "image",
        "image_url",
        "text",
        "audio_url",
        "content_hash",
        "stats_status",
        "source_batch",
        "updated_at",
        "width",
        "height",
        "mean_brightness",
        "perceptual_hash",
        "thumbnail",
        "stats_error",
    ]
    with_metadata = [v for r, v in updates if r.metadata is not None]
    without_metadata = [v for r, v in updates if r.metadata is None]
    if with_metadata:
        update_rows(Item, with_metadata, [*base_fields, "metadata"])
    if without_metadata:
        update_rows(Item, without_metadata, base_fields)
    updated_ids = [v["id"] for _, v in updates]
    _store_tags(
        project,
        [(r, v["id"]) for r, v in new_rows + updates if r.tags is not None],
        updated_ids,
    )
    actor_id = getattr(actor, "pk", None)
    events.items_imported_bulk(
        project_id=project.pk, actor_id=actor_id, batch_id=batch.pk, item_ids=created_ids
    )
    events.items_updated_bulk(
        project_id=project.pk, actor_id=actor_id, batch_id=batch.pk, item_ids=updated_ids
    )
    written = [v for _, v in new_rows + updates]
    stats_ids = [v["id"] for v in written if v["kind"] == PayloadKind.IMAGE]
    url_ids = [v["id"] for v in written if v["kind"] == PayloadKind.IMAGE_URL]
    return created_ids, updated_ids, stats_ids, url_ids


def _store_tags(project: Project, pairs: list[tuple[ItemRow, int]], updated_ids) -> None:
    """Replace the tags of the items (``(row, item id)``) whose row gave tags, in bulk."""
    if not pairs:
        return
    names = sorted({t for r, _ in pairs for t in r.tags})
    tags = {t.name: t.pk for t in Tag.objects.filter(project=project, name__in=names)}
    missing = [Tag(project=project, name=n) for n in names if n not in tags]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        tags = {t.name: t.pk for t in Tag.objects.filter(project=project, name__in=names)}
    through = Item.tags.through
    updated = set(updated_ids)
    replaced = [pk for _, pk in pairs if pk in updated]
    for chunk in chunks(replaced):
        through.objects.filter(item_id__in=chunk).delete()
    insert_rows(through, [{"item_id": pk, "tag_id": tags[t]} for r, pk in pairs for t in r.tags])
