"""Token authentication: ``POST /api/v1/auth/token/ {username, password} -> {token}``."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from api.schema import error_responses
from config import ratelimit


class ClientAddressThrottle(ScopedRateThrottle):
    """DRF's scoped rate, keyed by :func:`config.ratelimit.client_address` (DRF's own
    key trusts any ``X-Forwarded-For``) and counted in the shared cache."""

    def get_ident(self, request):
        return ratelimit.client_address(request)


class ObtainTokenApi(APIView):
    """Failed passwords count per account and per address (:mod:`config.ratelimit`):
    over the limit every attempt is a 429 with ``Retry-After``, even a right one."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ClientAddressThrottle]
    throttle_scope = "auth"
    body_limit = "small"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(
        request=AuthTokenSerializer, responses={200: OutputSerializer, **error_responses(429)}
    )
    def post(self, request):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        username = username[:150] if isinstance(username, str) else ""
        address = ratelimit.client_address(request)
        refused = ratelimit.refusal(username, address)
        if refused is not None:
            return Response(
                {"detail": refused.message},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refused.retry_after)},
            )
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if username:
                ratelimit.record_failure(username, address)
            serializer.is_valid(raise_exception=True)
        ratelimit.clear_account(username)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
