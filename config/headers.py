"""Security headers on every response: a Content-Security-Policy on HTML pages, a
Referrer-Policy and a Permissions-Policy everywhere.

The policy allows scripts from this origin only: no inline script, no ``on...=``
attributes, no CDN (the pages load ``static/concord/*.js``; Swagger UI and Redoc come
from the sidecar package, Swagger's initialiser as a separate script). Inline styles are
allowed: progress bars are sized with ``style`` attributes and Redoc injects its
stylesheets; a style cannot run code.
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DEFAULT_PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
)


class SecurityHeadersMiddleware:
    """Adds ``Content-Security-Policy`` (HTML responses), ``Referrer-Policy`` and
    ``Permissions-Policy`` unless the view set them itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html"):
            response.headers.setdefault(
                "Content-Security-Policy",
                getattr(settings, "CONCORD_CONTENT_SECURITY_POLICY", DEFAULT_CSP),
            )
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        response.headers.setdefault(
            "Permissions-Policy",
            getattr(settings, "CONCORD_PERMISSIONS_POLICY", DEFAULT_PERMISSIONS_POLICY),
        )
        return response
