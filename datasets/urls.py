"""Web pages of the datasets app: dataset versions, diffs, lineage, pipeline tokens."""

from django.urls import path

from datasets import item_page, views

urlpatterns = [
    path("projects/<int:project_id>/datasets/", views.datasets, name="datasets"),
    path("projects/<int:project_id>/datasets/build/", views.build, name="datasets-build"),
    path("projects/<int:project_id>/datasets/diff/", views.diff, name="datasets-diff"),
    path("datasets/<int:dataset_id>/lineage/", views.lineage, name="dataset-lineage"),
    path("projects/<int:project_id>/tokens/create/", views.create_token, name="token-create"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="token-revoke"),
    path("items/<int:item_id>/", item_page.item_page, name="item-page"),
]
