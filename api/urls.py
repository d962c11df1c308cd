"""REST routes under /api/v1/. Each API module owns its ``urlpatterns`` list."""

from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from api import (
    auth,
    checks,
    consistency,
    data_manager,
    datasets,
    labeling,
    model_runs,
    monitoring,
    projects,
    review,
)

urlpatterns = [
    path("auth/token/", auth.ObtainTokenApi.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("schema/ui/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("schema/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

API_MODULES = (
    projects,
    labeling,
    checks,
    consistency,
    review,
    datasets,
    model_runs,
    data_manager,
    monitoring,
)
for module in API_MODULES:
    urlpatterns += module.urlpatterns
