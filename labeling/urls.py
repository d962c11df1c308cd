from django.urls import path

from labeling import manage_views, views

urlpatterns = [
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/label/skip/", views.skip, name="label-skip"),
    path("projects/<int:project_id>/tags/", views.tags, name="project-tags"),
    path("items/<int:item_id>/image/", views.item_image, name="item-image"),
    path("items/<int:item_id>/thumbnail/", views.item_thumbnail, name="item-thumbnail"),
    # A manager's workspace (issue 12)
    path("projects/new/", manage_views.project_create, name="project-create"),
    path(
        "projects/<int:project_id>/settings/",
        manage_views.project_settings,
        name="project-settings",
    ),
    path("projects/<int:project_id>/import/", manage_views.project_import, name="project-import"),
    path("projects/<int:project_id>/data/", manage_views.data_manager, name="data-manager"),
    path(
        "projects/<int:project_id>/guidelines/",
        manage_views.guidelines,
        name="project-guidelines",
    ),
    path(
        "projects/<int:project_id>/guidelines/preview/",
        manage_views.guideline_preview,
        name="guideline-preview",
    ),
    path("projects/<int:project_id>/people/", manage_views.people, name="project-people"),
]
