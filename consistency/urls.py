"""Web pages of the consistency app (dashboard)."""

from django.urls import path

from consistency import labeler_page, monitoring_views, views

urlpatterns = [
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="consistency-dashboard"),
    path(
        "projects/<int:project_id>/dashboard/runs/",
        views.start_run,
        name="consistency-start-run",
    ),
    path("model-runs/<int:model_run_id>/", views.model_run_page, name="model-run-page"),
    path(
        "projects/<int:project_id>/people/<str:username>/",
        labeler_page.labeler_page,
        name="labeler-page",
    ),
    path(
        "projects/<int:project_id>/monitoring/",
        monitoring_views.monitoring_page,
        name="consistency-monitoring",
    ),
    path(
        "projects/<int:project_id>/monitoring/runs/",
        monitoring_views.start_monitoring,
        name="consistency-start-monitoring",
    ),
]
