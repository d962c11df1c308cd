"""The labeling loop over REST: next item, submit a label, skip, send back for relabeling.

Thin: every operation calls ``labeling.assignment``. A labeler's responses carry only
their own labels (never anyone else's): the item payload has no annotations, and the
annotation returned is the one just written.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from api.schema import LabelValueField
from consistency import pause_flags
from labeling import assignment as assignment_service
from labeling import selectors
from labeling.access import LABEL_ROLES, MANAGER_ROLES
from labeling.models import (
    MAX_COMMENT_CHARS,
    MAX_TIME_SPENT_MS,
    AnnotationSource,
    Assignment,
    Item,
    Project,
)

User = get_user_model()


def class_rows(project: Project) -> list[dict]:
    """The classes a labeler can choose, in the display order of every page
    (``labeling.selectors.display_classes``)."""
    fields = ("key", "name", "description", "rank", "value", "is_borderline", "shortcut")
    return [{f: row[f] for f in fields} for row in selectors.display_classes(project)]


def item_payload(request, item: Item) -> dict:
    """What a labeler needs to label the item: payload and metadata, no labels."""
    image = None
    if item.image:
        image = request.build_absolute_uri(reverse("item-image", args=[item.pk]))
    return {
        "id": item.pk,
        "external_id": item.external_id,
        "kind": item.kind,
        "image": image,
        "image_url": item.image_url or None,
        "text": item.text or None,
        "audio_url": item.audio_url or None,
        "metadata": item.metadata,
    }


class OwnAnnotationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField()
    labeler = serializers.CharField()
    value = LabelValueField()
    guideline_version = serializers.IntegerField(allow_null=True)
    time_spent_ms = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    is_current = serializers.BooleanField()
    supersedes = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


def annotation_payload(annotation) -> dict:
    return {
        "id": annotation.pk,
        "item": annotation.item_id,
        "labeler": annotation.labeler.get_username(),
        "value": selectors.annotation_value(annotation),
        "guideline_version": annotation.guideline.version if annotation.guideline_id else None,
        "time_spent_ms": annotation.time_spent_ms,
        "comment": annotation.comment,
        "is_current": annotation.is_current,
        "supersedes": annotation.supersedes_id,
        "created_at": annotation.created_at,
    }


class HandedAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
    reason = serializers.CharField(help_text="overlap | relabel")


class HandedItemSerializer(serializers.Serializer):
    """``item_payload``: what a labeler sees of an item (never anyone's labels)."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    kind = serializers.CharField()
    image = serializers.URLField(allow_null=True, help_text="the stored image, if any")
    image_url = serializers.CharField(allow_null=True)
    text = serializers.CharField(allow_null=True)
    audio_url = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.JSONField())


class LabelerClassSerializer(serializers.Serializer):
    """``class_rows``: a class as the labeler chooses it, in display order."""

    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    rank = serializers.IntegerField(allow_null=True)
    value = serializers.FloatField(allow_null=True)
    is_borderline = serializers.BooleanField()
    shortcut = serializers.CharField(allow_blank=True)


class GuidelineTextSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)


class LabelerProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="the caller's current labels in the project")
    total = serializers.IntegerField(help_text="done + held + still open to the caller")


class NextItemApi(ProjectScopedMixin, APIView):
    """``GET /projects/{id}/next-item/``: the caller's next item, or 204 when none."""

    allowed_roles = {"GET": LABEL_ROLES}

    class OutputSerializer(serializers.Serializer):
        assignment = HandedAssignmentSerializer()
        item = HandedItemSerializer()
        guideline = GuidelineTextSerializer(allow_null=True)
        classes = LabelerClassSerializer(many=True)
        progress = LabelerProgressSerializer()

    @extend_schema(responses={200: OutputSerializer, 204: None})
    def get(self, request, project_id: int):
        handed = assignment_service.next_item_for(self.project, request.user)
        if handed is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        guideline = selectors.current_guideline(self.project)
        return Response(
            {
                "assignment": {
                    "id": handed.pk,
                    "expires_at": handed.expires_at,
                    "reason": handed.reason,
                },
                "item": item_payload(request, handed.item),
                "guideline": (
                    {"version": guideline.version, "text": guideline.text} if guideline else None
                ),
                "classes": class_rows(self.project),
                "progress": assignment_service.labeler_progress(self.project, request.user),
            }
        )


class SubmitAnnotationApi(ProjectScopedMixin, APIView):
    """``POST /items/{id}/annotations/``: the caller's label; a second POST revises it."""

    allowed_roles = {"POST": LABEL_ROLES}
    scope_model = Item
    scope_url_kwarg = "item_id"
    body_limit = "small"

    class InputSerializer(serializers.Serializer):
        value = serializers.JSONField()
        time_spent_ms = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=MAX_TIME_SPENT_MS
        )
        comment = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=MAX_COMMENT_CHARS
        )
        assignment = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(request=InputSerializer, responses={201: OwnAnnotationSerializer})
    def post(self, request, item_id: int):
        item = self.object
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = assignment_service.submit_label(
            item=item,
            labeler=request.user,
            value=data.validated_data["value"],
            time_spent_ms=data.validated_data.get("time_spent_ms"),
            comment=data.validated_data.get("comment", ""),
            assignment_id=data.validated_data.get("assignment"),
            source=AnnotationSource.API,
        )
        # A check answer may just have paused the labeler: the manager's flag follows.
        pause_flags.flag_if_paused(item.project, request.user.pk)
        return Response(annotation_payload(annotation), status=status.HTTP_201_CREATED)


class SkipAssignmentApi(ProjectScopedMixin, APIView):
    """``POST /assignments/{id}/skip/``: pass on the item; it is not offered again."""

    allowed_roles = {"POST": LABEL_ROLES}
    scope_model = Assignment
    scope_url_kwarg = "assignment_id"

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request, assignment_id: int):
        handed = self.object
        if handed.labeler_id != request.user.pk:
            # Someone else's assignment: do not confirm it exists.
            return Response({"detail": "not found"}, status=status.HTTP_404_NOT_FOUND)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment_service.skip_assignment(
            assignment=handed, labeler=request.user, reason=data.validated_data["reason"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RelabelAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(help_text="item id")
    labeler = serializers.IntegerField(help_text="labeler (user) id")


class RelabelApi(ProjectScopedMixin, APIView):
    """``POST /projects/{id}/relabel/ {items: [external ids], labelers?: [usernames],
    reason}``: managers send items back. Without ``labelers`` the items go back to the
    labelers who labeled them."""

    allowed_roles = {"POST": MANAGER_ROLES}

    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(
            child=serializers.CharField(max_length=500), min_length=1, max_length=100_000
        )
        labelers = serializers.ListField(
            child=serializers.CharField(max_length=150), required=False, allow_null=True
        )
        reason = serializers.CharField(max_length=MAX_COMMENT_CHARS)

        def validate_labelers(self, names):
            repeated = sorted({n for n in names or () if names.count(n) > 1})
            if repeated:
                raise serializers.ValidationError(f"listed more than once: {', '.join(repeated)}")
            return names

    class OutputSerializer(serializers.Serializer):
        assignments = RelabelAssignmentSerializer(many=True)
        n_assignments = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        external_ids = data.validated_data["items"]
        found = dict(
            Item.objects.filter(project=self.project, external_id__in=external_ids).values_list(
                "external_id", "pk"
            )
        )
        unknown = [e for e in external_ids if e not in found]
        if unknown:
            return Response(
                {"detail": f"unknown items: {', '.join(unknown[:20])}", "errors": unknown},
                status=status.HTTP_400_BAD_REQUEST,
            )
        labelers = None
        names = data.validated_data.get("labelers")
        if names:
            users = {u.get_username(): u for u in User.objects.filter(username__in=names)}
            missing = [n for n in names if n not in users]
            if missing:
                return Response(
                    {"detail": f"unknown labelers: {', '.join(missing)}", "errors": missing},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            labelers = [users[n] for n in names]
        created = assignment_service.request_relabel(
            project=self.project,
            item_ids=found.values(),
            labelers=labelers,
            reason=data.validated_data["reason"],
            actor=request.user,
        )
        return Response(
            {
                "assignments": [
                    {"id": a.pk, "item": a.item_id, "labeler": a.labeler_id} for a in created
                ],
                "n_assignments": len(created),
            },
            status=status.HTTP_201_CREATED,
        )


urlpatterns = [
    path("projects/<int:project_id>/next-item/", NextItemApi.as_view(), name="api-next-item"),
    path(
        "items/<int:item_id>/annotations/",
        SubmitAnnotationApi.as_view(),
        name="api-item-annotations",
    ),
    path(
        "assignments/<int:assignment_id>/skip/",
        SkipAssignmentApi.as_view(),
        name="api-assignment-skip",
    ),
    path("projects/<int:project_id>/relabel/", RelabelApi.as_view(), name="api-relabel"),
]
