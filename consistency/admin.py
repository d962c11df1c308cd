"""Admin for agreement runs and their consensus (read-mostly: runs are written by the worker)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from consistency.models import AgreementRun, Consensus, Flag, TranscriptRuleSet
from provenance.admin import ReadOnlyAdmin


@admin.register(AgreementRun)
class AgreementRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "status",
        "progress_percent",
        "alpha",
        "n_chunks",
        "created_by",
        "created_at",
        "finished_at",
        "links",
    ]
    list_filter = ["status", "project"]
    list_select_related = ["project", "created_by"]
    search_fields = ["project__name", "error"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "project",
        "created_by",
        "status",
        "progress",
        "params",
        "error",
        "data_version",
        "celery_task_id",
        "n_chunks",
        "timings",
        "created_at",
        "started_at",
        "finished_at",
        "links",
    ]
    exclude = ["results"]  # large; read it as JSON through the link

    @admin.display(description="progress")
    def progress_percent(self, run):
        return f"{run.progress:.0%}"

    @admin.display(description="α")
    def alpha(self, run):
        value = ((run.results or {}).get("overall") or {}).get("krippendorff_alpha")
        return "–" if value is None else f"{value:.3f}"

    @admin.display(description="results")
    def links(self, run):
        return format_html(
            '<a href="{}">JSON</a> · <a href="{}?run={}">dashboard</a>',
            reverse("api-agreement-run", args=[run.pk]),
            reverse("consistency-dashboard", args=[run.project_id]),
            run.pk,
        )

    def has_add_permission(self, request):
        return False  # runs are started from the dashboard or the API


@admin.register(Consensus)
class ConsensusAdmin(admin.ModelAdmin):
    """Read-only: consensus is computed by agreement runs; SME decisions override it through
    review services (with their events)."""

    list_display = ["item", "run", "method", "label_class", "status", "support", "confidence"]
    list_filter = ["method", "status"]
    list_select_related = ["item", "run", "label_class"]
    search_fields = ["item__external_id"]
    raw_id_fields = ["run", "item", "label_class"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    """Read-only: flags are resolved or dismissed on the review queue (review.services.resolve,
    which writes ``flag.resolved`` / ``flag.dismissed``)."""

    list_display = ["id", "project", "kind", "status", "impact", "suggested_action", "summary"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["summary"]
    raw_id_fields = ["run", "labeler"]
    filter_horizontal = ["classes"]
    readonly_fields = ["evidence", "created_at", "closed_at"]
    autocomplete_fields: list = []

    def has_add_permission(self, request):
        return False  # flags come from agreement runs

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TranscriptRuleSet)
class TranscriptRuleSetAdmin(ReadOnlyAdmin):
    """Rule sets are published (with their event) through review services, never edited."""

    list_display = ["project", "version", "created_by", "created_at", "rationale"]
    list_filter = ["project"]
    readonly_fields = ["project", "version", "rules", "rationale", "created_by", "created_at"]
