from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from labeling.models import (
    Annotation,
    Assignment,
    GoldLabel,
    Guideline,
    Item,
    LabelClass,
    Project,
    ProjectMembership,
    SourceBatch,
    Tag,
)


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    fk_name = "project"
    extra = 0
    fields = ["key", "name", "rank", "value", "is_borderline", "merged_into", "shortcut", "order"]


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


admin.site.site_header = "Concord administration"
admin.site.site_title = "Concord admin"
admin.site.index_title = "Projects, labels, runs and provenance"


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task_type", "level", "overlap", "item_count", "created_at"]
    list_filter = ["task_type", "level", "is_archived"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [LabelClassInline, MembershipInline]

    @admin.display(description="items")
    def item_count(self, project):
        return project.items.count()


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "project", "rank", "value", "is_borderline", "merged_into"]
    list_filter = ["project", "is_borderline"]
    search_fields = ["key", "name"]


@admin.register(Guideline)
class GuidelineAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "published_by", "published_at"]
    list_filter = ["project"]
    filter_horizontal = ["example_items"]
    readonly_fields = ["published_at"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_filter = ["project"]
    search_fields = ["name"]


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


def _thumb(item, size=64):
    if not item.thumbnail:
        return "—"
    url = reverse("item-thumbnail", args=[item.pk])
    return format_html(
        '<img src="{}" alt="" style="max-height:{}px;max-width:{}px">', url, size, size
    )


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail_preview",
        "external_id",
        "project",
        "kind",
        "width",
        "height",
        "mean_brightness",
        "stats_status",
        "source_batch",
    ]
    list_filter = ["project", "kind", "stats_status", "tags"]
    search_fields = ["external_id", "content_hash", "perceptual_hash"]
    list_select_related = ["project", "source_batch"]
    ordering = ["-kind", "project", "id"]
    readonly_fields = [
        "thumbnail_large",
        "width",
        "height",
        "mean_brightness",
        "perceptual_hash",
        "content_hash",
        "stats_status",
        "stats_error",
        "created_at",
        "updated_at",
    ]
    filter_horizontal = ["tags"]

    @admin.display(description="image")
    def thumbnail_preview(self, item):
        return _thumb(item)

    @admin.display(description="thumbnail")
    def thumbnail_large(self, item):
        return _thumb(item, 256)


@admin.register(GoldLabel)
class GoldLabelAdmin(admin.ModelAdmin):
    list_display = ["item", "label_class", "value_number", "source", "created_by", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["item"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["item", "labeler", "project", "status", "reason", "created_at", "expires_at"]
    list_filter = ["status", "reason", "project"]
    raw_id_fields = ["item"]
    search_fields = ["labeler__username", "item__external_id"]


class AnnotationAdmin(admin.ModelAdmin):
    """Read-only: annotations are append-only and change only through services."""

    list_display = [
        "item",
        "labeler",
        "label_class",
        "value_number",
        "short_text",
        "guideline",
        "is_current",
        "source",
        "created_at",
    ]
    list_filter = ["project", "is_current", "source", "label_class"]
    search_fields = ["item__external_id", "labeler__username"]
    list_select_related = ["item", "labeler", "label_class", "guideline"]
    raw_id_fields = ["item", "supersedes"]

    @admin.display(description="text")
    def short_text(self, annotation):
        return annotation.value_text[:60]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


admin.site.register(Annotation, AnnotationAdmin)
