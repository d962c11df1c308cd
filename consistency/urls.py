"""Web pages of the consistency app (dashboard)."""

urlpatterns: list = []
