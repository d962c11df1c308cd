from django.contrib import admin

from provenance.models import DatasetVersion, Event, PipelineToken


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


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """Published versions are immutable: viewable here, never editable."""

    list_display = [
        "id",
        "project",
        "status",
        "row_count",
        "content_hash",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "project"]
    search_fields = ["content_hash"]
    readonly_fields = [f.name for f in DatasetVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PipelineToken)
class PipelineTokenAdmin(admin.ModelAdmin):
    """Tokens are created and revoked on the project's datasets page (the secret is shown
    once there); the admin only lists them."""

    list_display = [
        "id",
        "project",
        "name",
        "prefix",
        "scopes",
        "created_by",
        "created_at",
        "revoked_at",
    ]
    list_filter = ["project"]
    search_fields = ["name", "prefix"]
    readonly_fields = [f.name for f in PipelineToken._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
