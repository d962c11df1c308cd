from django.contrib import admin

from provenance.models import Event


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that change only through services (the event log, decisions, published
    versions, ground truth): listed and viewable in the admin, never added, edited or
    deleted there."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The append-only log: viewable, never editable."""

    list_display = ["created_at", "verb", "subject_type", "subject_id", "actor", "project"]
    list_filter = ["verb", "subject_type", "project"]
    search_fields = ["subject_id", "reason"]
    readonly_fields = [f.name for f in Event._meta.fields]
