"""REST routes under /api/v1/. Each API module owns its ``urlpatterns`` list."""

from importlib import import_module

from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from api import auth

urlpatterns = [
    path("auth/token/", auth.ObtainTokenApi.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("schema/ui/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("schema/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

# One module per area; a module that is not written yet is simply absent.
for module_name in (
    "api.projects",
    "api.labeling",
    "api.consistency",
    "api.review",
    "api.datasets",
    "api.model_runs",
):
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    urlpatterns += module.urlpatterns
