from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.health import healthz
from config.login import LimitedLoginView
from labeling import views as labeling_views

# Media files are never served straight from MEDIA_ROOT: every image goes through a view
# that checks project membership (labeling.views.item_image).
urlpatterns = [
    path("", labeling_views.home, name="home"),
    path("login/", LimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("", include("labeling.urls")),
    path("", include("consistency.urls")),
    path("", include("review.urls")),
    path("", include("datasets.urls")),
]
