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
from api.schema import LabelValueField, paginated
from consistency import pause_flags
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


# --- The documented shapes of the payloads above --------------------------------------
class FlagSliceSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_blank=True)


class FlagSerializer(serializers.Serializer):
    """``flag_payload`` (DESIGN's flag)."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=FlagKind.choices)
    status = serializers.ChoiceField(choices=FlagStatus.choices)
    impact = serializers.FloatField()
    suggested_action = serializers.CharField(allow_blank=True)
    summary = serializers.CharField(allow_blank=True)
    evidence = serializers.DictField(
        child=serializers.JSONField(), help_text="what raised the flag; its keys depend on kind"
    )
    items = serializers.ListField(child=serializers.CharField(), help_text="external ids")
    classes = serializers.ListField(child=serializers.CharField(), help_text="class keys")
    labeler = serializers.CharField(allow_null=True)
    slice = FlagSliceSerializer(allow_null=True)
    run = serializers.IntegerField(help_text="the agreement run that raised it")
    superseded_by = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ResolutionSerializer(serializers.Serializer):
    """``resolution_payload``: an SME decision."""

    id = serializers.IntegerField()
    flag = serializers.IntegerField()
    action = serializers.ChoiceField(choices=ResolutionAction.choices)
    rationale = serializers.CharField(allow_blank=True)
    label = serializers.CharField(allow_null=True)
    into = serializers.CharField(allow_null=True)
    items = serializers.ListField(child=serializers.CharField(), help_text="external ids")
    guideline_version = serializers.IntegerField(allow_null=True)
    details = serializers.DictField(child=serializers.JSONField())
    decided_by = serializers.CharField()
    created_at = serializers.DateTimeField()


class ItemLabelSerializer(serializers.Serializer):
    """``review.selectors.item_labels``: one current label on a flagged item."""

    labeler = serializers.CharField()
    value = LabelValueField()
    guideline_version = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    time_spent_ms = serializers.IntegerField(allow_null=True)


class FlaggedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    image = serializers.CharField(allow_null=True, help_text="stored image URL or image_url")
    text = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.JSONField())
    labels = ItemLabelSerializer(many=True)


class FlagDetailSerializer(FlagSerializer):
    item_details = FlaggedItemSerializer(many=True)
    resolutions = ResolutionSerializer(many=True)


class FlagResolvedSerializer(serializers.Serializer):
    flag = FlagSerializer()
    resolution = ResolutionSerializer()


class NormalizationRuleSerializer(serializers.Serializer):
    find = serializers.CharField()
    replace = serializers.CharField(allow_blank=True)
    regex = serializers.BooleanField()
    case_sensitive = serializers.BooleanField()
    whole_word = serializers.BooleanField()
    note = serializers.CharField(allow_blank=True)


class NormalizationVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    rules = NormalizationRuleSerializer(many=True)
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()
    rationale = serializers.CharField(allow_blank=True)


class NormalizationSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="the current version; 0 before the first")
    rules = NormalizationRuleSerializer(many=True)
    versions = NormalizationVersionSerializer(many=True, help_text="newest first")


class NormalizationPublishedSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    rules = NormalizationRuleSerializer(many=True)


class RuleEffectSerializer(serializers.Serializer):
    rule = serializers.IntegerField(help_text="1-based position")
    find = serializers.CharField()
    replace = serializers.CharField(allow_blank=True)
    n_texts = serializers.IntegerField()
    n_replacements = serializers.IntegerField()


class TranscriptChangeSerializer(serializers.Serializer):
    ref = serializers.DictField(child=serializers.CharField(), help_text="{item, labeler}")
    before = serializers.CharField(allow_blank=True)
    after = serializers.CharField(allow_blank=True)


class ExactAgreementSerializer(serializers.Serializer):
    percent_agreement = serializers.FloatField(allow_null=True)
    mean_pairwise_wer = serializers.FloatField(allow_null=True)


class PreviewAgreementSerializer(serializers.Serializer):
    current_rules = ExactAgreementSerializer()
    these_rules = ExactAgreementSerializer()


class NormalizationPreviewSerializer(serializers.Serializer):
    n_texts = serializers.IntegerField()
    n_changed = serializers.IntegerField()
    per_rule = RuleEffectSerializer(many=True)
    changes = TranscriptChangeSerializer(many=True, help_text="at most 500")
    truncated = serializers.BooleanField()
    agreement = PreviewAgreementSerializer(required=False, help_text="absent without labels")
    rules = NormalizationRuleSerializer(many=True)


class HistoryRunSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    krippendorff_alpha_ci = serializers.ListField(
        child=serializers.FloatField(allow_null=True), allow_null=True
    )
    percent_agreement = serializers.FloatField(allow_null=True)
    n_items = serializers.IntegerField(allow_null=True)
    n_annotations = serializers.IntegerField(allow_null=True)
    guideline_version = serializers.IntegerField(allow_null=True)
    merges = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="[class key, merged into] pairs in force",
    )
    delta_alpha = serializers.FloatField(allow_null=True)


class BeforeAfterSerializer(serializers.Serializer):
    before = HistoryRunSerializer(allow_null=True)
    after = HistoryRunSerializer()
    delta = serializers.FloatField(allow_null=True)
    changes = serializers.ListField(child=serializers.CharField())


class AgreementHistorySerializer(serializers.Serializer):
    runs = HistoryRunSerializer(many=True)
    before_after = BeforeAfterSerializer(allow_null=True, help_text="null before any alpha")


class FlagListApi(ProjectScopedMixin, GenericAPIView):
    """``GET /projects/{id}/flags/?status=open&kind=...``: ranked by impact, paginated."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=[*FlagStatus.values, "all"], default="open"),
            OpenApiParameter("kind", enum=FlagKind.values),
        ],
        responses={200: paginated(FlagSerializer(), "PaginatedFlagList")},
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
        # Pauses made on the labeling page get their flag here at the latest.
        pause_flags.sync_pause_flags(self.project)
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

    @extend_schema(responses={200: FlagDetailSerializer})
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
        boxes = serializers.ListField(
            child=serializers.DictField(),
            required=False,
            allow_null=True,
            default=None,
            help_text="set_label in a detection project: the item's boxes {class, x, y, w, h} "
            "in pixels ([] = nothing there)",
        )
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

    @extend_schema(request=Input, responses={200: FlagResolvedSerializer})
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

    @extend_schema(responses={200: NormalizationSerializer})
    def get(self, request, project_id: int):
        versions = review_selectors.normalization_versions(self.project)
        return Response(
            {
                "version": versions[0]["version"] if versions else 0,
                "rules": current_normalization_rules(self.project),
                "versions": versions,
            }
        )

    @extend_schema(request=Input, responses={201: NormalizationPublishedSerializer})
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

    @extend_schema(request=Input, responses={200: NormalizationPreviewSerializer})
    def post(self, request, project_id: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(review_services.preview_normalization(self.project, **data.validated_data))


class AgreementHistoryApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/agreement-history/``: alpha per run, with the guideline
    version and the merges in force at each."""

    allowed_roles = {"GET": REVIEW_ROLES}

    @extend_schema(responses={200: AgreementHistorySerializer})
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
