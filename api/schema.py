"""OpenAPI schema generation: nested ``Input``/``Output`` serializers (one pair per API
class, as in the house style) get component names prefixed with their API class, so
``NextItemApi.OutputSerializer`` becomes ``NextItemOutput`` instead of colliding."""

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission


class SchemaAccess(BasePermission):
    """The schema and its pages: anyone when ``CONCORD_SCHEMA_PUBLIC`` (the default: they
    describe the API, not a project's data), else signed-in users only."""

    def has_permission(self, request, view) -> bool:
        return settings.CONCORD_SCHEMA_PUBLIC or bool(
            request.user and request.user.is_authenticated
        )


# A label's value as people and pipelines see it (``labeling.selectors.label_value``):
# a class key, a number (rating), a text (transcription), or a list of boxes (detection).
BOX_SCHEMA = {
    "type": "object",
    "properties": {
        "class": {"type": "string"},
        "x": {"type": "number"},
        "y": {"type": "number"},
        "w": {"type": "number"},
        "h": {"type": "number"},
    },
    "required": ["class", "x", "y", "w", "h"],
}
# anyOf with ``nullable`` in each branch: OpenAPI 3.0 has no null type, and a ``oneOf``
# would refuse a null that every nullable branch matches.
LABEL_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "string", "nullable": True, "description": "class key or transcript"},
        {"type": "number", "nullable": True, "description": "rating"},
        {
            "type": "array",
            "items": BOX_SCHEMA,
            "nullable": True,
            "description": "boxes in pixels, [] = nothing there (detection)",
        },
    ],
}


@extend_schema_field(LABEL_VALUE_SCHEMA)
class LabelValueField(serializers.JSONField):
    """An output field holding a label's value (class key, number, text or boxes)."""


PAGINATED_MARK = "concord_paginated"


def _is_paginated(serializer) -> bool:
    if isinstance(serializer, dict) and serializer:
        serializer = {str(code): s for code, s in serializer.items()}
        serializer = serializer[min(serializer)]
    return getattr(serializer, PAGINATED_MARK, False)


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx (``api.errors.exception_handler``)."""

    detail = serializers.CharField(help_text="one sentence a person can act on")
    errors = serializers.JSONField(
        required=False,
        help_text="the fields at fault ({field: [messages]}), or the rows at fault for bulk "
        "input ([{row, field, message}])",
    )


# Every operation can answer these: a bad query parameter or page (400, 404 for a page
# past the end), a missing or refused credential (401, 403), an object the caller may not
# see (404). Operations with a body add 413 (over the body limit) and 415 (a Content-Type
# no parser reads). An operation declares any other error status (409, 429) itself.
ERROR_STATUSES = ("400", "401", "403", "404")
BODY_ERROR_STATUSES = ("413", "415")


def error_responses(*codes: int) -> dict:
    """``{code: ErrorSerializer}`` for ``extend_schema(responses=...)``: the error statuses
    an operation answers beyond the ones every operation documents."""
    return {code: ErrorSerializer for code in codes}


class ConcordAutoSchema(AutoSchema):
    def get_operation_id(self):
        # A page of a list is an object, so drf-spectacular would name the operation
        # ``..._retrieve`` (colliding with the detail route); it is a list.
        if self.method == "GET" and _is_paginated(self.get_response_serializers()):
            tokens = [t.replace("-", "_") for t in self._tokenize_path()]
            return "_".join([*tokens, "list"])
        return super().get_operation_id()

    def _error_statuses(self) -> tuple[str, ...]:
        anonymous = not self.view.get_authenticators() or any(
            getattr(p, "__name__", "") == "AllowAny"
            for p in getattr(self.view, "permission_classes", ())
        )
        codes = ("400",) if anonymous else ERROR_STATUSES
        if self.method in ("POST", "PUT", "PATCH"):
            codes += BODY_ERROR_STATUSES
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code in self._error_statuses():
                if code not in responses:
                    responses[code] = self._get_response_for_code(
                        ErrorSerializer, code, direction=direction
                    )
        return dict(sorted(responses.items()))

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False):
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        owner = type(serializer).__qualname__.split(".")
        if len(owner) > 1:
            prefix = owner[-2].removesuffix("Api").removesuffix("View")
            return f"{prefix}{name}"
        return name


def paginated(child, name: str):
    """The documented shape of a page-number paginated list: ``{count, next, previous,
    results: [child]}`` (``child`` a serializer instance or field), as component ``name``.

    ``APIView`` lists paginate by hand, which drf-spectacular cannot see; their
    ``extend_schema`` names this instead of ``Serializer(many=True)``.
    """
    page = inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializers.ListField(child=child),
        },
    )
    setattr(page, PAGINATED_MARK, True)
    return page
