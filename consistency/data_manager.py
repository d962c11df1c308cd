"""The data manager's table: a project's items, paged, sorted and filtered on the server,
with each item's labels, status and the latest agreement run's consensus beside it.

Reads only (selectors). Lives in ``consistency`` because a row joins labeling's items and
annotations with a run's consensus; ``api.data_manager`` and the page call it.

Speed on 100,000 items (benchmarks/data_manager.py): the filters and sorts are SQL on the
item table (JSON key transforms for metadata, ``EXISTS`` for labels, tags and consensus),
the count is one query, and the per-row details (labels, status, consensus, final label)
are loaded for the page's rows only, in a fixed number of queries.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    Exists,
    F,
    FloatField,
    OuterRef,
    QuerySet,
    Subquery,
    TextField,
    Window,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from consistency.models import AgreementRun, Consensus, ConsensusMethod, ConsensusStatus
from consistency.selectors import latest_finished_run
from labeling import selectors as labeling_selectors
from labeling.models import Annotation, GoldLabel, Item, ItemDecision, LabelClass, Project

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200
METADATA_KEY = re.compile(r"[A-Za-z0-9_]{1,100}")
# Sort keys (a leading "-" for descending); "metadata.<key>" sorts by a metadata value.
SORTS = frozenset({"id", "external_id", "created_at", "n_labels", "status", "agreement", "entropy"})
FILTER_PARAMS = frozenset(
    {
        "q",
        "tag",
        "status",
        "class",
        "labeler",
        "disagreement",
        "consensus_status",
        "created_after",
        "created_before",
    }
)
PAGE_PARAMS = frozenset({"page", "page_size", "sort"})
ACCEPTED_PARAMS = FILTER_PARAMS | PAGE_PARAMS


@dataclass
class ItemQuery:
    """A parsed data-manager query: filters, sort and page (see :func:`parse_query`)."""

    metadata: dict[str, str] = field(default_factory=dict)
    q: str = ""
    tag: str = ""
    status: str = ""
    class_key: str = ""
    labeler: str = ""
    disagreement: bool = False
    consensus_status: str = ""
    created_after: dt.date | None = None
    created_before: dt.date | None = None
    sort: str = "id"
    page: int = 1
    page_size: int = PAGE_SIZE_DEFAULT


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError({name: "expected a date such as 2026-11-30"}) from None


def parse_query(params: Any, *, paged: bool = True) -> ItemQuery:
    """An :class:`ItemQuery` from query parameters (a QueryDict or a plain dict).

    Filters: ``metadata.<key>=<value>`` (compared as text, any number of keys), ``q``
    (external id prefix), ``tag``, ``status`` (unlabeled | in_progress | complete, dynamic
    overlap honoured), ``class`` (a current label of that class key), ``labeler`` (a
    current label by that username), ``disagreement=true`` (the latest run's labels were
    not unanimous: majority support below 1), ``consensus_status`` (agreed | disputed |
    borderline | resolved in the latest run), ``created_after`` / ``created_before``
    (import date, inclusive, ``YYYY-MM-DD``). ``sort``: one of :data:`SORTS` or
    ``metadata.<key>``, ``-`` first for descending. ``page`` from 1, ``page_size`` up to
    :data:`PAGE_SIZE_MAX`. Raises ``ValidationError`` naming the parameter at fault.
    """
    get = params.get
    unknown = sorted(
        k for k in params if k not in ACCEPTED_PARAMS and not k.startswith("metadata.")
    )
    if unknown:
        raise ValidationError({k: "not an accepted parameter" for k in unknown})
    query = ItemQuery()
    for key in params:
        if key.startswith("metadata."):
            name = key[len("metadata.") :]
            if not METADATA_KEY.fullmatch(name):
                raise ValidationError({key: "metadata keys are letters, digits and _"})
            value = get(key)
            if value not in (None, ""):
                query.metadata[name] = str(value)
    query.q = (get("q") or "").strip()
    query.tag = (get("tag") or "").strip()
    query.status = (get("status") or "").strip()
    if query.status and query.status not in labeling_selectors.ITEM_STATUSES:
        raise ValidationError({"status": f"one of {', '.join(labeling_selectors.ITEM_STATUSES)}"})
    query.class_key = (get("class") or "").strip()
    query.labeler = (get("labeler") or "").strip()
    flag = str(get("disagreement") or "").strip().lower()
    if flag not in ("", "true", "false", "1", "0"):
        raise ValidationError({"disagreement": "true or false"})
    query.disagreement = flag in ("true", "1")
    query.consensus_status = (get("consensus_status") or "").strip()
    if query.consensus_status and query.consensus_status not in ConsensusStatus.values:
        raise ValidationError({"consensus_status": f"one of {', '.join(ConsensusStatus.values)}"})
    if get("created_after"):
        query.created_after = _date(get("created_after"), "created_after")
    if get("created_before"):
        query.created_before = _date(get("created_before"), "created_before")
    sort = (get("sort") or "id").strip()
    bare = sort.removeprefix("-")
    if bare not in SORTS and not (
        bare.startswith("metadata.") and METADATA_KEY.fullmatch(bare[len("metadata.") :])
    ):
        raise ValidationError(
            {"sort": f"one of {', '.join(sorted(SORTS))} or metadata.<key>, '-' for descending"}
        )
    query.sort = sort
    if paged:
        try:
            query.page = int(get("page") or 1)
            query.page_size = int(get("page_size") or PAGE_SIZE_DEFAULT)
        except ValueError:
            raise ValidationError({"page": "page and page_size are whole numbers"}) from None
        if query.page < 1:
            raise ValidationError({"page": "starts at 1"})
        if not 1 <= query.page_size <= PAGE_SIZE_MAX:
            raise ValidationError({"page_size": f"between 1 and {PAGE_SIZE_MAX}"})
    return query


def latest_run(project: Project) -> AgreementRun | None:
    """The run whose consensus the table shows: the project's latest succeeded run."""
    return latest_finished_run(project)


def _consensus(run: AgreementRun | None):
    rows = Consensus.objects.filter(run=run, method=ConsensusMethod.MAJORITY, item=OuterRef("pk"))
    return rows


def filtered_items(
    project: Project, query: ItemQuery, *, run: AgreementRun | None = None
) -> QuerySet[Item]:
    """The project's items matching ``query``'s filters, in its sort order (ties by id).

    Only what the filters and the sort need is joined: a plain metadata filter or an
    external-id sort stays on the item table."""
    needs_counts = bool(query.status) or query.sort.removeprefix("-") in ("n_labels", "status")
    items = (
        labeling_selectors.items_with_kept_counts(project)
        if needs_counts
        else Item.objects.filter(project=project)
    )
    for n, (key, value) in enumerate(sorted(query.metadata.items())):
        alias = f"_meta_{n}"
        items = items.alias(
            **{alias: Cast(KeyTextTransform(key, "metadata"), output_field=TextField())}
        ).filter(**{alias: value})
    if query.q:
        items = items.filter(external_id__startswith=query.q)
    if query.tag:
        items = items.filter(tags__name=query.tag)  # tag names are unique per project
    if query.status:
        items = items.filter(labeling_selectors.status_filter(query.status))
    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
    if query.class_key:
        # A non-correlated IN over the index annotation_current_class: the database reads
        # the labels of that class once, instead of probing every item's labels.
        classes = LabelClass.objects.filter(project=project, key=query.class_key)
        items = items.filter(
            pk__in=Annotation.objects.filter(
                project=project, is_current=True, label_class__in=classes.values("pk")
            ).values("item_id")
        )
    if query.labeler:
        items = items.filter(Exists(current.filter(labeler__username=query.labeler)))
    if query.disagreement or query.consensus_status:
        if run is None:
            return items.none()
        rows = _consensus(run)
        if query.disagreement:
            rows = rows.filter(support__lt=1)
        if query.consensus_status:
            rows = rows.filter(status=query.consensus_status)
        items = items.filter(Exists(rows))
    if query.created_after:
        items = items.filter(created_at__date__gte=query.created_after)
    if query.created_before:
        items = items.filter(created_at__date__lte=query.created_before)

    descending = query.sort.startswith("-")
    bare = query.sort.removeprefix("-")
    if bare.startswith("metadata."):
        items = items.alias(
            _sort=Cast(KeyTextTransform(bare[len("metadata.") :], "metadata"), TextField())
        )
        key = F("_sort")
    elif bare in ("agreement", "entropy"):
        column = "support" if bare == "agreement" else "entropy"
        items = items.alias(
            _sort=Subquery(_consensus(run).values(column)[:1], output_field=FloatField())
            if run is not None
            else Cast(None, FloatField())
        )
        key = F("_sort")
    elif bare == "n_labels":
        key = F("n_current")
    elif bare == "status":
        key = F("item_status")
    else:
        key = F(bare)
    order = key.desc(nulls_last=True) if descending else key.asc(nulls_last=True)
    tiebreak = "-id" if descending else "id"
    return items.order_by(order, tiebreak)


def metadata_keys(project: Project, *, sample: int = 500) -> list[str]:
    """Top-level metadata keys seen on the project's first ``sample`` items (the column
    chooser's choices), sorted."""
    keys: set[str] = set()
    for metadata in (
        Item.objects.filter(project=project)
        .order_by("id")
        .values_list("metadata", flat=True)[:sample]
    ):
        if isinstance(metadata, dict):
            keys.update(str(k) for k in metadata)
    return sorted(keys)


def page_of_items(project: Project, query: ItemQuery) -> dict:
    """One page of the table: ``{count, page, page_size, n_pages, run, rows}``.

    Each row: ``id, external_id, kind, text (first 200 characters), image (bool),
    thumbnail (bool), image_url, metadata (flattened key -> text), tags, status,
    n_labels, n_target, consensus: {label, status, agreement, entropy} | null (latest
    run, majority), final: {label, source: "sme" | "consensus"} | null, ground_truth``.
    ``agreement`` is the majority's share of the labels (0–1), ``entropy`` in bits.
    """
    run = latest_run(project)
    items = filtered_items(project, query, run=run)
    start = (query.page - 1) * query.page_size
    if not _is_filtered(query):
        # No filter: the count is an index count, cheap beside the sorted page.
        count = items.count()
        page = list(items.values_list("pk", flat=True)[start : start + query.page_size])
    else:
        # Filtered: one pass gives the page and, through a window, the total, instead of
        # evaluating the filters a second time to count.
        hits = list(
            items.annotate(_total=Window(Count("pk"))).values_list("pk", "_total")[
                start : start + query.page_size
            ]
        )
        page = [pk for pk, _ in hits]
        count = hits[0][1] if hits else items.count()
    n_pages = max(1, -(-count // query.page_size))
    rows = item_rows(project, page, run=run)
    return {
        "count": count,
        "page": query.page,
        "page_size": query.page_size,
        "n_pages": n_pages,
        "run": None
        if run is None
        else {
            "id": run.pk,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "rows": rows,
    }


def _is_filtered(query: ItemQuery) -> bool:
    """Whether any filter is set."""
    return bool(
        query.metadata
        or query.q
        or query.tag
        or query.status
        or query.class_key
        or query.labeler
        or query.disagreement
        or query.consensus_status
        or query.created_after
        or query.created_before
    )


def _label_text(class_key: str | None, number: float | None, text: str) -> str | None:
    value = labeling_selectors.label_value(
        class_key=class_key, value_number=number, value_text=text
    )
    return None if value in (None, "") else str(value)


def item_rows(project: Project, item_ids: list[int], *, run: AgreementRun | None) -> list[dict]:
    """The table rows of ``item_ids`` (in that order); a fixed number of queries."""
    if not item_ids:
        return []
    items = {
        i.pk: i
        for i in labeling_selectors.items_with_kept_counts(project)
        .filter(pk__in=item_ids)
        .prefetch_related("tags")
    }
    consensus = {}
    if run is not None:
        for row in Consensus.objects.filter(
            run=run, method=ConsensusMethod.MAJORITY, item_id__in=item_ids
        ).values(
            "item_id",
            "label_class__key",
            "value_number",
            "value_text",
            "status",
            "support",
            "entropy",
        ):
            consensus[row["item_id"]] = {
                "label": _label_text(
                    row["label_class__key"], row["value_number"], row["value_text"]
                ),
                "status": row["status"],
                "agreement": row["support"],
                "entropy": row["entropy"],
            }
    decisions = {
        row["item_id"]: _label_text(row["label_class__key"], row["value_number"], row["value_text"])
        for row in ItemDecision.objects.filter(item_id__in=item_ids).values(
            "item_id", "label_class__key", "value_number", "value_text"
        )
    }
    gold = {
        row["item_id"]: _label_text(row["label_class__key"], row["value_number"], row["value_text"])
        for row in GoldLabel.objects.filter(item_id__in=item_ids).values(
            "item_id", "label_class__key", "value_number", "value_text"
        )
    }
    rows = []
    for pk in item_ids:
        item = items.get(pk)
        if item is None:
            continue
        agreed = consensus.get(pk)
        if pk in decisions:
            final = {"label": decisions[pk], "source": "sme"}
        elif agreed and agreed["label"] is not None:
            final = {"label": agreed["label"], "source": "consensus"}
        else:
            final = None
        rows.append(
            {
                "id": pk,
                "external_id": item.external_id,
                "kind": item.kind,
                "text": (item.text or "")[:200],
                "image": bool(item.image),
                "thumbnail": bool(item.thumbnail),
                "image_url": item.image_url or None,
                "metadata": dict(labeling_selectors.metadata_rows(item.metadata)),
                "tags": sorted(t.name for t in item.tags.all()),
                "status": item.item_status,
                "n_labels": item.n_current,
                "n_target": item.n_target,
                "created_at": item.created_at.isoformat(),
                "consensus": agreed,
                "final": final,
                "ground_truth": gold.get(pk),
            }
        )
    return rows


def all_item_ids(project: Project, query: ItemQuery, *, limit: int) -> list[int]:
    """The ids of every item matching ``query`` (a bulk action "on the filter"), in the
    query's order; ValidationError when more than ``limit`` match."""
    ids = list(
        filtered_items(project, query, run=latest_run(project)).values_list("pk", flat=True)[
            : limit + 1
        ]
    )
    if len(ids) > limit:
        raise ValidationError({"query": f"matches more than {limit} items; narrow the filter"})
    return ids
