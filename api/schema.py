"""OpenAPI schema generation: nested ``Input``/``Output`` serializers (one pair per API
class, as in the house style) get component names prefixed with their API class, so
``NextItemApi.OutputSerializer`` becomes ``NextItemOutput`` instead of colliding."""

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission


class SchemaAccess(BasePermission):
    """The schema and its pages: anyone when ``CONCORD_SCHEMA_PUBLIC`` (the default: they
    describe the API, not a project's data), else signed-in users only."""

    def has_permission(self, request, view) -> bool:
        return settings.CONCORD_SCHEMA_PUBLIC or bool(
            request.user and request.user.is_authenticated
        )


PAGINATED_MARK = "concord_paginated"


def _is_paginated(serializer) -> bool:
    if isinstance(serializer, dict) and serializer:
        serializer = {str(code): s for code, s in serializer.items()}
        serializer = serializer[min(serializer)]
    return getattr(serializer, PAGINATED_MARK, False)


class ConcordAutoSchema(AutoSchema):
    def get_operation_id(self):
        # A page of a list is an object, so drf-spectacular would name the operation
        # ``..._retrieve`` (colliding with the detail route); it is a list.
        if self.method == "GET" and _is_paginated(self.get_response_serializers()):
            tokens = [t.replace("-", "_") for t in self._tokenize_path()]
            return "_".join([*tokens, "list"])
        return super().get_operation_id()

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
