from django.urls import path

from labeling import views

urlpatterns = [
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/label/skip/", views.skip, name="label-skip"),
    path("projects/<int:project_id>/tags/", views.tags, name="project-tags"),
    path("items/<int:item_id>/image/", views.item_image, name="item-image"),
    path("items/<int:item_id>/thumbnail/", views.item_thumbnail, name="item-thumbnail"),
]
