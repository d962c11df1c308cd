"""Web pages of the SME review queue."""

from django.urls import path

from review import views as review_views

urlpatterns = [
    path("projects/<int:project_id>/review/", review_views.queue, name="review-queue"),
    path(
        "projects/<int:project_id>/normalization/",
        review_views.normalization_page,
        name="review-normalization",
    ),
    path("flags/<int:flag_id>/", review_views.flag_page, name="review-flag"),
    path("flags/<int:flag_id>/resolve/", review_views.resolve, name="review-resolve"),
]
