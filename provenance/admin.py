from django.contrib import admin

from provenance.models import Event, SourceBatch


@admin.register(SourceBatch)
class SourceBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "kind",
        "origin",
        "status",
        "n_rows",
        "n_created",
        "n_updated",
        "n_errors",
        "created_by",
        "created_at",
    ]
    list_filter = ["kind", "status", "project"]
    search_fields = ["origin", "file_sha256"]
    readonly_fields = [f.name for f in SourceBatch._meta.fields]

    def has_add_permission(self, request):
        return False


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
