"""Web pages of the provenance app (datasets, lineage, tokens)."""

urlpatterns: list = []
