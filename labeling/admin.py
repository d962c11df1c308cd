"""Admin for labeling data. Every write of domain state goes through labeling.services, so
the admin writes the same events as the API and the pages; what has no service (class
merges: review.services.merge_classes; annotations, gold labels, guideline versions) is
read-only here."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from labeling import services
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
from provenance.admin import ReadOnlyAdmin

CLASS_FIELDS = ["key", "name", "rank", "value", "is_borderline", "shortcut", "order"]


def _report(request, exc: ValidationError) -> None:
    messages.error(request, "; ".join(exc.messages))


def _remove_membership(request, membership: ProjectMembership) -> None:
    """Through the service (``member.removed`` event); the last manager is kept."""
    try:
        services.remove_membership(
            project=membership.project, user=membership.user, actor=request.user
        )
    except ValidationError as exc:
        _report(request, exc)


def _save_membership(request, membership: ProjectMembership, initial_user_id) -> None:
    """Through the service (``member.added`` / ``member.changed``); a row whose user was
    changed is the old user leaving and the new one joining."""
    if initial_user_id is not None and initial_user_id != membership.user_id:
        old = ProjectMembership.objects.select_related("project", "user").get(
            project_id=membership.project_id, user_id=initial_user_id
        )
        _remove_membership(request, old)
    saved = services.set_membership(
        project=membership.project, user=membership.user, role=membership.role, actor=request.user
    )
    membership.pk = saved.pk
    membership._state.adding = False


def _add_class(request, label_class: LabelClass) -> None:
    """A new class through the service (``class.created``)."""
    created = services.create_project_class(
        project=label_class.project,
        actor=request.user,
        **{f: getattr(label_class, f) for f in [*CLASS_FIELDS, "description"]},
    )
    label_class.pk = created.pk
    label_class._state.adding = False


class LabelClassInline(admin.TabularInline):
    """Classes are merged (review.services.merge_classes), never deleted: ``merged_into``
    is shown, not edited."""

    model = LabelClass
    fk_name = "project"
    extra = 0
    fields = [*CLASS_FIELDS[:5], "merged_into", *CLASS_FIELDS[5:]]
    readonly_fields = ["merged_into"]
    can_delete = False


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role"]


admin.site.site_header = "Concord administration"
admin.site.site_title = "Concord admin"
admin.site.index_title = "Projects, labels, runs and provenance"


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Projects are created on the projects page or the API (with their classes, in one
    ``project.created`` event); here their settings change through
    ``services.update_project`` and members and classes through their services."""

    list_display = ["name", "slug", "task_type", "level", "overlap", "item_count", "created_at"]
    list_filter = ["task_type", "level", "is_archived"]
    search_fields = ["name", "slug"]
    inlines = [LabelClassInline, MembershipInline]

    @admin.display(description="items")
    def item_count(self, project):
        return project.items.count()

    def get_readonly_fields(self, request, obj=None):
        return [
            f.name
            for f in Project._meta.fields
            if f.name not in services.PROJECT_EDITABLE_FIELDS and f.name != "id"
        ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # its events refer to it (the event log is append-only)

    def save_model(self, request, obj, form, change):
        changes = {f: form.cleaned_data[f] for f in form.changed_data}
        if changes:
            try:
                services.update_project(project=obj, actor=request.user, **changes)
            except ValidationError as exc:
                _report(request, exc)

    def save_formset(self, request, form, formset, change):
        if formset.model is ProjectMembership:
            _save_membership_formset(request, formset)
        elif formset.model is LabelClass:
            _save_class_formset(request, formset)
        else:
            super().save_formset(request, form, formset, change)


def _save_membership_formset(request, formset) -> None:
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.forms:
        membership = form.instance
        if formset.can_delete and formset._should_delete_form(form):
            if membership.pk:
                _remove_membership(request, ProjectMembership.objects.get(pk=membership.pk))
                formset.deleted_objects.append(membership)
        elif form.has_changed():
            new = membership.pk is None
            _save_membership(request, membership, form.initial.get("user"))
            if new:
                formset.new_objects.append(membership)
            else:
                formset.changed_objects.append((membership, form.changed_data))


def _save_class_formset(request, formset) -> None:
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.forms:
        if not form.has_changed():
            continue
        label_class = form.instance
        if label_class.pk is None:
            _add_class(request, label_class)
            formset.new_objects.append(label_class)
        else:
            label_class.save(update_fields=form.changed_data)
            formset.changed_objects.append((label_class, form.changed_data))


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    """Memberships change through ``set_membership`` / ``remove_membership`` (their events)."""

    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]
    fields = ["project", "user", "role"]

    def get_readonly_fields(self, request, obj=None):
        return ["project", "user"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        _save_membership(request, obj, None)

    def delete_model(self, request, obj):
        _remove_membership(request, obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user").order_by("pk"):
            _remove_membership(request, membership)


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    """New classes through ``create_project_class``; merges through the review app."""

    list_display = ["key", "name", "project", "rank", "value", "is_borderline", "merged_into"]
    list_filter = ["project", "is_borderline"]
    search_fields = ["key", "name"]
    fields = ["project", *CLASS_FIELDS, "description", "merged_into"]
    readonly_fields = ["merged_into"]

    def get_readonly_fields(self, request, obj=None):
        return ["project", "merged_into"] if obj is not None else ["merged_into"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=form.changed_data or None)
        else:
            _add_class(request, obj)


@admin.register(Guideline)
class GuidelineAdmin(ReadOnlyAdmin):
    """Read-only: a guideline version is published (``guideline.published``) through the
    API or an SME decision, and never edited afterwards."""

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
    """Items arrive through imports (``item.imported`` events); none is added here."""

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

    def has_add_permission(self, request):
        return False

    @admin.display(description="image")
    def thumbnail_preview(self, item):
        return _thumb(item)

    @admin.display(description="thumbnail")
    def thumbnail_large(self, item):
        return _thumb(item, 256)


@admin.register(GoldLabel)
class GoldLabelAdmin(ReadOnlyAdmin):
    """Read-only: gold labels are set through ``services.set_gold_label`` (``item.gold_set``)
    by imports and SME decisions."""

    list_display = ["item", "label_class", "value_number", "source", "created_by", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["item"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["item", "labeler", "project", "status", "reason", "created_at", "expires_at"]
    list_filter = ["status", "reason", "project"]
    raw_id_fields = ["item"]
    search_fields = ["labeler__username", "item__external_id"]


class AnnotationAdmin(ReadOnlyAdmin):
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


admin.site.register(Annotation, AnnotationAdmin)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Django's user admin, with account creation and (de)activation through the services
    (``user.created``, ``user.activated`` / ``user.deactivated`` events)."""

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.create_account(
                username=obj.username,
                password=form.cleaned_data.get("password1") or None,
                email=obj.email,
                actor=request.user,
            )
            obj.pk = created.pk
            obj._state.adding = False
            obj.refresh_from_db()
            return
        if "is_active" in form.changed_data:
            # The service reads "before" from the row it is given: the stored one, not the form's.
            stored = User.objects.get(pk=obj.pk)
            services.set_user_active(user=stored, is_active=obj.is_active, actor=request.user)
        super().save_model(request, obj, form, change)
