"""OpenAPI schema generation: nested ``Input``/``Output`` serializers (one pair per API
class, as in the house style) get component names prefixed with their API class, so
``NextItemApi.OutputSerializer`` becomes ``NextItemOutput`` instead of colliding."""

from drf_spectacular.openapi import AutoSchema


class ConcordAutoSchema(AutoSchema):
    def _get_serializer_name(self, serializer, direction, bypass_extensions=False):
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        owner = type(serializer).__qualname__.split(".")
        if len(owner) > 1:
            prefix = owner[-2].removesuffix("Api").removesuffix("View")
            return f"{prefix}{name}"
        return name
