"""Pipeline tokens on the REST API: ``Authorization: Bearer cnc_<secret>`` (``Token
cnc_<secret>`` is accepted too).

A token authenticates as its own service user, a member of exactly one project, so the
usual project scoping applies unchanged (another project answers 404). A revoked or
expired token is refused with 401; a token without the ``write`` scope may only read
(anything but GET/HEAD/OPTIONS is refused with 403). Headers that do not carry a
``cnc_`` secret are left to the other authentication classes.

Put this class *first* in ``DEFAULT_AUTHENTICATION_CLASSES``: DRF's own
``TokenAuthentication`` refuses any ``Token <key>`` it does not know.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS

from datasets.models import PipelineToken
from datasets.services import TOKEN_PREFIX, hash_token

KEYWORDS = (b"bearer", b"token")


class PipelineTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in KEYWORDS:
            return None
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not secret.startswith(TOKEN_PREFIX):
            return None
        token = (
            PipelineToken.objects.select_related("user")
            .filter(token_hash=hash_token(secret))
            .first()
        )
        if token is None or token.user is None:
            raise exceptions.AuthenticationFailed("invalid pipeline token")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("this pipeline token has been revoked")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("this pipeline token has expired")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("this pipeline token's user is disabled")
        if request.method not in SAFE_METHODS and "write" not in token.scopes:
            raise exceptions.PermissionDenied(
                "this pipeline token is read-only; create one with the 'write' scope to change data"
            )
        return (token.user, token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class PipelineTokenScheme(OpenApiAuthenticationExtension):
    """Documents pipeline tokens in the OpenAPI schema (``bearerAuth``)."""

    target_class = "datasets.authentication.PipelineTokenAuthentication"
    name = "pipelineToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A project pipeline token: `Authorization: Bearer cnc_…`.",
        }
