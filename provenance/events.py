"""The event writer: one small function per event type.

Each function is called inside the transaction of the change it records, so an event
exists exactly when its change does. This module imports no other Concord app (only
plain ids and JSON go in), so labeling and consistency services can call it freely.
"""

from __future__ import annotations

from typing import Any

from provenance import bulk
from provenance.models import Event


def _record(
    *,
    verb: str,
    subject_type: str,
    subject_id: Any,
    project_id: int | None,
    actor_id: int | None,
    item_id: int | None = None,
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> Event:
    return Event.objects.create(
        verb=verb,
        subject_type=subject_type,
        subject_id=str(subject_id),
        project_id=project_id,
        actor_id=actor_id,
        item_id_ref=item_id,
        before=before,
        after=after,
        reason=reason,
    )


def project_created(*, project_id: int, actor_id: int | None, after: dict) -> Event:
    return _record(
        verb="project.created",
        subject_type="project",
        subject_id=project_id,
        project_id=project_id,
        actor_id=actor_id,
        after=after,
    )


def member_added(
    *, project_id: int, actor_id: int | None, user_id: int, before: dict | None, after: dict
) -> Event:
    return _record(
        verb="member.changed" if before else "member.added",
        subject_type="user",
        subject_id=user_id,
        project_id=project_id,
        actor_id=actor_id,
        before=before,
        after=after,
    )


def batch_imported(*, project_id: int, actor_id: int | None, batch_id: int, after: dict) -> Event:
    return _record(
        verb="batch.imported",
        subject_type="source_batch",
        subject_id=batch_id,
        project_id=project_id,
        actor_id=actor_id,
        after=after,
    )


def item_imported(
    *,
    project_id: int,
    actor_id: int | None,
    item_id: int,
    batch_id: int | None,
    before: dict | None,
    after: dict,
) -> Event:
    return _record(
        verb="item.updated" if before else "item.imported",
        subject_type="item",
        subject_id=item_id,
        project_id=project_id,
        actor_id=actor_id,
        item_id=item_id,
        before=before,
        after={**after, "source_batch": batch_id},
    )


def items_imported_bulk(
    *, project_id: int, actor_id: int | None, batch_id: int, item_ids: list[int], updated: bool
) -> None:
    """One ``item.imported`` (or, with ``updated``, ``item.updated``) event per item of
    ``item_ids``, written with :func:`provenance.bulk.insert_rows` (no pks read back).

    Measured on 20,000 rows, ``bulk_create`` took longer than everything else in an item
    import together; the bulk writer stores the same rows in a fifth of the time.
    """
    verb = "item.updated" if updated else "item.imported"
    after = {"source_batch": batch_id}
    bulk.insert_rows(
        Event,
        [
            {
                "verb": verb,
                "subject_type": "item",
                "subject_id": str(item_id),
                "project_id": project_id,
                "actor_id": actor_id,
                "item_id_ref": item_id,
                "before": None,
                "after": after,
            }
            for item_id in item_ids
        ],
    )


def annotation_created(
    *, project_id: int, actor_id: int | None, annotation_id: int, item_id: int, after: dict
) -> Event:
    return _record(
        verb="annotation.created",
        subject_type="annotation",
        subject_id=annotation_id,
        project_id=project_id,
        actor_id=actor_id,
        item_id=item_id,
        after=after,
    )


def annotation_revised(
    *,
    project_id: int,
    actor_id: int | None,
    annotation_id: int,
    item_id: int,
    before: dict,
    after: dict,
    reason: str = "",
) -> Event:
    return _record(
        verb="annotation.revised",
        subject_type="annotation",
        subject_id=annotation_id,
        project_id=project_id,
        actor_id=actor_id,
        item_id=item_id,
        before=before,
        after=after,
        reason=reason,
    )


def annotations_imported_bulk(
    *, project_id: int, actor_id: int | None, batch_id: int, rows: list[tuple[int, int, dict]]
) -> None:
    """One ``annotation.imported`` event per imported annotation, written in bulk.

    ``rows``: (annotation id, item id, after) for each annotation; ``after`` gets the
    ``source_batch`` id added.
    """
    bulk.insert_rows(
        Event,
        [
            {
                "verb": "annotation.imported",
                "subject_type": "annotation",
                "subject_id": str(annotation_id),
                "project_id": project_id,
                "actor_id": actor_id,
                "item_id_ref": item_id,
                "after": {**after, "source_batch": batch_id},
            }
            for annotation_id, item_id, after in rows
        ],
    )


def members_added_bulk(
    *, project_id: int, actor_id: int | None, rows: list[tuple[int, dict]]
) -> None:
    """One ``member.added`` event per new project member, written in bulk.

    ``rows``: (user id, after) for each member, ``after`` as in :func:`member_added`.
    """
    bulk.insert_rows(
        Event,
        [
            {
                "verb": "member.added",
                "subject_type": "user",
                "subject_id": str(user_id),
                "project_id": project_id,
                "actor_id": actor_id,
                "after": after,
            }
            for user_id, after in rows
        ],
    )


def image_stats_computed(*, project_id: int, item_id: int, after: dict) -> Event:
    return _record(
        verb="item.image_stats",
        subject_type="item",
        subject_id=item_id,
        project_id=project_id,
        actor_id=None,
        item_id=item_id,
        after=after,
    )


def guideline_published(
    *, project_id: int, actor_id: int | None, guideline_id: int, version: int, reason: str = ""
) -> Event:
    return _record(
        verb="guideline.published",
        subject_type="guideline",
        subject_id=guideline_id,
        project_id=project_id,
        actor_id=actor_id,
        after={"version": version},
        reason=reason,
    )


def gold_set(
    *,
    project_id: int,
    actor_id: int | None,
    item_id: int,
    before: dict | None,
    after: dict,
    reason: str = "",
) -> Event:
    return _record(
        verb="item.gold_set",
        subject_type="item",
        subject_id=item_id,
        project_id=project_id,
        actor_id=actor_id,
        item_id=item_id,
        before=before,
        after=after,
        reason=reason,
    )


def gold_set_bulk(
    *,
    project_id: int,
    actor_id: int | None,
    rows: list[tuple[int, dict | None, dict]],
    reason: str = "",
) -> None:
    """One ``item.gold_set`` event per item, written in bulk.

    ``rows``: (item id, before or None, after) for each item whose gold label was set.
    """
    bulk.insert_rows(
        Event,
        [
            {
                "verb": "item.gold_set",
                "subject_type": "item",
                "subject_id": str(item_id),
                "project_id": project_id,
                "actor_id": actor_id,
                "item_id_ref": item_id,
                "before": before,
                "after": after,
                "reason": reason,
            }
            for item_id, before, after in rows
        ],
    )


def generic(
    *,
    verb: str,
    subject_type: str,
    subject_id: Any,
    project_id: int | None,
    actor_id: int | None,
    item_id: int | None = None,
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> Event:
    """For event types owned by other issues' services (merges, resolutions, datasets)."""
    return _record(
        verb=verb,
        subject_type=subject_type,
        subject_id=subject_id,
        project_id=project_id,
        actor_id=actor_id,
        item_id=item_id,
        before=before,
        after=after,
        reason=reason,
    )


def dataset_requested(
    *, project_id: int, actor_id: int | None, dataset_version_id: int, after: dict
) -> Event:
    return _record(
        verb="dataset.requested",
        subject_type="dataset_version",
        subject_id=dataset_version_id,
        project_id=project_id,
        actor_id=actor_id,
        after=after,
    )


def dataset_published(
    *, project_id: int, actor_id: int | None, dataset_version_id: int, after: dict
) -> Event:
    return _record(
        verb="dataset.published",
        subject_type="dataset_version",
        subject_id=dataset_version_id,
        project_id=project_id,
        actor_id=actor_id,
        after=after,
    )


def dataset_failed(
    *, project_id: int, actor_id: int | None, dataset_version_id: int, reason: str
) -> Event:
    return _record(
        verb="dataset.failed",
        subject_type="dataset_version",
        subject_id=dataset_version_id,
        project_id=project_id,
        actor_id=actor_id,
        reason=reason,
    )


def pipeline_token_created(
    *, project_id: int, actor_id: int | None, token_id: int, after: dict
) -> Event:
    return _record(
        verb="token.created",
        subject_type="pipeline_token",
        subject_id=token_id,
        project_id=project_id,
        actor_id=actor_id,
        after=after,
    )


def pipeline_token_revoked(*, project_id: int, actor_id: int | None, token_id: int) -> Event:
    return _record(
        verb="token.revoked",
        subject_type="pipeline_token",
        subject_id=token_id,
        project_id=project_id,
        actor_id=actor_id,
    )
