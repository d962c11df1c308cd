"""Request body limits per endpoint, answered with a 413 before the body is read.

DRF's JSON parser reads the whole body whatever ``DATA_UPLOAD_MAX_MEMORY_SIZE`` says, so
without this an anonymous 200 MB JSON to ``/api/v1/auth/token/`` is read into memory. A
view declares its class of body with ``body_limit``:

* ``"small"`` (``CONCORD_MAX_SMALL_BODY_BYTES``, 64 KiB): log-in, token, one annotation;
* ``"import"`` (``CONCORD_MAX_IMPORT_BYTES``): file imports and model-run uploads, which
  the views stream and check themselves;
* anything else: ``CONCORD_MAX_BODY_BYTES`` (2 MiB).

The declared ``Content-Length`` is what is checked (Django reads no more than it), so a
refused body is never read.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

# Django's own log-in page cannot carry the attribute.
SMALL_URL_NAMES = frozenset({"login"})


def body_limit_bytes(request, view_func) -> int:
    """The largest body (bytes) the view at ``view_func`` accepts."""
    view_class = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)
    kind = getattr(view_class, "body_limit", None) or getattr(view_func, "body_limit", None)
    match = getattr(request, "resolver_match", None)
    if kind is None and match is not None and match.url_name in SMALL_URL_NAMES:
        kind = "small"
    if kind == "small":
        return settings.CONCORD_MAX_SMALL_BODY_BYTES
    if kind == "import":
        # The import views allow a multipart envelope around a file of the full size.
        return settings.CONCORD_MAX_IMPORT_BYTES + 64 * 1024
    return settings.CONCORD_MAX_BODY_BYTES


class BodySizeLimitMiddleware:
    """413 with a JSON ``detail`` when the declared body is larger than the view allows."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            size = int(declared)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number"}, status=400)
        limit = body_limit_bytes(request, view_func)
        if size > limit:
            return JsonResponse(
                {
                    "detail": f"the request body is {size} bytes; this endpoint accepts at "
                    f"most {limit} bytes",
                    "errors": {"body": [f"at most {limit} bytes"]},
                },
                status=413,
            )
        return None
