from django.contrib import admin

from datasets.models import DatasetVersion, PipelineToken
from provenance.admin import ReadOnlyAdmin


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
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


@admin.register(PipelineToken)
class PipelineTokenAdmin(ReadOnlyAdmin):
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
