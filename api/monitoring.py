"""REST for monitoring runs: start one (202), list them, poll one.

Thin: validation and work live in ``consistency.monitoring``. Results show every
labeler's agreement, so only the review roles (viewer, SME, manager) read them; SMEs and
managers start runs; labelers get 403, non-members 404.
"""

from __future__ import annotations

from django.urls import path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.pagination import Pagination
from api.schema import paginated
from consistency import monitoring
from consistency.models import MonitoringRun, MonitoringTrigger, RunStatus
from labeling.access import REVIEW_ROLES, SME_ROLES


def run_url(request, run_id: int) -> str:
    return request.build_absolute_uri(reverse("api-monitoring-run", args=[run_id]))


def run_summary(request, run: MonitoringRun) -> dict:
    summary = (run.results or {}).get("summary") or {}
    return {
        "id": run.pk,
        "project": run.project_id,
        "status": run.status,
        "progress": run.progress,
        "error": run.error,
        "params": run.params,
        "trigger": run.trigger,
        "n_checks": summary.get("n_checks"),
        "n_drifted": summary.get("n_drifted"),
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "url": run_url(request, run.pk),
    }


class WindowSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="ISO 8601 date or date-time (UTC if no zone)")
    end = serializers.CharField(help_text="ISO 8601, after start (exclusive)")


class MonitoringRunsApi(ProjectScopedMixin, APIView):
    """``POST /projects/{id}/monitoring-runs/`` starts a run (202, poll its ``url``);
    ``GET`` lists the project's runs, newest first (paginated, without results)."""

    allowed_roles = {"GET": REVIEW_ROLES, "POST": SME_ROLES}

    class InputSerializer(serializers.Serializer):
        baseline = WindowSerializer(
            required=False, help_text="default: the four weeks before the current window"
        )
        current = WindowSerializer(
            required=False, help_text="default: the last two weeks of the project's data"
        )
        slices = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="metadata keys; default: the common keys the items carry",
        )
        n_bootstrap = serializers.IntegerField(required=False, min_value=1, max_value=2000)
        seed = serializers.IntegerField(required=False, min_value=0)

    class AcceptedSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        url = serializers.URLField()

    class RunSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        project = serializers.IntegerField()
        status = serializers.ChoiceField(choices=RunStatus.choices)
        progress = serializers.FloatField()
        error = serializers.CharField()
        params = serializers.DictField()
        trigger = serializers.ChoiceField(choices=MonitoringTrigger.choices)
        n_checks = serializers.IntegerField(allow_null=True)
        n_drifted = serializers.IntegerField(allow_null=True)
        created_by = serializers.CharField(allow_null=True)
        created_at = serializers.DateTimeField()
        started_at = serializers.DateTimeField(allow_null=True)
        finished_at = serializers.DateTimeField(allow_null=True)
        url = serializers.URLField()

    @extend_schema(
        request=InputSerializer,
        responses={202: AcceptedSerializer},
        summary="Start a monitoring run",
        description="Validates the windows and slices (a bad value is a 400 naming its "
        "field), creates the run and queues it for the worker. Poll the returned url.",
    )
    def post(self, request, project_id: int):
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "the request body must be a JSON object"})
        run = monitoring.start_monitoring_run(
            project=self.project, params=dict(request.data), created_by=request.user
        )
        return Response(
            {"id": run.pk, "status": run.status, "url": run_url(request, run.pk)},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        responses={200: paginated(RunSerializer(), "PaginatedMonitoringRunList")},
        summary="List monitoring runs",
    )
    def get(self, request, project_id: int):
        paginator = Pagination()
        runs = MonitoringRun.objects.filter(project=self.project).select_related("created_by")
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response([run_summary(request, r) for r in page])


class MonitoringRunApi(ProjectScopedMixin, APIView):
    """``GET /monitoring-runs/{id}/``: status, progress, error, params and results."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = MonitoringRun
    scope_url_kwarg = "monitoring_run_id"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        project = serializers.IntegerField()
        status = serializers.ChoiceField(choices=RunStatus.choices)
        progress = serializers.FloatField(help_text="0-1")
        error = serializers.CharField()
        params = serializers.DictField()
        trigger = serializers.ChoiceField(choices=MonitoringTrigger.choices)
        results = serializers.DictField(
            allow_null=True,
            help_text="checks[] (DESIGN 'Monitoring'): {metric, slice, labeler, baseline, "
            "current, test, statistic, p_value, q_value, effect_size, drifted, reasons, "
            "series}, drifted first; labelers[] (weekly agreement and ground-truth "
            "accuracy); settings; summary. Null until the run succeeded.",
        )
        timings = serializers.DictField()
        created_at = serializers.DateTimeField()
        started_at = serializers.DateTimeField(allow_null=True)
        finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses={200: OutputSerializer}, summary="Poll a monitoring run")
    def get(self, request, monitoring_run_id: int):
        run = self.object
        return Response(
            {
                "id": run.pk,
                "project": run.project_id,
                "status": run.status,
                "progress": run.progress,
                "error": run.error,
                "params": run.params,
                "trigger": run.trigger,
                "results": run.results,
                "timings": run.timings,
                "created_at": run.created_at,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
            }
        )


urlpatterns = [
    path(
        "projects/<int:project_id>/monitoring-runs/",
        MonitoringRunsApi.as_view(),
        name="api-monitoring-runs",
    ),
    path(
        "monitoring-runs/<int:monitoring_run_id>/",
        MonitoringRunApi.as_view(),
        name="api-monitoring-run",
    ),
]
