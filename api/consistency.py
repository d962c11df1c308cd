"""REST for agreement runs: start one (202), list them, poll one, read its consensus.

Thin: validation and work live in ``consistency.runs``; reads in
``consistency.selectors``. Results show everyone's labels and agreement, so only the
review roles (viewer, SME, manager) read them; labelers get 403, non-members 404.
"""

from __future__ import annotations

from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.schema import paginated
from consistency import runs, selectors
from consistency.models import AgreementRun, ConsensusMethod, ConsensusStatus, RunStatus
from consistency.run_params import MAX_CHUNK_ITEMS
from labeling.access import REVIEW_ROLES, SME_ROLES


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def run_url(request, run_id: int) -> str:
    return request.build_absolute_uri(reverse("api-agreement-run", args=[run_id]))


def run_summary(request, run: AgreementRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "progress": run.progress,
        "error": run.error,
        "params": run.params,
        "n_chunks": run.n_chunks,
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "url": run_url(request, run.pk),
    }


class AgreementRunsApi(ProjectScopedMixin, APIView):
    """``POST /projects/{id}/agreement-runs/`` starts a run (202, poll its ``url``);
    ``GET`` lists the project's runs, newest first (paginated, without results)."""

    allowed_roles = {"GET": REVIEW_ROLES, "POST": SME_ROLES}

    class InputSerializer(serializers.Serializer):
        level = serializers.ChoiceField(
            choices=["nominal", "ordinal", "interval", "ratio"], required=False
        )
        slices = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="metadata keys, or tag | labeler | guideline_version | captured_week; "
            "default: guideline_version, tag, the common provenance keys present, captured_week",
        )
        n_bootstrap = serializers.IntegerField(required=False, min_value=0, max_value=10000)
        seed = serializers.IntegerField(required=False, min_value=0)
        consensus = serializers.ListField(
            child=serializers.ChoiceField(choices=["majority", "dawid_skene"]), required=False
        )
        chunk_items = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=MAX_CHUNK_ITEMS,
            help_text="items per parallel chunk, at least CONCORD_AGREEMENT_MIN_CHUNK_ITEMS "
            "(1000 unless configured)",
        )

    class AcceptedSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        url = serializers.URLField()

    class RunSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=RunStatus.choices)
        progress = serializers.FloatField()
        error = serializers.CharField()
        params = serializers.DictField()
        n_chunks = serializers.IntegerField()
        created_by = serializers.CharField(allow_null=True)
        created_at = serializers.DateTimeField()
        started_at = serializers.DateTimeField(allow_null=True)
        finished_at = serializers.DateTimeField(allow_null=True)
        url = serializers.URLField()

    @extend_schema(
        request=InputSerializer,
        responses={202: AcceptedSerializer},
        summary="Start an agreement run",
        description="Validates the parameters (an unknown key or value is a 400 naming it), "
        "creates the run and queues it for the worker. Poll the returned url.",
    )
    def post(self, request, project_id: int):
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "the request body must be a JSON object"})
        run = runs.start_agreement_run(
            project=self.project, params=dict(request.data), created_by=request.user
        )
        return Response(
            {"id": run.pk, "status": run.status, "url": run_url(request, run.pk)},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        responses={200: paginated(RunSerializer(), "PaginatedAgreementRunList")},
        summary="List agreement runs",
    )
    def get(self, request, project_id: int):
        paginator = Pagination()
        page = paginator.paginate_queryset(
            selectors.runs_for_project(self.project), request, view=self
        )
        return paginator.get_paginated_response([run_summary(request, r) for r in page])


class AgreementRunApi(ProjectScopedMixin, APIView):
    """``GET /agreement-runs/{id}/``: status, progress, error, params and results."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = AgreementRun
    scope_url_kwarg = "run_id"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        project = serializers.IntegerField()
        status = serializers.ChoiceField(choices=RunStatus.choices)
        progress = serializers.FloatField(help_text="0-1")
        error = serializers.CharField()
        params = serializers.DictField()
        results = serializers.DictField(
            allow_null=True,
            help_text="overall, per_class, per_labeler, pairwise, confusion, hlp, slices, "
            "consensus, data_version (see DESIGN 'Results of an agreement run'); null "
            "until the run succeeded. A metric that cannot be computed is null with "
            "its reason under the object's `reasons`.",
        )
        data_version = serializers.DictField()
        is_stale = serializers.BooleanField(
            help_text="the project's labels changed since the run read them"
        )
        timings = serializers.DictField()
        n_chunks = serializers.IntegerField()
        created_at = serializers.DateTimeField()
        started_at = serializers.DateTimeField(allow_null=True)
        finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses={200: OutputSerializer}, summary="Poll an agreement run")
    def get(self, request, run_id: int):
        run = self.object
        version = {k: v for k, v in run.data_version.items() if k != "labeler_ids"}
        return Response(
            {
                "id": run.pk,
                "project": run.project_id,
                "status": run.status,
                "progress": run.progress,
                "error": run.error,
                "params": run.params,
                "results": run.results,
                "data_version": version,
                "is_stale": run.status == RunStatus.SUCCEEDED and selectors.is_stale(run),
                "timings": run.timings,
                "n_chunks": run.n_chunks,
                "created_at": run.created_at,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
            }
        )


class AgreementRunConsensusApi(ProjectScopedMixin, APIView):
    """``GET /agreement-runs/{id}/consensus/?status=disputed&method=majority`` (paginated)."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = AgreementRun
    scope_url_kwarg = "run_id"

    class OutputSerializer(serializers.Serializer):
        item = serializers.IntegerField()
        external_id = serializers.CharField()
        method = serializers.ChoiceField(choices=ConsensusMethod.choices)
        label = serializers.CharField(allow_null=True, help_text="class key; null when disputed")
        support = serializers.FloatField(allow_null=True)
        confidence = serializers.FloatField(allow_null=True)
        entropy = serializers.FloatField(allow_null=True)
        n_labels = serializers.IntegerField()
        status = serializers.ChoiceField(choices=ConsensusStatus.choices)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=list(ConsensusStatus.values)),
            OpenApiParameter("method", str, enum=list(ConsensusMethod.values)),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses={200: paginated(OutputSerializer(), "PaginatedConsensusList")},
        summary="Consensus of an agreement run",
    )
    def get(self, request, run_id: int):
        run = self.object
        wanted = {
            "status": request.query_params.get("status") or None,
            "method": request.query_params.get("method") or None,
        }
        allowed = {"status": ConsensusStatus.values, "method": ConsensusMethod.values}
        for name, value in wanted.items():
            if value is not None and value not in allowed[name]:
                raise ValidationError(
                    {name: f"unknown {name} {value!r}; one of {', '.join(allowed[name])}"}
                )
        rows = selectors.run_consensus(run, **wanted)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(
            [
                {
                    "item": c.item_id,
                    "external_id": c.item.external_id,
                    "method": c.method,
                    "label": c.label_class.key if c.label_class_id else (c.value_text or None),
                    "support": c.support,
                    "confidence": c.confidence,
                    "entropy": c.entropy,
                    "n_labels": c.n_labels,
                    "status": c.status,
                }
                for c in page
            ]
        )


urlpatterns = [
    path(
        "projects/<int:project_id>/agreement-runs/",
        AgreementRunsApi.as_view(),
        name="api-agreement-runs",
    ),
    path("agreement-runs/<int:run_id>/", AgreementRunApi.as_view(), name="api-agreement-run"),
    path(
        "agreement-runs/<int:run_id>/consensus/",
        AgreementRunConsensusApi.as_view(),
        name="api-agreement-run-consensus",
    ),
]
