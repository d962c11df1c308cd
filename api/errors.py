"""One exception handler: every error is JSON a person can act on.

Services raise Django ``ValidationError`` (→ 400 with the fields at fault) or
``ImportRejected`` (→ 400/413 with the row numbers at fault); DRF's own errors keep their
status. The body always has ``detail`` (one sentence) and, where known, ``errors``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(Exception):
    """An application error with an HTTP status, a message and optional row errors."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, *, errors: list | dict | None = None, status_code=None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        if status_code is not None:
            self.status_code = status_code


def _django_validation_payload(exc: DjangoValidationError) -> dict:
    if hasattr(exc, "error_dict"):
        errors = {field: [str(m) for m in msgs] for field, msgs in exc.message_dict.items()}
        first_field, first_msgs = next(iter(errors.items()))
        return {"detail": f"{first_field}: {first_msgs[0]}", "errors": errors}
    messages = [str(m) for m in exc.messages]
    return {"detail": messages[0] if messages else "invalid input", "errors": messages}


def exception_handler(exc, context):
    if isinstance(exc, ApiError):
        body = {"detail": exc.detail}
        if exc.errors is not None:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response(_django_validation_payload(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "permission denied"}, status=403)
    if isinstance(exc, Http404):
        return Response({"detail": str(exc) or "not found"}, status=404)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        fields = response.data
        first_field = next(iter(fields), None)
        first = fields.get(first_field) if first_field else None
        message = first[0] if isinstance(first, list) and first else first
        response.data = {"detail": f"{first_field}: {message}", "errors": fields}
    return response
