"""Web pages of the consistency app (dashboard)."""

from django.urls import path

from consistency import views

urlpatterns = [
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="consistency-dashboard"),
    path(
        "projects/<int:project_id>/dashboard/runs/",
        views.start_run,
        name="consistency-start-run",
    ),
    path("model-runs/<int:model_run_id>/", views.model_run_page, name="model-run-page"),
]
