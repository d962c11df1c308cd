"""REST for model runs: a pipeline uploads predictions; the response sets the model's
accuracy beside HLP per slice and per tag (error analysis).

Thin: validation and work live in ``consistency.model_runs``. Uploading is for managers
and SMEs; reading for the review roles. Labelers get 403, non-members 404.
"""

from __future__ import annotations

from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.pagination import Pagination
from api.projects import UploadApi
from api.schema import paginated
from consistency import model_runs
from consistency.models import ModelRun
from labeling.access import REVIEW_ROLES, SME_ROLES


class ErrorAnalysisEntrySerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="metadata key or `tag`; null overall")
    value = serializers.CharField(allow_null=True)
    n_items = serializers.IntegerField(help_text="predicted items with a reference label")
    model_accuracy = serializers.FloatField(allow_null=True)
    hlp = serializers.FloatField(
        allow_null=True, help_text="from the latest succeeded agreement run, when present"
    )
    reasons = serializers.DictField(child=serializers.CharField(), help_text="why a metric is null")


class ErrorAnalysisReferenceSerializer(serializers.Serializer):
    agreement_run = serializers.IntegerField(allow_null=True)
    n_gold = serializers.IntegerField()
    n_consensus = serializers.IntegerField()
    n_without_reference = serializers.IntegerField()
    final_label_source = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="scored items by where their reference came from: "
        "{ground_truth, sme, consensus} (n_gold = ground_truth + sme)",
    )


class PrioritisationRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="`tag` or a metadata key")
    value = serializers.CharField()
    n_items = serializers.IntegerField(help_text="scored items of the slice")
    share = serializers.FloatField(allow_null=True, help_text="n_items / items scored in the run")
    model_accuracy = serializers.FloatField(allow_null=True)
    hlp = serializers.FloatField(
        allow_null=True, help_text="measured on the slice's items: ground truth, else pairwise"
    )
    hlp_method = serializers.CharField(allow_null=True, help_text="gold | pairwise")
    hlp_n_items = serializers.IntegerField(help_text="items the HLP estimate rests on")
    gap_to_hlp = serializers.FloatField(allow_null=True, help_text="hlp - model_accuracy")
    potential_gain = serializers.FloatField(
        allow_null=True, help_text="max(gap_to_hlp, 0) * share; the table's order, largest first"
    )
    reasons = serializers.DictField(child=serializers.CharField())


class TagStatisticsSerializer(serializers.Serializer):
    tag = serializers.CharField()
    n_items = serializers.IntegerField(help_text="scored items carrying the tag")
    n_errors = serializers.IntegerField()
    share_of_data = serializers.FloatField(allow_null=True)
    share_of_errors = serializers.FloatField(
        allow_null=True, help_text="model errors with the tag / all model errors"
    )
    error_rate = serializers.FloatField(
        allow_null=True, help_text="misclassified items with the tag / items with the tag"
    )
    reasons = serializers.DictField(child=serializers.CharField())


class PerClassSerializer(serializers.Serializer):
    support = serializers.IntegerField(help_text="scored items with this reference class")
    n_predicted = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True)
    recall = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    reasons = serializers.DictField(child=serializers.CharField())


# "class" is a Python keyword: the field is declared by name.
PerClassSerializer._declared_fields = {
    "class": serializers.CharField(help_text="root class key"),
    **PerClassSerializer._declared_fields,
}


class ConfusionSerializer(serializers.Serializer):
    classes = serializers.ListField(child=serializers.CharField())
    counts = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="counts[r][p]: reference class r predicted as class p",
    )
    definition = serializers.CharField()


class LabelErrorSerializer(serializers.Serializer):
    item = serializers.IntegerField(help_text="item id")
    external_id = serializers.CharField()
    final_label = serializers.CharField(
        help_text="ground truth, else SME decision, else consensus (class key)"
    )
    final_source = serializers.CharField(help_text="ground_truth | sme | consensus")
    predicted = serializers.CharField(help_text="the model's class key")
    confidence = serializers.FloatField(help_text="the model's confidence in it, 0-1")
    human_agreement = serializers.FloatField(
        help_text="share of the human labels equal to the final label, 0-1"
    )
    score = serializers.FloatField(help_text="confidence x (1 - human_agreement)")
    flag = serializers.IntegerField(
        allow_null=True, help_text="the item's label_error flag in the review queue"
    )


class ModelVsHumanSerializer(serializers.Serializer):
    n_shared = serializers.IntegerField(help_text="items both labeled")
    agreement = serializers.FloatField(allow_null=True)
    cohen_kappa = serializers.FloatField(allow_null=True)
    reasons = serializers.DictField(child=serializers.CharField())


class ModelVsLabelerSerializer(ModelVsHumanSerializer):
    labeler = serializers.CharField()
    labeler_id = serializers.IntegerField()


class ModelAsLabelerSerializer(serializers.Serializer):
    per_labeler = ModelVsLabelerSerializer(many=True)
    model_mean_kappa = serializers.FloatField(allow_null=True)
    human_mean_kappas = serializers.DictField(
        child=serializers.FloatField(), help_text="labeler -> mean kappa with the others"
    )
    human_spread = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="[min, max] of those"
    )
    position = serializers.CharField(allow_null=True, help_text="below | inside | above")
    consensus = ModelVsHumanSerializer()
    warnings = serializers.ListField(child=serializers.CharField())
    definition = serializers.CharField()
    reasons = serializers.DictField(child=serializers.CharField())


class HlpBasisSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="gold | pairwise")
    n_ground_truth_items = serializers.IntegerField()
    min_slice_items = serializers.IntegerField()
    definition = serializers.CharField()


class ErrorAnalysisSerializer(serializers.Serializer):
    reference = ErrorAnalysisReferenceSerializer(allow_null=True)
    overall = ErrorAnalysisEntrySerializer()
    slices = ErrorAnalysisEntrySerializer(many=True)
    prioritisation = PrioritisationRowSerializer(many=True)
    tags = TagStatisticsSerializer(many=True)
    per_class = PerClassSerializer(many=True)
    confusion = ConfusionSerializer(allow_null=True)
    macro_f1 = serializers.FloatField(allow_null=True, required=False)
    hlp_basis = HlpBasisSerializer(required=False)
    model_as_labeler = ModelAsLabelerSerializer(
        allow_null=True,
        required=False,
        help_text="the model's Cohen's kappa with each labeler and the consensus, and its "
        "position (below | inside | above) in the humans' spread, with warnings",
    )
    label_errors = LabelErrorSerializer(
        many=True,
        required=False,
        help_text="suspected label errors (top 100 by score): the model confidently "
        "disagrees with the final label and the human labels are split",
    )
    detection = serializers.DictField(
        required=False,
        help_text="detection projects: the IoU and score thresholds and the definitions of "
        "precision, recall, ap50 (COCO AP at IoU 0.5) and model_accuracy (box F1) that "
        "overall and slices carry",
    )
    reasons = serializers.DictField(child=serializers.CharField())


class ModelRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField()
    name = serializers.CharField()
    params = serializers.DictField(child=serializers.JSONField())
    n_predictions = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.URLField()
    error_analysis = ErrorAnalysisSerializer()


class PredictionRowSerializer(serializers.Serializer):
    item = serializers.CharField(help_text="the item's external id")
    value = serializers.JSONField(
        help_text="class key (classification), number (rating), text (transcription) or "
        "boxes [{class, x, y, w, h, score}] (detection; pixels, score 0-1)"
    )
    confidence = serializers.FloatField(required=False, allow_null=True)


def payload(request, run: ModelRun) -> dict:
    return {
        "id": run.pk,
        "project": run.project_id,
        "name": run.name,
        "params": run.params,
        "n_predictions": run.n_predictions,
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "created_at": run.created_at,
        "url": request.build_absolute_uri(reverse("api-model-run", args=[run.pk])),
        "error_analysis": model_runs.error_analysis(run),
    }


class ModelRunsApi(UploadApi):
    """``POST /projects/{id}/model-runs/`` uploads a model's predictions (201, with the
    error analysis); ``GET`` lists the project's model runs, newest first (paginated).

    The body's format comes from its Content-Type (or, for a multipart upload in the
    field ``file``, from the file's extension): JSON ``{name, predictions, params?}`` (or
    a list of rows with ``?name=``), JSON Lines or CSV (columns ``item``, ``value``,
    ``confidence``) with ``?name=``."""

    allowed_roles = {"GET": REVIEW_ROLES, "POST": SME_ROLES}
    accepted_params = frozenset({"name"})

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        predictions = PredictionRowSerializer(many=True)
        params = serializers.DictField(required=False)

    @extend_schema(
        request={
            "application/json": InputSerializer,
            "application/x-ndjson": {},
            "text/csv": {},
        },
        parameters=[
            OpenApiParameter("name", str, description="the run's name (JSONL, CSV, JSON list)")
        ],
        responses={201: ModelRunOutputSerializer},
        summary="Upload a model run's predictions",
        description="Rows are {item: <external id>, value, confidence?}. An unknown item, "
        "an unknown class or a duplicate item is a 400 naming the row numbers (1-based; "
        "line numbers in JSONL); then nothing is stored.",
    )
    def post(self, request, project_id: int):
        data, fmt, _ = self._read_upload(request)
        name = request.query_params.get("name")
        if name is None and request.content_type.startswith("multipart/form-data"):
            name = request.data.get("name")
        run = model_runs.upload_model_run_file(
            project=self.project, data=data, fmt=fmt, name=name, created_by=request.user
        )
        return Response(payload(request, run), status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: paginated(ModelRunOutputSerializer(), "PaginatedModelRunList")},
        summary="List model runs with their error analysis",
    )
    def get(self, request, project_id: int):
        paginator = Pagination()
        runs = (
            ModelRun.objects.filter(project=self.project)
            .select_related("project", "created_by")
            .order_by("-created_at", "-id")
        )
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response([payload(request, r) for r in page])


class ModelRunApi(ProjectScopedMixin, APIView):
    """``GET /model-runs/{id}/``: the run and its error analysis."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = ModelRun.objects.select_related("created_by")
    scope_url_kwarg = "model_run_id"

    @extend_schema(responses={200: ModelRunOutputSerializer}, summary="A model run")
    def get(self, request, model_run_id: int):
        run = self.object
        return Response(payload(request, run))


class CompareSliceSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="`tag` or a metadata key; null overall")
    value = serializers.CharField(allow_null=True)
    n_items = serializers.IntegerField(help_text="items scored by both runs")
    model_accuracy = serializers.FloatField(allow_null=True)
    other_accuracy = serializers.FloatField(allow_null=True)
    difference = serializers.FloatField(
        allow_null=True, help_text="other_accuracy - model_accuracy"
    )
    reasons = serializers.DictField(child=serializers.CharField())


class CompareItemSerializer(serializers.Serializer):
    item = serializers.CharField(help_text="external id")
    reference = serializers.CharField()
    final_label_source = serializers.CharField(help_text="ground_truth | sme | consensus")
    model = serializers.CharField(help_text="this run's prediction")
    other = serializers.CharField(help_text="the other run's prediction")
    model_correct = serializers.BooleanField()
    other_correct = serializers.BooleanField()


class CompareItemsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CompareItemSerializer(many=True)


class CompareOutputSerializer(serializers.Serializer):
    model_run = serializers.IntegerField()
    other_run = serializers.IntegerField()
    n_common = serializers.IntegerField(help_text="items predicted by both runs")
    n_scored = serializers.IntegerField(help_text="of those, items with a reference label")
    disagreement_share = serializers.FloatField(
        allow_null=True, help_text="items the two runs predict differently / n_common"
    )
    overall = CompareSliceSerializer(allow_null=True)
    slices = CompareSliceSerializer(many=True)
    items = CompareItemsPageSerializer(help_text="where exactly one run is right (paginated)")
    reasons = serializers.DictField(child=serializers.CharField())


class ModelRunCompareApi(ProjectScopedMixin, APIView):
    """``GET /model-runs/{id}/compare/{other}/``: two runs of one project side by side
    (a candidate in shadow mode against the current model). A run of another project is
    404, like one the caller cannot see."""

    allowed_roles = {"GET": REVIEW_ROLES}
    scope_model = ModelRun.objects.select_related("project")
    scope_url_kwarg = "model_run_id"

    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: CompareOutputSerializer},
        summary="Compare two model runs",
    )
    def get(self, request, model_run_id: int, other_model_run_id: int):
        other = self.get_scoped_object(ModelRun, other_model_run_id)
        if other.project_id != self.project.pk:
            raise NotFound("no such model run in this project")
        body = model_runs.compare_runs(self.object, other)
        paginator = Pagination()
        page = paginator.paginate_queryset(body["items"], request, view=self)
        body["items"] = {
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        return Response(body)


urlpatterns = [
    path("projects/<int:project_id>/model-runs/", ModelRunsApi.as_view(), name="api-model-runs"),
    path("model-runs/<int:model_run_id>/", ModelRunApi.as_view(), name="api-model-run"),
    path(
        "model-runs/<int:model_run_id>/compare/<int:other_model_run_id>/",
        ModelRunCompareApi.as_view(),
        name="api-model-run-compare",
    ),
]
