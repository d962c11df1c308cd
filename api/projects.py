"""REST for managers: projects, classes, guidelines, accounts, members, items, annotations,
progress, and the bulk imports of items and historical labels.

One API class per operation with nested Input/Output serializers; views are thin and call
``labeling.services`` / ``labeling.selectors`` / ``labeling.imports``. Every project-owned
endpoint goes through :class:`api.base.ProjectScopedMixin` (a non-member gets 404).

List filters are an allow-list: an unknown query parameter is a 400 naming the accepted
ones, and metadata keys become JSON key transforms (never ORM lookups).

Who may create projects: staff or superusers (``is_staff or is_superuser``); the creator
becomes the project's manager. Who may create accounts: superusers and managers of any
project. Who may activate an account: a superuser, or a manager of a project the account
is a member of (never a staff or superuser account).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.errors import ApiError
from api.pagination import Pagination
from api.schema import LABEL_VALUE_SCHEMA, error_responses, paginated
from labeling import access, selectors, services
from labeling.access import MANAGER_ROLES, READ_ROLES, REVIEW_ROLES
from labeling.imports.annotations import (
    import_annotations,
    import_coco,
    import_label_studio_file,
    import_yolo,
)
from labeling.imports.boxes import looks_like_coco
from labeling.imports.errors import ImportRejected
from labeling.imports.formats import detect_format
from labeling.imports.items import import_items
from labeling.models import (
    MAX_ASSIGNMENT_TTL_MINUTES,
    MAX_COMMENT_CHARS,
    MAX_GUIDELINE_CHARS,
    CheckSettings,
    Guideline,
    Item,
    LabelClass,
    MeasurementLevel,
    MonitoringSchedule,
    Project,
    ProjectMembership,
    Role,
    TaskType,
)

User = get_user_model()


# --- Shared pieces ---------------------------------------------------------------------


def check_query_params(request, allowed: frozenset, *, prefixes: tuple = ()) -> None:
    """400 for any query parameter not in ``allowed`` (or starting with one of ``prefixes``)."""
    unknown = sorted(
        k for k in request.query_params if k not in allowed and not k.startswith(prefixes)
    )
    if unknown:
        accepted = sorted(allowed) + [f"{p}<key>" for p in prefixes]
        raise ApiError(
            f"unknown query parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}",
            errors={k: ["not an accepted filter"] for k in unknown},
        )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class ClassOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    rank = serializers.IntegerField(allow_null=True)
    value = serializers.FloatField(allow_null=True)
    is_borderline = serializers.BooleanField()
    merged_into = serializers.SerializerMethodField()
    shortcut = serializers.CharField()
    order = serializers.IntegerField()

    def get_merged_into(self, obj) -> str | None:
        # ``merged_into`` is prefetched with the classes (see ProjectListApi).
        return self.context["class_keys"].get(obj.merged_into_id) if obj.merged_into_id else None


class ClassInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=80)
    name = serializers.CharField(max_length=200, required=False)
    rank = serializers.IntegerField(
        required=False, allow_null=True, min_value=-1_000_000, max_value=1_000_000
    )
    value = serializers.FloatField(required=False, allow_null=True)
    is_borderline = serializers.BooleanField(required=False, default=False)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_COMMENT_CHARS
    )
    shortcut = serializers.CharField(max_length=1, required=False, allow_blank=True, default="")


def _class_rows(classes) -> list[dict]:
    classes = list(classes)
    keys = {c.pk: c.key for c in classes}
    return ClassOutputSerializer(classes, many=True, context={"class_keys": keys}).data


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    task_type = serializers.CharField()
    level = serializers.CharField()
    overlap = serializers.IntegerField()
    dynamic_overlap = serializers.BooleanField()
    min_overlap = serializers.IntegerField()
    max_overlap = serializers.IntegerField()
    assignment_ttl_minutes = serializers.IntegerField()
    box_iou_threshold = serializers.FloatField()
    is_archived = serializers.BooleanField()
    monitoring_min_window = serializers.IntegerField()
    monitoring_q_threshold = serializers.FloatField()
    monitoring_min_effect = serializers.FloatField()
    monitoring_schedule = serializers.CharField()
    check_rate = serializers.SerializerMethodField()
    check_min_accuracy = serializers.SerializerMethodField()
    check_min_checks = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    role = serializers.SerializerMethodField()
    classes = serializers.SerializerMethodField()

    def _checks(self, obj) -> CheckSettings:
        # Reverse one-to-one, selected with the project; defaults when never set.
        try:
            return obj.check_settings
        except CheckSettings.DoesNotExist:
            return CheckSettings()

    def get_check_rate(self, obj) -> float:
        return self._checks(obj).rate

    def get_check_min_accuracy(self, obj) -> float:
        return self._checks(obj).min_accuracy

    def get_check_min_checks(self, obj) -> int:
        return self._checks(obj).min_checks

    def get_role(self, obj) -> str | None:
        return self.context["roles"].get(obj.pk)

    def get_classes(self, obj) -> list[dict]:
        return _class_rows(obj.classes.all())


def _project_output(request, projects: list[Project]) -> list[dict]:
    roles = access.roles_in_projects(access.caller_of(request), projects)
    return ProjectOutputSerializer(projects, many=True, context={"roles": roles}).data


def _projects_with_classes(queryset):
    return queryset.select_related("check_settings").prefetch_related(
        Prefetch("classes", queryset=LabelClass.objects.order_by("order", "id"))
    )


# --- Projects --------------------------------------------------------------------------
class ProjectListCreateApi(APIView):
    """``GET /projects/``: the caller's projects (all for a superuser).
    ``POST /projects/``: create one (staff or superuser); the creator becomes its manager."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        task_type = serializers.ChoiceField(TaskType.choices, default=TaskType.CLASSIFICATION)
        level = serializers.ChoiceField(MeasurementLevel.values, default=MeasurementLevel.NOMINAL)
        overlap = serializers.IntegerField(min_value=1, max_value=100, default=3)
        classes = ClassInputSerializer(many=True, required=False, default=list)
        dynamic_overlap = serializers.BooleanField(required=False)
        min_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
        max_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
        box_iou_threshold = serializers.FloatField(min_value=0.05, max_value=0.95, required=False)
        description = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=MAX_COMMENT_CHARS
        )
        guideline = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=MAX_GUIDELINE_CHARS
        )

    @extend_schema(responses=paginated(ProjectOutputSerializer(), "PaginatedProjectList"))
    def get(self, request):
        check_query_params(request, frozenset({"page", "page_size"}))
        projects = _projects_with_classes(
            access.visible_projects(access.caller_of(request))
        ).order_by("name", "id")
        paginator = Pagination()
        page = paginator.paginate_queryset(projects, request, view=self)
        return paginator.get_paginated_response(_project_output(request, page))

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request):
        if not access.may_create_projects(access.caller_of(request)):
            raise PermissionDenied("only staff or superusers may create projects")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        classes = [dict(c) for c in data.pop("classes")]
        project = services.create_project(
            classes=classes,
            created_by=request.user,
            guideline_text=data.pop("guideline"),
            **data,
        )
        project = _projects_with_classes(Project.objects.filter(pk=project.pk)).get()
        return Response(_project_output(request, [project])[0], status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/``; ``PATCH`` (managers) changes its settings."""

    allowed_roles = {"GET": READ_ROLES, "PATCH": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(
            required=False, allow_blank=True, max_length=MAX_COMMENT_CHARS
        )
        level = serializers.ChoiceField(MeasurementLevel.values, required=False)
        overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
        dynamic_overlap = serializers.BooleanField(required=False)
        min_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
        max_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
        assignment_ttl_minutes = serializers.IntegerField(
            min_value=1, max_value=MAX_ASSIGNMENT_TTL_MINUTES, required=False
        )
        box_iou_threshold = serializers.FloatField(min_value=0.05, max_value=0.95, required=False)
        is_archived = serializers.BooleanField(required=False)
        # Bounds repeated from labeling.services.MONITORING_BOUNDS (the service checks
        # them again, with the exclusive lower bound of the q threshold).
        monitoring_min_window = serializers.IntegerField(
            min_value=2, max_value=1_000_000, required=False
        )
        monitoring_q_threshold = serializers.FloatField(min_value=0, max_value=0.5, required=False)
        monitoring_min_effect = serializers.FloatField(min_value=0, max_value=10, required=False)
        monitoring_schedule = serializers.ChoiceField(MonitoringSchedule.values, required=False)
        check_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
        check_min_accuracy = serializers.FloatField(min_value=0, max_value=1, required=False)
        check_min_checks = serializers.IntegerField(min_value=1, max_value=10_000, required=False)

    def _output(self, request):
        project = _projects_with_classes(Project.objects.filter(pk=self.project.pk)).get()
        return _project_output(request, [project])[0]

    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request, project_id: int):
        return Response(self._output(request))

    @extend_schema(request=InputSerializer, responses=ProjectOutputSerializer)
    def patch(self, request, project_id: int):
        if not isinstance(request.data, dict):
            raise ApiError(
                f"the body must be a JSON object of settings, got {type(request.data).__name__}",
                errors={"non_field_errors": ["expected a JSON object"]},
            )
        unknown = sorted(set(request.data) - set(self.InputSerializer().fields))
        if unknown:
            raise ApiError(
                f"these fields cannot be changed: {', '.join(unknown)}",
                errors={k: ["cannot be changed"] for k in unknown},
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_project(
            project=self.project, actor=request.user, **serializer.validated_data
        )
        return Response(self._output(request))


# --- Classes and guidelines ------------------------------------------------------------
class ClassListCreateApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/classes/``; ``POST`` (managers) adds a class."""

    allowed_roles = {"GET": READ_ROLES, "POST": MANAGER_ROLES}

    @extend_schema(responses=ClassOutputSerializer(many=True))
    def get(self, request, project_id: int):
        return Response(_class_rows(self.project.classes.order_by("order", "id")))

    @extend_schema(request=ClassInputSerializer, responses={201: ClassOutputSerializer})
    def post(self, request, project_id: int):
        serializer = ClassInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        label_class = services.create_project_class(
            project=self.project, actor=request.user, **serializer.validated_data
        )
        row = _class_rows([label_class])[0]
        return Response(row, status=status.HTTP_201_CREATED)


class GuidelineListCreateApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/guidelines/`` newest first; ``POST`` (managers) publishes the
    next version with optional example items (by external id)."""

    allowed_roles = {"GET": READ_ROLES, "POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_GUIDELINE_CHARS)
        change_note = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=MAX_COMMENT_CHARS
        )
        example_items = serializers.ListField(
            child=serializers.CharField(max_length=255), required=False, default=list
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        version = serializers.IntegerField()
        text = serializers.CharField(max_length=MAX_GUIDELINE_CHARS)
        change_note = serializers.CharField(max_length=MAX_COMMENT_CHARS)
        published_at = serializers.DateTimeField()
        published_by = serializers.SerializerMethodField()
        example_items = serializers.SerializerMethodField()

        def get_published_by(self, obj) -> str | None:
            return obj.published_by.username if obj.published_by_id else None

        def get_example_items(self, obj) -> list[str]:
            return [i.external_id for i in obj.example_items.all()]

    def _guidelines(self):
        return (
            Guideline.objects.filter(project=self.project)
            .select_related("published_by")
            .prefetch_related(
                Prefetch("example_items", queryset=Item.objects.only("id", "external_id"))
            )
            .order_by("-version")
        )

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, project_id: int):
        return Response(self.OutputSerializer(self._guidelines(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, project_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wanted = serializer.validated_data["example_items"]
        found = dict(
            Item.objects.filter(project=self.project, external_id__in=wanted).values_list(
                "external_id", "pk"
            )
        )
        missing = [eid for eid in wanted if eid not in found]
        if missing:
            raise ApiError(
                f"the project has no items {', '.join(missing[:20])}",
                errors={"example_items": [f"unknown external_id {m!r}" for m in missing]},
            )
        guideline = services.publish_guideline(
            project=self.project,
            text=serializer.validated_data["text"],
            change_note=serializer.validated_data["change_note"],
            published_by=request.user,
            example_item_ids=[found[eid] for eid in wanted],
        )
        guideline = self._guidelines().get(pk=guideline.pk)
        return Response(self.OutputSerializer(guideline).data, status=status.HTTP_201_CREATED)


# --- Accounts and members --------------------------------------------------------------
class UserOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class UserCreateApi(APIView):
    """``POST /users/`` ``{username, password?, email?}``: superusers and managers of any
    project create accounts (without a password the account cannot log in yet)."""

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(required=False, allow_blank=True, write_only=True)
        email = serializers.EmailField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={201: UserOutputSerializer})
    def post(self, request):
        if not access.is_any_manager(access.caller_of(request)):
            raise PermissionDenied("only managers and superusers may create accounts")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.create_account(actor=request.user, **serializer.validated_data)
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetailApi(APIView):
    """``PATCH /users/{username}/`` ``{is_active}``: activate an account (e.g. a labeler
    created by a label import). A superuser may change any account; a manager only the
    non-staff members of projects they manage (others are 404 to them), and never another
    manager's account (403)."""

    class InputSerializer(serializers.Serializer):
        is_active = serializers.BooleanField()

    def _target(self, request, username: str):
        return access.account_for(access.caller_of(request), username)

    @extend_schema(request=InputSerializer, responses=UserOutputSerializer)
    def patch(self, request, username: str):
        target = self._target(request, username)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if target.pk == request.user.pk:
            raise ApiError("you cannot change your own account's active state")
        user = services.set_user_active(
            user=target, is_active=serializer.validated_data["is_active"], actor=request.user
        )
        return Response(UserOutputSerializer(user).data)


class MemberListCreateApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/members/`` (viewers, SMEs, managers); ``POST`` (managers)
    ``{user: <username>, role}`` adds a member or changes their role."""

    allowed_roles = {"GET": REVIEW_ROLES, "POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        user = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(Role.choices)

    class OutputSerializer(serializers.Serializer):
        user = serializers.CharField(source="user.username")
        role = serializers.CharField()
        is_active = serializers.BooleanField(source="user.is_active")
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, project_id: int):
        members = (
            ProjectMembership.objects.filter(project=self.project)
            .select_related("user")
            .order_by("user__username")
        )
        return Response(self.OutputSerializer(members, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 201: OutputSerializer},
        description="201 when the account becomes a member, 200 when a member's role changes.",
    )
    def post(self, request, project_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = User.objects.filter(username=serializer.validated_data["user"]).first()
        if user is None:
            raise ApiError(
                f"no account {serializer.validated_data['user']!r}; create it with "
                "POST /api/v1/users/ first",
                errors={"user": ["no such account"]},
            )
        existed = ProjectMembership.objects.filter(project=self.project, user=user).exists()
        membership = services.set_membership(
            project=self.project,
            user=user,
            role=serializer.validated_data["role"],
            actor=request.user,
        )
        return Response(
            self.OutputSerializer(membership).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )


class MemberDetailApi(ProjectScopedMixin, APIView):
    """``DELETE /projects/{id}/members/{username}/`` (managers); the labels stay."""

    allowed_roles = {"DELETE": MANAGER_ROLES}

    @extend_schema(responses={204: None})
    def delete(self, request, project_id: int, username: str):
        membership = (
            ProjectMembership.objects.filter(project=self.project, user__username=username)
            .select_related("user")
            .first()
        )
        if membership is None:
            raise NotFound("no such member")
        services.remove_membership(project=self.project, user=membership.user, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Items -----------------------------------------------------------------------------
ITEM_LIST_PARAMS = frozenset({"page", "page_size", "tag", "status", "external_id", "kind"})


class ItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    kind = serializers.CharField()
    image = serializers.SerializerMethodField()
    thumbnail = serializers.SerializerMethodField()
    image_url = serializers.CharField()
    text = serializers.CharField()
    audio_url = serializers.CharField()
    metadata = serializers.DictField(child=serializers.JSONField())
    tags = serializers.SerializerMethodField()
    stats_status = serializers.CharField()
    stats_error = serializers.CharField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    mean_brightness = serializers.FloatField(allow_null=True)
    perceptual_hash = serializers.CharField()
    content_hash = serializers.CharField()
    source_batch = serializers.IntegerField(source="source_batch_id", allow_null=True)
    n_annotations = serializers.IntegerField(source="n_current")
    status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_image(self, obj) -> str | None:
        # Only the membership-checked view serves files, with a safe content type.
        return reverse("item-image", args=[obj.pk]) if obj.image else None

    def get_thumbnail(self, obj) -> str | None:
        return reverse("item-thumbnail", args=[obj.pk]) if obj.thumbnail else None

    def get_tags(self, obj) -> list[str]:
        return sorted(t.name for t in obj.tags.all())

    def get_status(self, obj) -> str:
        # labeling.selectors.items_with_counts: the one rule, dynamic overlap honoured.
        return obj.item_status


class ItemListApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/items/``: paginated; filters ``metadata.<key>=``, ``tag=``,
    ``status=unlabeled|in_progress|complete``, ``external_id=``, ``kind=`` (an allow-list)."""

    allowed_roles = {"GET": READ_ROLES}

    @extend_schema(
        parameters=[
            OpenApiParameter("tag", str),
            OpenApiParameter(
                "status",
                str,
                description="unlabeled | in_progress | complete (vs. the item's overlap target)",
            ),
            OpenApiParameter("external_id", str),
            OpenApiParameter("kind", str),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated(ItemOutputSerializer(), "PaginatedItemList"),
    )
    def get(self, request, project_id: int):
        params = request.query_params
        check_query_params(request, ITEM_LIST_PARAMS, prefixes=("metadata.",))
        metadata = {
            k[len("metadata.") :]: v for k, v in params.items() if k.startswith("metadata.")
        }
        try:
            items = selectors.filter_items(
                self.project,
                metadata=metadata,
                tag=params.get("tag") or None,
                status=params.get("status") or None,
                external_id=params.get("external_id") or None,
                kind=params.get("kind") or None,
            )
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        items = items.prefetch_related("tags")
        paginator = Pagination()
        page = paginator.paginate_queryset(items, request, view=self)
        data = ItemOutputSerializer(page, many=True).data
        return paginator.get_paginated_response(data)


ITEM_FILTER_KEYS = frozenset({"tag", "status", "external_id", "kind"})


class ItemTagsApi(ProjectScopedMixin, APIView):
    """``POST /projects/{id}/items/tags/`` (managers): add and remove tags on many items,
    named by external ids (``items``) or by the item list's filters (``filters``:
    ``{"metadata.<key>": value, tag, status, kind, external_id}``). An unknown external
    id is a 400 naming its position; nothing is written then. Answers with the counts
    and every tag's item count."""

    allowed_roles = {"POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(
            child=serializers.CharField(), required=False, help_text="external ids"
        )
        filters = serializers.DictField(
            child=serializers.CharField(), required=False, help_text="as on the item list"
        )
        add = serializers.ListField(child=serializers.CharField(), required=False)
        remove = serializers.ListField(child=serializers.CharField(), required=False)

    class OutputSerializer(serializers.Serializer):
        n_items = serializers.IntegerField()
        added = serializers.DictField(child=serializers.IntegerField())
        removed = serializers.DictField(child=serializers.IntegerField())
        tag_counts = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request, project_id: int):
        data = request.data
        if not isinstance(data, dict):
            raise ApiError("the body must be a JSON object {items | filters, add?, remove?}")
        unknown = sorted(set(data) - {"items", "filters", "add", "remove"})
        if unknown:
            raise ApiError(f"unknown field(s) {', '.join(unknown)}", errors=unknown)
        for field in ("items", "add", "remove"):
            if field in data and not isinstance(data[field], list):
                raise ApiError(f"{field} must be a list", errors={field: ["must be a list"]})
        options = {"add": data.get("add") or [], "remove": data.get("remove") or []}
        if "filters" in data:
            if "items" in data:
                raise ApiError("send items or filters, not both", errors=["items", "filters"])
            options["item_ids"] = self._filtered(data["filters"])
        else:
            options["external_ids"] = data.get("items")
        result = services.change_item_tags(project=self.project, actor=request.user, **options)
        return Response(result)

    def _filtered(self, filters) -> list[int]:
        if not isinstance(filters, dict) or not filters:
            raise ApiError("filters must be a non-empty object", errors={"filters": ["empty"]})
        bad = sorted(
            k for k in filters if k not in ITEM_FILTER_KEYS and not k.startswith("metadata.")
        )
        if bad:
            raise ApiError(f"unknown filter(s) {', '.join(bad)}", errors={"filters": bad})
        metadata = {
            k[len("metadata.") :]: str(v) for k, v in filters.items() if k.startswith("metadata.")
        }
        try:
            items = selectors.filter_items(
                self.project,
                metadata=metadata,
                **{k: str(filters[k]) for k in ITEM_FILTER_KEYS if filters.get(k)},
            )
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        return list(items.values_list("id", flat=True))


class ItemDetailApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/items/{item_id}/``."""

    allowed_roles = {"GET": READ_ROLES}

    @extend_schema(responses=ItemOutputSerializer)
    def get(self, request, project_id: int, item_id: int):
        item = get_object_or_404(
            selectors.items_with_counts(self.project).prefetch_related("tags"), pk=item_id
        )
        return Response(ItemOutputSerializer(item).data)


class ItemByIdApi(ProjectScopedMixin, APIView):
    """``GET /items/{item_id}/``: the same, addressed by the item alone (404 to non-members)."""

    allowed_roles = {"GET": READ_ROLES}
    scope_model = Item
    scope_url_kwarg = "item_id"

    @extend_schema(responses=ItemOutputSerializer)
    def get(self, request, item_id: int):
        item = self.object
        item = selectors.items_with_counts(item.project).prefetch_related("tags").get(pk=item_id)
        return Response(ItemOutputSerializer(item).data)


# --- Annotations and progress ----------------------------------------------------------
ANNOTATION_LIST_PARAMS = frozenset({"page", "page_size", "labeler", "item", "include_revisions"})


class AnnotationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    labeler = serializers.CharField(source="labeler.username")
    value = serializers.SerializerMethodField()
    label_class = serializers.SerializerMethodField()
    value_number = serializers.FloatField(allow_null=True)
    value_text = serializers.CharField()
    guideline_version = serializers.SerializerMethodField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField()
    source = serializers.CharField()
    is_current = serializers.BooleanField()
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(LABEL_VALUE_SCHEMA)
    def get_value(self, obj) -> str | float | list[dict] | None:
        return selectors.annotation_value(obj)

    def get_label_class(self, obj) -> str | None:
        return obj.label_class.key if obj.label_class_id else None

    def get_guideline_version(self, obj) -> int | None:
        return obj.guideline.version if obj.guideline_id else None


class AnnotationListApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/annotations/``: current annotations (``?include_revisions=1``
    for superseded ones too), filter ``labeler=<username>``, ``item=<external id>``.
    A labeler sees only their own; viewers, SMEs and managers see all."""

    allowed_roles = {"GET": READ_ROLES}

    @extend_schema(
        parameters=[
            OpenApiParameter("labeler", str),
            OpenApiParameter("item", str, description="the item's external id"),
            OpenApiParameter("include_revisions", bool),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated(AnnotationOutputSerializer(), "PaginatedAnnotationList"),
    )
    def get(self, request, project_id: int):
        check_query_params(request, ANNOTATION_LIST_PARAMS)
        params = request.query_params
        own_only = self.role not in REVIEW_ROLES
        annotations = selectors.filter_annotations(
            self.project,
            labeler_id=request.user.pk if own_only else None,
            labeler_username=params.get("labeler") or None,
            item_external_id=params.get("item") or None,
            include_revisions=_truthy(params.get("include_revisions")),
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(annotations, request, view=self)
        return paginator.get_paginated_response(AnnotationOutputSerializer(page, many=True).data)


class ProjectProgressSerializer(serializers.Serializer):
    n_items = serializers.IntegerField()
    n_annotations = serializers.IntegerField(help_text="current annotations")
    n_items_complete = serializers.IntegerField(help_text="target reached (dynamic overlap)")
    fraction = serializers.FloatField(help_text="labels towards the targets / targets, 0-1")


class LabelerProgressRowSerializer(serializers.Serializer):
    labeler = serializers.CharField()
    role = serializers.CharField(allow_null=True, help_text="null: no longer a member")
    is_active = serializers.BooleanField()
    n_current = serializers.IntegerField()
    n_revisions = serializers.IntegerField()


class ProgressApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/progress/``: project progress and per-labeler counts (a labeler
    sees only their own row)."""

    allowed_roles = {"GET": READ_ROLES}

    class OutputSerializer(serializers.Serializer):
        project = ProjectProgressSerializer()
        labelers = LabelerProgressRowSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request, project_id: int):
        own_only = self.role not in REVIEW_ROLES
        return Response(
            {
                "project": selectors.project_progress(self.project),
                "labelers": selectors.labeler_progress_detail(
                    self.project, labeler_id=request.user.pk if own_only else None
                ),
            }
        )


# --- Imports ---------------------------------------------------------------------------
class RawBodyParser(BaseParser):
    """Hands the body over unparsed: the import services parse it and number the rows."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


class FormatParamIsNotARenderer(DefaultContentNegotiation):
    """``?format=`` names an import format on these endpoints, not an output renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ImportRowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text="1-based; null: the whole file")
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


IMPORT_RESULT = inline_serializer(
    "ImportResult",
    {
        "source_batch": serializers.IntegerField(),
        "n_rows": serializers.IntegerField(),
        "n_created": serializers.IntegerField(),
        "n_updated": serializers.IntegerField(),
        "n_errors": serializers.IntegerField(),
        "errors": ImportRowErrorSerializer(many=True, help_text="rows refused (partial)"),
    },
)


class UploadApi(ProjectScopedMixin, APIView):
    """Base of the upload endpoints (imports, model runs): a multipart ``file`` or the raw
    body, within ``CONCORD_MAX_IMPORT_BYTES``, its format from the Content-Type or name."""

    allowed_roles = {"POST": MANAGER_ROLES}
    parser_classes = [MultiPartParser, RawBodyParser]
    body_limit = "import"  # config.limits
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatParamIsNotARenderer
    accepted_params: frozenset = frozenset({"partial"})

    def _read_upload(self, request) -> tuple[bytes, str, str]:
        """(bytes, format, origin) of the request: a multipart ``file`` or the raw body."""
        check_query_params(request, self.accepted_params)
        limit = settings.CONCORD_MAX_IMPORT_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise ApiError(
                f"the upload is {declared} bytes; the limit is {limit} bytes",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        content_type = request.content_type or ""
        try:
            if content_type.startswith("multipart/form-data"):
                upload = request.FILES.get("file")
                if upload is None:
                    raise ImportRejected("send the file in the multipart field 'file'")
                if upload.size > limit:
                    raise ImportRejected(
                        f"the file is {upload.size} bytes; the limit is {limit} bytes",
                        status=413,
                    )
                fmt = detect_format(filename=upload.name or "")
                return upload.read(), fmt, upload.name or ""
            fmt = detect_format(content_type=content_type)
            data = request.data if isinstance(request.data, bytes) else request.body
            return data, fmt, request.META.get("HTTP_X_FILENAME", "")[:500]
        except ImportRejected as exc:
            raise _api_error(exc) from exc


def _api_error(exc: ImportRejected) -> ApiError:
    return ApiError(exc.message, errors=exc.errors, status_code=exc.status)


class ItemImportApi(UploadApi):
    """``POST /projects/{id}/items/import/`` (managers): JSON list, JSONL
    (``application/x-ndjson``), CSV (``text/csv``, ``metadata.<key>`` columns, ``tags``
    separated by ``;`` or ``,``), or a zip of images with a manifest; or a multipart upload
    in ``file`` (format from its extension). ``?partial=true`` stores the valid rows of a
    file with errors; ``?fetch_images=true`` fetches ``image_url`` images for statistics.
    201 with counts; 400/413 with ``errors: [{row, field, message}]`` and nothing stored."""

    accepted_params = frozenset({"partial", "fetch_images"})

    @extend_schema(
        request={"application/json": {}, "application/x-ndjson": {}, "text/csv": {}},
        parameters=[OpenApiParameter("partial", bool), OpenApiParameter("fetch_images", bool)],
        responses={201: IMPORT_RESULT, **error_responses(409)},
    )
    def post(self, request, project_id: int):
        data, fmt, origin = self._read_upload(request)
        try:
            result = import_items(
                project=self.project,
                data=data,
                fmt=fmt,
                actor=request.user,
                origin=origin,
                content_type=request.content_type or "",
                partial=_truthy(request.query_params.get("partial")),
                fetch_image_urls=_truthy(request.query_params.get("fetch_images")),
            )
        except ImportRejected as exc:
            raise _api_error(exc) from exc
        return Response(result.as_dict(), status=status.HTTP_201_CREATED)


class AnnotationImportApi(UploadApi):
    """``POST /projects/{id}/annotations/import/`` (managers): historical labels
    ``{item, labeler, value, created_at?, guideline_version?, time_spent_ms?, comment?,
    gold?}`` as JSON, JSONL or CSV, or a Label Studio JSON export (recognised by its tasks'
    ``data`` and ``annotations``, or named with ``?format=label_studio``).

    Detection projects also take a COCO JSON file (recognised by its ``images``,
    ``annotations`` and ``categories``, or ``?format=coco``) and a YOLO zip of images and
    label files (``application/zip`` or ``?format=yolo``); ``?labeler=`` names the labeler
    when the file does not, ``?gold=true`` makes the labels ground truth."""

    accepted_params = frozenset({"partial", "format", "base_url", "labeler", "gold"})
    NAMED_FORMATS = ("label_studio", "coco", "yolo")

    @extend_schema(
        request={
            "application/json": {},
            "application/x-ndjson": {},
            "text/csv": {},
            "application/zip": {},
        },
        parameters=[
            OpenApiParameter("partial", bool),
            OpenApiParameter("format", str, enum=["label_studio", "coco", "yolo"]),
            OpenApiParameter(
                "base_url", str, description="Label Studio server, for /data/upload paths"
            ),
            OpenApiParameter(
                "labeler", str, description="COCO / YOLO: the labeler of boxes naming none"
            ),
            OpenApiParameter("gold", bool, description="COCO / YOLO: import as ground truth"),
        ],
        responses={201: IMPORT_RESULT, **error_responses(409)},
    )
    def post(self, request, project_id: int):
        data, fmt, origin = self._read_upload(request)
        named = request.query_params.get("format")
        if named not in (None, "", *self.NAMED_FORMATS):
            raise ApiError(
                f"unknown format {named!r}; the named formats are {', '.join(self.NAMED_FORMATS)}",
                errors=[{"row": None, "field": "format", "message": "unknown format"}],
            )
        options = {
            "project": self.project,
            "data": data,
            "actor": request.user,
            "origin": origin,
            "content_type": request.content_type or "",
            "partial": _truthy(request.query_params.get("partial")),
        }
        labeler = request.query_params.get("labeler", "").strip()
        gold = _truthy(request.query_params.get("gold"))
        try:
            if named == "label_studio":
                result = import_label_studio_file(
                    base_url=request.query_params.get("base_url", ""), **options
                )
            elif named == "coco":
                result = import_coco(labeler=labeler or None, gold=gold, **options)
            elif named == "yolo" or fmt == "zip":
                result = import_yolo(labeler=labeler, gold=gold, **options)
            elif fmt == "json" and looks_like_coco(data):
                result = import_coco(labeler=labeler or None, gold=gold, **options)
            else:
                result = import_annotations(
                    fmt=fmt, base_url=request.query_params.get("base_url", ""), **options
                )
        except ImportRejected as exc:
            raise _api_error(exc) from exc
        return Response(result.as_dict(), status=status.HTTP_201_CREATED)


urlpatterns = [
    path("projects/", ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", ProjectDetailApi.as_view(), name="api-project"),
    path(
        "projects/<int:project_id>/classes/",
        ClassListCreateApi.as_view(),
        name="api-project-classes",
    ),
    path(
        "projects/<int:project_id>/guidelines/",
        GuidelineListCreateApi.as_view(),
        name="api-project-guidelines",
    ),
    path("users/", UserCreateApi.as_view(), name="api-users"),
    path("users/<str:username>/", UserDetailApi.as_view(), name="api-user"),
    path(
        "projects/<int:project_id>/members/",
        MemberListCreateApi.as_view(),
        name="api-project-members",
    ),
    path(
        "projects/<int:project_id>/members/<str:username>/",
        MemberDetailApi.as_view(),
        name="api-project-member",
    ),
    path("projects/<int:project_id>/items/", ItemListApi.as_view(), name="api-project-items"),
    path(
        "projects/<int:project_id>/items/import/",
        ItemImportApi.as_view(),
        name="api-items-import",
    ),
    path("projects/<int:project_id>/items/tags/", ItemTagsApi.as_view(), name="api-items-tags"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/",
        ItemDetailApi.as_view(),
        name="api-project-item",
    ),
    path("items/<int:item_id>/", ItemByIdApi.as_view(), name="api-item"),
    path(
        "projects/<int:project_id>/annotations/",
        AnnotationListApi.as_view(),
        name="api-project-annotations",
    ),
    path(
        "projects/<int:project_id>/annotations/import/",
        AnnotationImportApi.as_view(),
        name="api-annotations-import",
    ),
    path("projects/<int:project_id>/progress/", ProgressApi.as_view(), name="api-progress"),
]
