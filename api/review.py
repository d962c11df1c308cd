"""SME review over REST: the flag queue, one flag, resolving it, normalisation rules and
the agreement history.

Thin: reads go through ``review.selectors``, writes through ``review.services``.
Viewers, SMEs and managers read flags (they show everyone's labels, so labelers do not);
only SMEs and managers resolve.
"""

from __future__ import annotations

from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.schema import paginated
from consistency.models import Flag, FlagKind, FlagStatus
from consistency.selectors import current_normalization_rules
from labeling.access import REVIEW_ROLES, SME_ROLES
from labeling.models import MAX_COMMENT_CHARS, MAX_GUIDELINE_CHARS
from review import selectors as review_selectors
from review import services as review_services
from review.models import ResolutionAction


def flag_payload(flag: Flag) -> dict:
    """DESIGN's flag payload (items as external ids, classes as keys)."""
    return {
        "id": flag.pk,
        "kind": flag.kind,
        "status": flag.status,
        "impact": round(flag.impact, 4),
        "suggested_action": flag.suggested_action,
        "summary": flag.summary,
        "evidence": flag.evidence,
        "items": [i.external_id for i in sorted(flag.items.all(), key=lambda i: i.pk)],
        "classes": [c.key for c in sorted(flag.classes.all(), key=lambda c: c.pk)],
        "labeler": flag.labeler.get_username() if flag.labeler_id else None,
        "slice": {"key": flag.slice_key, "value": flag.slice_value} if flag.slice_key else None,
        "run": flag.run_id,
        # drift flags come from a monitoring run (``run`` is then null)
        "monitoring_run": flag.monitoring_run_id,
        "superseded_by": flag.superseded_by_id,
        "created_at": flag.created_at,
        "closed_at": flag.closed_at,
    }


def resolution_payload(resolution) -> dict:
    return {
        "id": resolution.pk,
        "flag": resolution.flag_id,
        "action": resolution.action,
        "rationale": resolution.rationale,
        "label": resolution.label_class.key if resolution.label_class_id else None,
        "into": resolution.into_class.key if resolution.into_class_id else None,
        "items": [i.external_id for i in resolution.items.order_by("pk")],
        "guideline_version": resolution.guideline.version if resolution.guideline_id else None,
        "details": resolution.details,
        "decided_by": resolution.decided_by.get_username(),
        "created_at": resolution.created_at,
    }


class FlagListApi(ProjectScopedMixin, GenericAPIView):
    """``GET /projects/{id}/flags/?status=open&kind=...``: ranked by impact, paginated."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=[*FlagStatus.values, "all"], default="open"),
            OpenApiParameter("kind", enum=FlagKind.values),
        ],
        responses={200: paginated(serializers.DictField(), "PaginatedFlagList")},
    )
    def get(self, request, project_id: int):
        status = request.query_params.get("status", FlagStatus.OPEN)
        kind = request.query_params.get("kind") or None
        if status not in (*FlagStatus.values, "all"):
            return Response(
                {"detail": f"status must be one of {', '.join(FlagStatus.values)} or all"},
                status=400,
            )
        if kind is not None and kind not in FlagKind.values:
            return Response(
                {"detail": f"kind must be one of {', '.join(FlagKind.values)}"}, status=400
            )
        flags = review_selectors.flag_queue(
            self.project, status=None if status == "all" else status, kind=kind
        )
        page = self.paginate_queryset(flags)
        return self.get_paginated_response([flag_payload(f) for f in page])


class FlagDetailApi(ProjectScopedMixin, APIView):
    """``GET /flags/{id}/``: the flag, every label on its items, its resolutions."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = Flag.objects.select_related("labeler").prefetch_related("items", "classes")
    scope_url_kwarg = "flag_id"

    @extend_schema(responses={200: dict})
    def get(self, request, flag_id: int):
        flag = self.object
        items = sorted(flag.items.all(), key=lambda i: i.pk)
        labels = review_selectors.item_labels(items)
        body = flag_payload(flag)
        body["item_details"] = [
            {
                "id": i.pk,
                "external_id": i.external_id,
                "image": (
                    request.build_absolute_uri(reverse("item-image", args=[i.pk]))
                    if i.image
                    else i.image_url or None
                ),
                "text": i.text or None,
                "metadata": i.metadata,
                "labels": labels.get(i.pk, []),
            }
            for i in items
        ]
        body["resolutions"] = [
            resolution_payload(r)
            for r in flag.resolutions.select_related(
                "label_class", "into_class", "guideline", "decided_by"
            ).order_by("created_at", "id")
        ]
        return Response(body)


class FlagResolveApi(ProjectScopedMixin, APIView):
    """``POST /flags/{id}/resolve/``: an SME decision (DESIGN's resolution payload)."""

    allowed_roles = {"POST": SME_ROLES}
    scope_model = Flag
    scope_url_kwarg = "flag_id"

    class Input(serializers.Serializer):
        action = serializers.ChoiceField(choices=ResolutionAction.values)
        rationale = serializers.CharField(
            allow_blank=True, required=False, default="", max_length=MAX_COMMENT_CHARS
        )
        label = serializers.CharField(required=False, allow_null=True, default=None, max_length=80)
        into = serializers.CharField(required=False, allow_null=True, default=None, max_length=80)
        items = serializers.ListField(
            child=serializers.JSONField(), required=False, allow_null=True, default=None
        )
        classes = serializers.ListField(
            child=serializers.CharField(), required=False, allow_null=True, default=None
        )
        guideline_text = serializers.CharField(
            required=False,
            allow_blank=True,
            allow_null=True,
            default=None,
            max_length=MAX_GUIDELINE_CHARS,
        )

        def validate_items(self, value):
            for x in value or []:
                if not isinstance(x, str | int) or isinstance(x, bool):
                    raise serializers.ValidationError("items are external ids (or item ids)")
            return value

    @extend_schema(request=Input, responses={200: dict})
    def post(self, request, flag_id: int):
        flag = self.object
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        resolution = review_services.resolve_flag(
            flag=flag, actor=request.user, **data.validated_data
        )
        flag = Flag.objects.prefetch_related("items", "classes").get(pk=flag.pk)
        return Response({"flag": flag_payload(flag), "resolution": resolution_payload(resolution)})


class NormalizationApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/normalization/``: the current rule set and its versions;
    ``POST`` ``{rules, rationale}`` publishes the next version."""

    allowed_roles = {"GET": REVIEW_ROLES, "POST": SME_ROLES}

    class Input(serializers.Serializer):
        rules = serializers.ListField(child=serializers.DictField())
        rationale = serializers.CharField(
            allow_blank=True, required=False, default="", max_length=MAX_COMMENT_CHARS
        )

    @extend_schema(responses={200: dict})
    def get(self, request, project_id: int):
        versions = review_selectors.normalization_versions(self.project)
        return Response(
            {
                "version": versions[0]["version"] if versions else 0,
                "rules": current_normalization_rules(self.project),
                "versions": versions,
            }
        )

    @extend_schema(request=Input, responses={201: dict})
    def post(self, request, project_id: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        published = review_services.publish_normalization(
            project=self.project, actor=request.user, **data.validated_data
        )
        return Response(published, status=201)


class NormalizationPreviewApi(ProjectScopedMixin, APIView):
    """``POST /projects/{id}/normalization/preview/`` ``{rules}``: which labels change."""

    allowed_roles = {"POST": REVIEW_ROLES}

    class Input(serializers.Serializer):
        rules = serializers.ListField(child=serializers.DictField())

    @extend_schema(request=Input, responses={200: dict})
    def post(self, request, project_id: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(review_services.preview_normalization(self.project, **data.validated_data))


class AgreementHistoryApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/agreement-history/``: alpha per run, with the guideline
    version and the merges in force at each."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(responses={200: dict})
    def get(self, request, project_id: int):
        return Response(
            {
                "runs": review_selectors.agreement_history(self.project),
                "before_after": review_selectors.alpha_before_after(self.project),
            }
        )


urlpatterns = [
    path("projects/<int:project_id>/flags/", FlagListApi.as_view(), name="api-flags"),
    path("flags/<int:flag_id>/", FlagDetailApi.as_view(), name="api-flag"),
    path("flags/<int:flag_id>/resolve/", FlagResolveApi.as_view(), name="api-flag-resolve"),
    path(
        "projects/<int:project_id>/normalization/",
        NormalizationApi.as_view(),
        name="api-normalization",
    ),
    path(
        "projects/<int:project_id>/normalization/preview/",
        NormalizationPreviewApi.as_view(),
        name="api-normalization-preview",
    ),
    path(
        "projects/<int:project_id>/agreement-history/",
        AgreementHistoryApi.as_view(),
        name="api-agreement-history",
    ),
]
