"""Admin for SME resolutions (read-only: decisions are made through review services)."""

from django.contrib import admin

from review.models import Resolution


@admin.register(Resolution)
class ResolutionAdmin(admin.ModelAdmin):
    """Decisions are recorded, never edited: they change labels through services."""

    list_display = ["created_at", "project", "action", "decided_by", "flag", "rationale"]
    list_filter = ["action", "project"]
    search_fields = ["rationale"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
