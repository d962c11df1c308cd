"""Web pages of the SME review queue."""

urlpatterns: list = []
