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
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.pagination import Pagination
from api.schema import paginated
from consistency import runs, selectors
from consistency.models import AgreementRun, ConsensusMethod, ConsensusStatus, RunStatus
from consistency.run_params import MAX_CHUNK_ITEMS
from labeling.access import REVIEW_ROLES, SME_ROLES


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


# --- The documented shapes of a run ---------------------------------------------------
# A run's results hold what its task type measures (DESIGN "Results of an agreement
# run"): every key is typed; keys a task type does not compute (per_class of a
# transcription run, icc outside rating, box_f1 outside detection) are absent, so none is
# required. A metric that cannot be computed is null with its reason under ``reasons``.
def _metric(help_text: str = "") -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, required=False, help_text=help_text)


def _interval(help_text: str = "[low, high]; null when not computed") -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        allow_null=True,
        required=False,
        help_text=help_text,
    )


def _reasons() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(), required=False, help_text="metric -> why it is null"
    )


def _count() -> serializers.IntegerField:
    return serializers.IntegerField(allow_null=True, required=False)


class RunParamsSerializer(serializers.Serializer):
    """The run's parameters as validated (``consistency.run_params``), defaults filled in."""

    level = serializers.ChoiceField(choices=["nominal", "ordinal", "interval", "ratio"])
    slices = serializers.ListField(child=serializers.CharField())
    n_bootstrap = serializers.IntegerField()
    seed = serializers.IntegerField()
    consensus = serializers.ListField(child=serializers.CharField())
    chunk_items = serializers.IntegerField(required=False)


class OverallAgreementSerializer(serializers.Serializer):
    krippendorff_alpha = _metric()
    krippendorff_alpha_ci = _interval()
    fleiss_kappa = _metric()
    percent_agreement = _metric()
    percent_agreement_ci = _interval()
    mean_pairwise_cohen_kappa = _metric()
    gwet_ac1 = _metric("nominal runs")
    gwet_ac1_ci = _interval()
    gwet_ac2 = _metric("weighted runs (ordinal, interval, ratio)")
    gwet_ac2_ci = _interval()
    icc = _metric("rating projects")
    box_f1 = _metric("detection projects")
    box_mean_iou = _metric("detection projects")
    count_alpha = _metric("detection projects")
    count_alpha_ci = _interval()
    n_items = _count()
    n_pairable_items = _count()
    n_annotations = _count()
    n_labelers = _count()
    n_bootstrap = _count()
    level = serializers.CharField(required=False)
    reasons = _reasons()


class PerClassAgreementSerializer(serializers.Serializer):
    krippendorff_alpha = _metric("one class against the rest")
    support = _count()
    n_pairable = _count()
    reasons = _reasons()


# "class" is a Python keyword: the field is declared by name.
PerClassAgreementSerializer._declared_fields = {
    "class": serializers.CharField(help_text="class key"),
    **PerClassAgreementSerializer._declared_fields,
}


class PerLabelerAgreementSerializer(serializers.Serializer):
    labeler = serializers.CharField()
    labeler_id = serializers.IntegerField(required=False)
    n = _count()
    agreement_with_consensus = _metric()
    cohen_kappa_mean = _metric()
    accuracy_vs_gold = _metric("against ground truth, when the project has it")
    n_gold = _count()
    box_f1 = _metric("detection projects")
    reasons = _reasons()


class PairwiseSerializer(serializers.Serializer):
    labelers = serializers.ListField(child=serializers.CharField())
    cohen_kappa = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True))
    )
    n_shared = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    reasons = _reasons()


class ConfusionMatrixSerializer(serializers.Serializer):
    classes = serializers.ListField(child=serializers.CharField())
    counts = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="labeler-vs-labeler coincidences",
    )
    definition = serializers.CharField(required=False)
    reasons = _reasons()


class HlpEstimateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    n_items = serializers.IntegerField()


class HlpSliceSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_null=True, allow_blank=True)
    n_items = _count()
    hlp = _metric()
    hlp_ci = _interval()
    method = serializers.CharField(allow_null=True, required=False)
    reasons = _reasons()


class ConsensusMethodSummarySerializer(serializers.Serializer):
    n_items = _count()
    agreed = _count()
    disputed = _count()
    borderline = _count()
    resolved = _count()
    definition = serializers.CharField(required=False)


class ConsensusSummarySerializer(serializers.Serializer):
    methods = serializers.DictField(
        child=ConsensusMethodSummarySerializer(), help_text="majority, dawid_skene"
    )
    sme_overrides = _count()
    reasons = _reasons()


class HlpSerializer(serializers.Serializer):
    value = _metric("the headline estimate")
    method = serializers.CharField(allow_null=True, required=False, help_text="gold | pairwise")
    ci = _interval()
    n_items = _count()
    gold = HlpEstimateSerializer(required=False)
    pairwise = HlpEstimateSerializer(required=False)
    per_slice = HlpSliceSerializer(many=True, required=False)
    reasons = _reasons()


class SliceAgreementSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_null=True, allow_blank=True)
    n_items = _count()
    n_annotations = _count()
    krippendorff_alpha = _metric()
    krippendorff_alpha_ci = _interval()
    percent_agreement = _metric()
    hlp = _metric()
    hlp_ci = _interval()
    hlp_method = serializers.CharField(allow_null=True, required=False)
    hlp_n_items = _count()
    reasons = _reasons()


class ResultsDataVersionSerializer(serializers.Serializer):
    max_annotation_id = serializers.IntegerField(allow_null=True)
    n_annotations = serializers.IntegerField()
    changed_during_run = serializers.BooleanField(required=False)
    note = serializers.CharField(required=False)


class AgreementResultsSerializer(serializers.Serializer):
    overall = OverallAgreementSerializer(required=False)
    per_class = PerClassAgreementSerializer(many=True, required=False)
    per_labeler = PerLabelerAgreementSerializer(many=True, required=False)
    pairwise = PairwiseSerializer(required=False, allow_null=True)
    confusion = ConfusionMatrixSerializer(required=False, allow_null=True)
    hlp = HlpSerializer(required=False, allow_null=True)
    slices = SliceAgreementSerializer(many=True, required=False)
    consensus = ConsensusSummarySerializer(required=False)
    task_type = serializers.CharField(required=False)
    params = RunParamsSerializer(required=False)
    data_version = ResultsDataVersionSerializer(required=False)


class RunDataVersionSerializer(serializers.Serializer):
    max_annotation_id = serializers.IntegerField(allow_null=True, required=False)
    n_annotations = serializers.IntegerField(required=False)


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
        params = RunParamsSerializer()
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
        params = RunParamsSerializer()
        results = AgreementResultsSerializer(
            allow_null=True,
            help_text="overall, per_class, per_labeler, pairwise, confusion, hlp, slices, "
            "consensus, data_version (see DESIGN 'Results of an agreement run'); null "
            "until the run succeeded. A metric that cannot be computed is null with "
            "its reason under the object's `reasons`.",
        )
        data_version = RunDataVersionSerializer(help_text="what the run read ({} until it started)")
        is_stale = serializers.BooleanField(
            help_text="the project's labels changed since the run read them"
        )
        timings = serializers.DictField(
            child=serializers.FloatField(), help_text="seconds per phase (plan_s, scan_s, ...)"
        )
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
