"""Admin for SME resolutions (read-only: decisions are made through review services)."""

from django.contrib import admin

from provenance.admin import ReadOnlyAdmin
from review.models import Resolution


@admin.register(Resolution)
class ResolutionAdmin(ReadOnlyAdmin):
    """Decisions are recorded, never edited: they change labels through services."""

    list_display = ["created_at", "project", "action", "decided_by", "flag", "rationale"]
    list_filter = ["action", "project"]
    search_fields = ["rationale"]
