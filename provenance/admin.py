from django.contrib import admin

from provenance.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The append-only log: viewable, never editable."""

    list_display = ["created_at", "verb", "subject_type", "subject_id", "actor", "project"]
    list_filter = ["verb", "subject_type", "project"]
    search_fields = ["subject_id", "reason"]
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
