"""Provenance over REST: item history, dataset versions (build, read, diff, export,
lineage) and pipeline tokens. Thin: every operation calls a provenance service/selector.

Who may do what: reading history and datasets needs a review role (viewer, SME, manager;
labelers may not see others' labels); building a version needs SME or manager; tokens
are managed by managers. A pipeline token acts as a viewer of its one project (an SME with
the ``write`` scope; see ``labeling.access``).
"""

from __future__ import annotations

import functools

from django.http import HttpResponseNotModified, StreamingHttpResponse
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.errors import ApiError
from api.pagination import Pagination
from api.schema import LabelValueField, error_responses, paginated
from datasets import exporters, selectors, services
from datasets.authentication import PipelineTokenAuthentication
from datasets.models import DatasetStatus, DatasetVersion, PipelineToken
from labeling.access import MANAGER_ROLES, REVIEW_ROLES, SME_ROLES
from labeling.models import Item

# Until settings list PipelineTokenAuthentication first in DEFAULT_AUTHENTICATION_CLASSES,
# these views name it themselves (before DRF's TokenAuthentication, which refuses keys it
# does not know).
AUTHENTICATION = [PipelineTokenAuthentication, TokenAuthentication, SessionAuthentication]


# --- The documented shapes of the payloads (datasets.selectors) ------------------------
def _declare(serializer_class, **fields):
    """Fields named by Python keywords (``from``, ``class``) declared by name, first."""
    serializer_class._declared_fields = {**fields, **serializer_class._declared_fields}
    return serializer_class


class HistoryItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    kind = serializers.CharField()
    metadata = serializers.DictField(child=serializers.JSONField())
    tags = serializers.ListField(child=serializers.CharField())
    image_url = serializers.CharField(allow_null=True)
    content_hash = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class HistoryBatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    origin = serializers.CharField(allow_blank=True)
    file_sha256 = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    status = serializers.CharField()


class HistoryGoldSerializer(serializers.Serializer):
    value = LabelValueField()
    source = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class TimelineEntrySerializer(serializers.Serializer):
    """One step of an item's story; ``type`` says which of the optional keys it has."""

    at = serializers.DateTimeField()
    type = serializers.ChoiceField(
        choices=["item", "guideline", "annotation", "gold", "merge", "resolution"]
    )
    verb = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    # item, gold, guideline and merge entries (provenance events)
    event = serializers.IntegerField(required=False)
    subject = serializers.CharField(required=False)
    before = serializers.JSONField(required=False)
    after = serializers.JSONField(required=False)
    # annotation entries
    annotation = serializers.IntegerField(required=False)
    value = LabelValueField(required=False)
    maps_to = serializers.CharField(allow_null=True, required=False)
    comment = serializers.CharField(allow_blank=True, required=False)
    is_current = serializers.BooleanField(required=False)
    supersedes = serializers.IntegerField(allow_null=True, required=False)
    source = serializers.CharField(required=False)
    # annotation and resolution entries
    guideline_version = serializers.IntegerField(allow_null=True, required=False)
    # resolution entries
    resolution = serializers.IntegerField(required=False)
    flag = serializers.IntegerField(required=False)
    action = serializers.CharField(required=False)
    label = serializers.CharField(allow_null=True, required=False)
    into = serializers.CharField(allow_null=True, required=False)


class ItemHistorySerializer(serializers.Serializer):
    item = HistoryItemSerializer()
    source_batch = HistoryBatchSerializer(allow_null=True)
    gold = HistoryGoldSerializer(allow_null=True)
    timeline = TimelineEntrySerializer(many=True, help_text="in time order")


class ClassCountsSerializer(serializers.Serializer):
    all = serializers.DictField(
        child=serializers.IntegerField(), required=False, help_text="label -> rows"
    )
    by_split = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        required=False,
        help_text="split -> label -> rows",
    )


class DatasetParamsSerializer(serializers.Serializer):
    """The request as validated (``datasets.services.validate_dataset_request``); a built
    version adds what it applied (``class_merges``, ``format_version``)."""

    agreement_run = serializers.IntegerField()
    consensus = serializers.CharField(help_text="majority | dawid_skene")
    min_confidence = serializers.FloatField(allow_null=True)
    include_borderline = serializers.BooleanField()
    include_unresolved = serializers.BooleanField()
    filters = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField()),
        help_text="'tag' or 'metadata.<key>' -> accepted values",
    )
    splits = serializers.DictField(child=serializers.FloatField())
    seed = serializers.IntegerField()
    stratify_by = serializers.ListField(child=serializers.CharField())
    group_by = serializers.CharField(allow_null=True)
    class_merges = serializers.DictField(child=serializers.CharField(), required=False)
    format_version = serializers.IntegerField(required=False)


class DatasetVersionSerializer(serializers.Serializer):
    """``datasets.selectors.dataset_version_payload`` (DESIGN "dataset version")."""

    id = serializers.IntegerField()
    project = serializers.IntegerField()
    status = serializers.CharField(help_text="queued | building | succeeded | failed")
    params = DatasetParamsSerializer()
    row_count = serializers.IntegerField()
    split_counts = serializers.DictField(child=serializers.IntegerField())
    class_counts = ClassCountsSerializer(help_text="{} until the version is built")
    content_hash = serializers.CharField(allow_null=True)
    columns = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class DiffRowSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    label = serializers.CharField(allow_null=True)
    split = serializers.CharField()


class RelabelReasonSerializer(serializers.Serializer):
    kind = serializers.CharField(
        help_text="resolution | class_merge | class_unmerge | new_labels | consensus"
    )
    text = serializers.CharField()


@functools.partial(_declare, **{"from": serializers.CharField(allow_null=True)})
class RelabeledRowSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    to = serializers.CharField(allow_null=True)
    split = serializers.ListField(child=serializers.CharField(), help_text="[in a, in b]")
    reasons = RelabelReasonSerializer(many=True, help_text="each kind adds its own keys")


class DiffCountsSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    relabeled = serializers.IntegerField()
    moved_split = serializers.IntegerField()
    unchanged = serializers.IntegerField()


@functools.partial(_declare, **{"from": serializers.IntegerField(help_text="version a")})
class DatasetDiffSerializer(serializers.Serializer):
    to = serializers.IntegerField(help_text="version b")
    params_changed = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField()), help_text="key -> [a, b]"
    )
    counts = DiffCountsSerializer(help_text="complete, whatever the limit")
    added = DiffRowSerializer(many=True)
    removed = DiffRowSerializer(many=True)
    relabeled = RelabeledRowSerializer(many=True)
    truncated = serializers.BooleanField(help_text="a list stopped at the limit")


class LineageNodeSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="<type>:<key>")
    type = serializers.ChoiceField(
        choices=[
            "source_batch",
            "item_summary",
            "annotation_summary",
            "guideline",
            "agreement_run",
            "resolution",
            "dataset_version",
        ]
    )
    label = serializers.CharField(help_text="each type adds its own keys")


@functools.partial(_declare, **{"from": serializers.CharField(help_text="node id")})
class LineageEdgeSerializer(serializers.Serializer):
    to = serializers.CharField(help_text="node id")
    relation = serializers.CharField()
    n_items = serializers.IntegerField(required=False)


class LineageSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField()
    nodes = LineageNodeSerializer(many=True)
    edges = LineageEdgeSerializer(many=True)


class ItemHistoryApi(ProjectScopedMixin, APIView):
    """``GET /items/{id}/history/``: the item's whole story, in time order."""

    authentication_classes = AUTHENTICATION
    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = Item.objects.select_related("source_batch__created_by")
    scope_url_kwarg = "item_id"

    @extend_schema(responses=ItemHistorySerializer)
    def get(self, request, item_id: int):
        return Response(selectors.item_history(self.object))


class DatasetListApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/datasets/`` (paginated, newest first) and ``POST`` a request
    to build a new version (202; the worker builds it)."""

    authentication_classes = AUTHENTICATION
    allowed_roles = {"GET": REVIEW_ROLES, "POST": SME_ROLES}

    class InputSerializer(serializers.Serializer):
        agreement_run = serializers.IntegerField(required=False)
        consensus = serializers.ChoiceField(choices=["majority", "dawid_skene"], required=False)
        min_confidence = serializers.FloatField(required=False, allow_null=True)
        include_borderline = serializers.BooleanField(required=False)
        include_unresolved = serializers.BooleanField(required=False)
        filters = serializers.DictField(required=False)
        splits = serializers.DictField(child=serializers.FloatField(), required=False)
        seed = serializers.IntegerField(required=False)
        stratify_by = serializers.ListField(child=serializers.CharField(), required=False)
        group_by = serializers.CharField(required=False, allow_null=True)

    class AcceptedSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        url = serializers.CharField()

    @extend_schema(responses=paginated(DatasetVersionSerializer(), "PaginatedDatasetVersionList"))
    def get(self, request, project_id: int):
        paginator = Pagination()
        page = paginator.paginate_queryset(
            selectors.dataset_versions(self.project), request, view=self
        )
        return paginator.get_paginated_response(
            [selectors.dataset_version_payload(v) for v in page]
        )

    @extend_schema(request=InputSerializer, responses={202: AcceptedSerializer})
    def post(self, request, project_id: int):
        # The service validates every field itself (the serializer documents the shape):
        # raw JSON types matter (true is not 1), and the messages name the field.
        version = services.request_dataset_version(
            project=self.project, requested_by=request.user, data=request.data
        )
        url = request.build_absolute_uri(reverse("api-dataset", args=[version.pk]))
        return Response(
            {"id": version.pk, "status": version.status, "url": url},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )


class _VersionApi(ProjectScopedMixin, APIView):
    """A route addressed by a dataset version id: review roles read it."""

    authentication_classes = AUTHENTICATION
    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = DatasetVersion.objects.select_related("created_by")
    scope_url_kwarg = "dataset_id"


def _published(version: DatasetVersion) -> DatasetVersion:
    if version.status != DatasetStatus.SUCCEEDED:
        raise ApiError(
            f"dataset version {version.pk} is {version.status}, not published yet"
            + (f": {version.error}" if version.error else "; poll it until status is succeeded"),
            status_code=status.HTTP_409_CONFLICT,
        )
    return version


class DatasetDetailApi(_VersionApi):
    """``GET /datasets/{id}/``: status, params, counts and content hash."""

    authentication_classes = AUTHENTICATION

    @extend_schema(responses=DatasetVersionSerializer)
    def get(self, request, dataset_id: int):
        return Response(selectors.dataset_version_payload(self.object))


class DatasetDiffApi(_VersionApi):
    """``GET /datasets/{a}/diff/{b}/?limit=1000``: added, removed and relabeled items."""

    authentication_classes = AUTHENTICATION

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="Max entries per list (1000).")],
        responses={200: DatasetDiffSerializer, **error_responses(409)},
    )
    def get(self, request, dataset_id: int, other_id: int):
        a = _published(self.object)
        b = _published(self.get_scoped_object(self.scope_model, other_id))
        if a.project_id != b.project_id:
            raise ApiError("both dataset versions must belong to the same project")
        try:
            limit = int(request.query_params.get("limit", 1000))
        except ValueError:
            raise ApiError("limit: expected an integer") from None
        if not 1 <= limit <= 100_000:
            raise ApiError("limit: must be between 1 and 100000")
        return Response(selectors.dataset_diff(a, b, limit=limit))


class DatasetLineageApi(_VersionApi):
    """``GET /datasets/{id}/lineage/``: source batches → items → annotations → agreement
    run, guidelines, resolutions → the version, as ``{nodes, edges}``."""

    authentication_classes = AUTHENTICATION

    @extend_schema(responses={200: LineageSerializer, **error_responses(409)})
    def get(self, request, dataset_id: int):
        version = _published(self.object)
        return Response(selectors.lineage_graph(version))


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """``?format=`` names the export format here, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


class DatasetExportApi(_VersionApi):
    """``GET /datasets/{id}/export/?format=jsonl|csv|parquet|imagefolder|coco|yolo&split=train``
    (``coco`` and ``yolo`` for detection versions):
    streamed, byte-identical on every call, with a strong ETag (304 on If-None-Match)."""

    authentication_classes = AUTHENTICATION
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(exporters.FORMATS), description="jsonl"),
            OpenApiParameter("split", str, description="One split; all rows when omitted."),
        ],
        responses={
            **{(200, media): OpenApiTypes.BINARY for media, _ in exporters.FORMATS.values()},
            304: OpenApiResponse(description="If-None-Match named the current ETag"),
            **error_responses(409),
        },
    )
    def get(self, request, dataset_id: int):
        version = _published(self.object)
        fmt = request.query_params.get("format", "jsonl")
        offered = exporters.formats_for(version)
        if fmt not in offered:
            raise ApiError(f"format: must be one of {', '.join(offered)}, got {fmt!r}")
        split = request.query_params.get("split") or None
        if split is not None and split not in version.split_counts:
            known = ", ".join(version.split_counts)
            raise ApiError(f"split: this version has no split {split!r}; its splits: {known}")
        etag = f'"{version.content_hash}-{fmt}-{split or "all"}"'
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            response = HttpResponseNotModified()
            response["ETag"] = etag
            return response
        content_type, extension = exporters.FORMATS[fmt]
        filename = f"{version.project.slug}-v{version.pk}-{split or 'all'}.{extension}"
        response = StreamingHttpResponse(
            exporters.EXPORTERS[fmt](version, split), content_type=content_type
        )
        response["ETag"] = etag
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, max-age=0, must-revalidate"
        response["X-Content-Hash"] = version.content_hash
        if split is None or fmt == "jsonl":
            response["X-Row-Count"] = str(
                version.split_counts.get(split, 0) if split else version.row_count
            )
        return response


def token_payload(token: PipelineToken, secret: str | None = None) -> dict:
    payload = {
        "id": token.pk,
        "project": token.project_id,
        "name": token.name,
        "prefix": token.prefix,
        "scopes": token.scopes,
        "user": token.user.get_username() if token.user else None,
        "created_by": token.created_by.get_username() if token.created_by else None,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }
    if secret is not None:
        payload["token"] = secret
    return payload


class TokenOutputSerializer(serializers.Serializer):
    """One pipeline token as listed (``token_payload``); the secret only when created."""

    id = serializers.IntegerField()
    project = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    user = serializers.CharField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    token = serializers.CharField(required=False, help_text="the secret, in the POST answer only")


class NewTokenSerializer(TokenOutputSerializer):
    token = serializers.CharField(help_text="the secret: shown this once, never again")


class TokenListApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/tokens/`` (never the secrets) and ``POST {name, scopes?,
    expires_at?}`` → the new token with its secret, shown this once."""

    authentication_classes = AUTHENTICATION
    allowed_roles = {"GET": MANAGER_ROLES, "POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=list(services.TOKEN_SCOPES)),
            required=False,
            default=["read"],
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(responses=TokenOutputSerializer(many=True))
    def get(self, request, project_id: int):
        tokens = PipelineToken.objects.filter(project=self.project).select_related(
            "user", "created_by"
        )
        return Response([token_payload(t) for t in tokens])

    @extend_schema(request=InputSerializer, responses={201: NewTokenSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.create_pipeline_token(
            project=self.project,
            name=data.validated_data["name"],
            scopes=data.validated_data["scopes"],
            expires_at=data.validated_data.get("expires_at"),
            created_by=request.user,
        )
        return Response(token_payload(token, secret), status=status.HTTP_201_CREATED)


class TokenDetailApi(ProjectScopedMixin, APIView):
    """``DELETE /tokens/{id}/``: revoke (204); the token fails with 401 from then on."""

    authentication_classes = AUTHENTICATION
    allowed_roles = {"DELETE": MANAGER_ROLES}
    scope_model = PipelineToken
    scope_url_kwarg = "token_id"

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, token_id: int):
        services.revoke_pipeline_token(token=self.object, revoked_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("items/<int:item_id>/history/", ItemHistoryApi.as_view(), name="api-item-history"),
    path("projects/<int:project_id>/datasets/", DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<int:dataset_id>/diff/<int:other_id>/",
        DatasetDiffApi.as_view(),
        name="api-dataset-diff",
    ),
    path(
        "datasets/<int:dataset_id>/export/", DatasetExportApi.as_view(), name="api-dataset-export"
    ),
    path(
        "datasets/<int:dataset_id>/lineage/",
        DatasetLineageApi.as_view(),
        name="api-dataset-lineage",
    ),
    path("projects/<int:project_id>/tokens/", TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/", TokenDetailApi.as_view(), name="api-token-detail"),
]
