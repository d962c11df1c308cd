"""Ground-truth checks in the labeling stream (issue 11, item 6), for managers.

``GET|POST|PATCH|DELETE /projects/{id}/checks/``: the settings (rate, min_accuracy,
min_checks), the items marked as checks and each labeler's accuracy on them; ``POST``
``{items: [external ids]}`` marks ground-truth items as checks, ``DELETE`` with the same
body unmarks them, ``PATCH {rate?, min_accuracy?, min_checks?}`` changes the settings.
``POST /projects/{id}/checks/labelers/{username}/resume/`` resumes a paused labeler and
resolves their open pause flag (``consistency.pause_flags``).

Managers only: a labeler must never learn which items are checks. Thin: every operation
calls ``labeling.assignment``, ``labeling.selectors`` or ``consistency.pause_flags``.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from consistency import pause_flags
from labeling import assignment, selectors, services
from labeling.access import MANAGER_ROLES
from labeling.models import ProjectMembership

User = get_user_model()
MAX_ITEMS = 10_000


def checks_payload(project) -> dict:
    return {
        "settings": selectors.check_settings(project),
        "items": selectors.check_items(project),
        "labelers": selectors.check_accuracy(project),
    }


class ChecksApi(ProjectScopedMixin, APIView):
    """The project's ground-truth checks: settings, items, labelers' accuracy."""

    allowed_roles = {
        "GET": MANAGER_ROLES,
        "POST": MANAGER_ROLES,
        "PATCH": MANAGER_ROLES,
        "DELETE": MANAGER_ROLES,
    }
    body_limit = "small"

    class ItemsSerializer(serializers.Serializer):
        items = serializers.ListField(
            child=serializers.CharField(max_length=255), min_length=1, max_length=MAX_ITEMS
        )

    class SettingsSerializer(serializers.Serializer):
        rate = serializers.FloatField(required=False, min_value=0, max_value=1)
        min_accuracy = serializers.FloatField(required=False, min_value=0, max_value=1)
        min_checks = serializers.IntegerField(required=False, min_value=1, max_value=10_000)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, project_id: int):
        return Response(checks_payload(self.project))

    def _mark(self, request, is_check: bool) -> Response:
        data = self.ItemsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changed = assignment.mark_checks(
            project=self.project,
            external_ids=data.validated_data["items"],
            is_check=is_check,
            actor=request.user,
        )
        return Response({"changed": changed, **checks_payload(self.project)})

    @extend_schema(request=ItemsSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, project_id: int):
        return self._mark(request, True)

    @extend_schema(request=ItemsSerializer, responses={200: OpenApiTypes.OBJECT})
    def delete(self, request, project_id: int):
        return self._mark(request, False)

    @extend_schema(request=SettingsSerializer, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request, project_id: int):
        data = self.SettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.update_check_settings(
            project=self.project, actor=request.user, **data.validated_data
        )
        return Response(checks_payload(self.project))


class ResumeLabelerApi(ProjectScopedMixin, APIView):
    """A manager resumes a labeler paused for their accuracy on checks."""

    allowed_roles = {"POST": MANAGER_ROLES}
    body_limit = "small"

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, project_id: int, username: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = (
            ProjectMembership.objects.filter(project=self.project, user__username=username)
            .select_related("user")
            .first()
        )
        if membership is None:
            raise NotFound("no such member")
        # Resumes and resolves the labeler's open pause flag in one transaction.
        pause_flags.resume_labeler(
            project=self.project,
            labeler=membership.user,
            actor=request.user,
            reason=data.validated_data.get("reason", ""),
        )
        rows = selectors.check_accuracy(self.project, labeler_id=membership.user_id)
        return Response(rows[0] if rows else {}, status=status.HTTP_200_OK)


urlpatterns = [
    path("projects/<int:project_id>/checks/", ChecksApi.as_view(), name="api-checks"),
    path(
        "projects/<int:project_id>/checks/labelers/<str:username>/resume/",
        ResumeLabelerApi.as_view(),
        name="api-checks-resume",
    ),
]
