from django.urls import path

from labeling import views

urlpatterns = [
    path("items/<int:item_id>/image/", views.item_image, name="item-image"),
    path("items/<int:item_id>/thumbnail/", views.item_thumbnail, name="item-thumbnail"),
]
