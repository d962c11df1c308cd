"""The event writer: one small function per event type.

Each function is called inside the transaction of the change it records, so an event
exists exactly when its change does. This module imports no other Concord app (only
plain ids and JSON go in), so labeling and consistency services can call it freely.
"""

from __future__ import annotations

from typing import Any

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
) -> list[Event]:
    """One event per item for a bulk import, written with a single INSERT."""
    verb = "item.updated" if updated else "item.imported"
    events = [
        Event(
            verb=verb,
            subject_type="item",
            subject_id=str(item_id),
            project_id=project_id,
            actor_id=actor_id,
            item_id_ref=item_id,
            after={"source_batch": batch_id},
        )
        for item_id in item_ids
    ]
    return Event.objects.bulk_create(events, batch_size=2000)


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
) -> list[Event]:
    """``rows``: (annotation id, item id, after) for each imported annotation."""
    events = [
        Event(
            verb="annotation.imported",
            subject_type="annotation",
            subject_id=str(annotation_id),
            project_id=project_id,
            actor_id=actor_id,
            item_id_ref=item_id,
            after={**after, "source_batch": batch_id},
        )
        for annotation_id, item_id, after in rows
    ]
    return Event.objects.bulk_create(events, batch_size=2000)


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
