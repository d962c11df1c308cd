from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from config.health import healthz
from config.login import LimitedLoginView
from labeling import views as labeling_views

# Media files are never served straight from MEDIA_ROOT: every image goes through a view
# that checks project membership (labeling.views.item_image).


def favicon(request):
    """Browsers ask for ``/favicon.ico`` on every page: send them to the static icon
    (resolved per request, so the manifest storage's hashed name is used)."""
    return HttpResponsePermanentRedirect(static("concord/favicon.ico"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
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
