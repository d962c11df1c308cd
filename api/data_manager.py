"""The data manager over REST: the item table (paged, sorted, filtered on the server),
bulk actions on a selection or on a filter, and the CSV export of either.

``GET  /projects/{id}/data-manager/items/``    one page of rows (review roles)
``POST /projects/{id}/data-manager/actions/``  tag | untag | relabel (managers)
``GET  /projects/{id}/data-manager/export/``   CSV of the filter or of ``ids`` (review roles)

The table is ``consistency.data_manager``; the actions call the same services as the tag
and relabel endpoints (``labeling.services.change_item_tags``,
``labeling.assignment.request_relabel``).
"""

from __future__ import annotations

import csv
import io

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.errors import ApiError
from consistency import data_manager
from labeling import assignment as assignment_service
from labeling import selectors, services
from labeling.access import MANAGER_ROLES, REVIEW_ROLES
from labeling.models import MAX_COMMENT_CHARS

# A bulk action "on the filter" touches at most this many items in one request.
MAX_BULK_ITEMS = 100_000
EXPORT_LIMIT = 100_000


def _query(params, *, paged: bool = True) -> data_manager.ItemQuery:
    try:
        return data_manager.parse_query(params, paged=paged)
    except ValidationError as exc:
        by_field = exc.message_dict
        raise ApiError(
            "; ".join(f"{k}: {', '.join(v)}" for k, v in by_field.items()), errors=by_field
        ) from None


class DataManagerItemsApi(ProjectScopedMixin, APIView):
    """One page of the project's items with labels, status and the latest run's
    consensus; filters and sorts as :func:`consistency.data_manager.parse_query`."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(responses={200: dict})
    def get(self, request, project_id: int):
        query = _query(request.query_params)
        result = data_manager.page_of_items(self.project, query)
        if request.query_params.get("page") is None or query.page == 1:
            result["metadata_keys"] = data_manager.metadata_keys(self.project)
        return Response(result)


class DataManagerActionApi(ProjectScopedMixin, APIView):
    """``{action: tag|untag|relabel|add_examples, tag?, reason?, items?: [item ids] |
    query?: {...}}``: the action on the selected items, or on every item the query's
    filters match. ``add_examples`` publishes the next guideline version with the items
    added to its examples."""

    allowed_roles = {"POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["tag", "untag", "relabel", "add_examples"])
        tag = serializers.CharField(max_length=80, required=False)
        reason = serializers.CharField(max_length=MAX_COMMENT_CHARS, required=False)
        items = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=MAX_BULK_ITEMS,
        )
        query = serializers.DictField(child=serializers.CharField(), required=False)

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if ("items" in values) == ("query" in values):
            raise ApiError(
                "send items (a selection) or query (a filter), not both",
                errors={"items": ["items or query"]},
            )
        if "items" in values:
            item_ids = values["items"]
        else:
            query = _query(values["query"], paged=False)
            try:
                item_ids = data_manager.all_item_ids(self.project, query, limit=MAX_BULK_ITEMS)
            except ValidationError as exc:
                raise ApiError(exc.messages[0], errors=exc.message_dict) from None
        if not item_ids:
            raise ApiError("no items selected", errors={"items": ["empty"]})
        action = values["action"]
        if action in ("tag", "untag"):
            tag = (values.get("tag") or "").strip()
            if not tag:
                raise ApiError("name the tag", errors={"tag": ["required"]})
            result = services.change_item_tags(
                project=self.project,
                actor=request.user,
                item_ids=item_ids,
                **({"add": [tag]} if action == "tag" else {"remove": [tag]}),
            )
            changed = sum(result["added"].values()) + sum(result["removed"].values())
            return Response({"action": action, "n_items": result["n_items"], "n_changed": changed})
        if action == "add_examples":
            return Response(self._add_examples(request, item_ids))
        reason = (values.get("reason") or "").strip()
        if not reason:
            raise ApiError("say why the items go back", errors={"reason": ["required"]})
        created = assignment_service.request_relabel(
            project=self.project,
            item_ids=item_ids,
            reason=reason,
            actor=request.user,
        )
        return Response(
            {"action": action, "n_items": len(set(item_ids)), "n_assignments": len(created)}
        )

    def _add_examples(self, request, item_ids: list[int]) -> dict:
        """Publish the next guideline version: the same text, these items added to its
        examples (labelers see examples of the version they label under)."""
        current = selectors.current_guideline(self.project)
        if current is None:
            raise ApiError(
                "the project has no guideline yet; publish one first",
                errors={"action": ["no guideline"]},
            )
        existing = list(current.example_items.values_list("pk", flat=True))
        wanted = existing + [pk for pk in dict.fromkeys(item_ids) if pk not in set(existing)]
        try:
            guideline = services.publish_guideline(
                project=self.project,
                text=current.text,
                change_note=f"{len(wanted) - len(existing)} example item(s) added",
                published_by=request.user,
                example_item_ids=wanted,
            )
        except ValidationError as exc:
            raise ApiError("; ".join(exc.messages), errors=exc.message_dict) from None
        return {
            "action": "add_examples",
            "n_items": len(set(item_ids)),
            "guideline_version": guideline.version,
            "n_examples": len(wanted),
        }


class DataManagerExportApi(ProjectScopedMixin, APIView):
    """CSV of the items matching the query's filters (or of ``ids=1,2,3``, a selection):
    external id, status, labels, consensus, final label and its source, tags, metadata."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request, project_id: int):
        params = request.query_params.copy()
        raw_ids = params.pop("ids", [""])[-1]
        query = _query(params, paged=False)
        run = data_manager.latest_run(self.project)
        if raw_ids:
            try:
                wanted = {int(x) for x in raw_ids.split(",") if x.strip()}
            except ValueError:
                raise ApiError(
                    "ids: item ids separated by commas", errors={"ids": ["bad"]}
                ) from None
            ids = list(
                data_manager.filtered_items(self.project, query, run=run)
                .filter(pk__in=wanted)
                .values_list("pk", flat=True)
            )
        else:
            try:
                ids = data_manager.all_item_ids(self.project, query, limit=EXPORT_LIMIT)
            except ValidationError as exc:
                raise ApiError(exc.messages[0], errors=exc.message_dict) from None
        out = io.StringIO()
        writer = csv.writer(out)
        rows = []
        for start in range(0, len(ids), 1000):
            rows += data_manager.item_rows(self.project, ids[start : start + 1000], run=run)
        keys = sorted({k for row in rows for k in row["metadata"]})
        writer.writerow(
            [
                "external_id",
                "status",
                "n_labels",
                "consensus",
                "agreement",
                "final_label",
                "final_source",
                "tags",
            ]
            + [f"metadata.{k}" for k in keys]
        )
        for row in rows:
            consensus = row["consensus"] or {}
            final = row["final"] or {}
            writer.writerow(
                [
                    row["external_id"],
                    row["status"],
                    row["n_labels"],
                    consensus.get("label") or "",
                    "" if consensus.get("agreement") is None else consensus["agreement"],
                    final.get("label") or "",
                    final.get("source") or "",
                    ";".join(row["tags"]),
                ]
                + [row["metadata"].get(k, "") for k in keys]
            )
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.project.slug}-items.csv"'
        return response


urlpatterns = [
    path(
        "projects/<int:project_id>/data-manager/items/",
        DataManagerItemsApi.as_view(),
        name="api-data-manager-items",
    ),
    path(
        "projects/<int:project_id>/data-manager/actions/",
        DataManagerActionApi.as_view(),
        name="api-data-manager-actions",
    ),
    path(
        "projects/<int:project_id>/data-manager/export/",
        DataManagerExportApi.as_view(),
        name="api-data-manager-export",
    ),
]
