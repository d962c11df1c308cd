"""A manager's workspace in the browser: create and configure a project, import files,
browse the data manager, publish guidelines and manage people — never the Django admin.

Views are thin: they parse forms and call ``labeling.services`` (the same services the
REST API calls); uploads and the data manager's table go from the page's JavaScript to
the REST endpoints (``/api/v1/projects/{id}/items/import/``, ``.../data-manager/...``).
Access is decided by :func:`labeling.access.page_access` only.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling import access, selectors, services
from labeling.access import MANAGER_ROLES, REVIEW_ROLES, page_access
from labeling.markdown import render_markdown
from labeling.models import (
    MAX_GUIDELINE_CHARS,
    Guideline,
    Item,
    MeasurementLevel,
    Project,
    ProjectMembership,
    Role,
    SourceBatch,
    TaskType,
    default_flag_thresholds,
)

User = get_user_model()

# Numeric settings of the form: (field, label, help).
OVERLAP_FIELDS = (
    ("overlap", "Labels per item", "How many labelers label each item."),
    ("min_overlap", "Minimum (dynamic)", "Stop here when the first labels agree."),
    ("max_overlap", "Maximum (dynamic)", "Ask for more labels up to this when they disagree."),
    ("assignment_ttl_minutes", "Reservation (minutes)", "An item not labeled in time goes back."),
)
THRESHOLD_HELP = {
    "item_majority_share_below": "Flag an item when its majority share is below this (0–1).",
    "merge_min_confusion_share": "Suggest merging two classes confused at least this often.",
    "merge_min_symmetry": "…and when the confusion goes both ways at least this much (0–1).",
    "borderline_min_split": "Suggest a borderline label when labels split at least this much.",
    "slice_alpha_gap": "Flag a metadata slice whose alpha is this far below the overall.",
    "slice_min_items": "Only for slices with at least this many items.",
    "labeler_agreement_z": "Flag a labeler whose agreement z-score falls below this.",
}
MAX_CLASS_ROWS = 200
# Labels of the monitoring settings (their help text comes from the model).
MONITORING_LABELS = {
    "monitoring_min_window": "Minimum window (items or labels)",
    "monitoring_q_threshold": "q-value threshold",
    "monitoring_min_effect": "Minimum effect size",
    "monitoring_schedule": "Scheduled runs",
}
# Ground-truth check settings (settings page only: stored beside the project):
# (form field, label, help, whole number?).
CHECK_FORM_FIELDS = (
    ("check_rate", "Share of hand-outs that are checks", "0–1, e.g. 0.05 for 5%.", False),
    ("check_min_accuracy", "Pause below accuracy", "0–1, on checks since the last resume.", False),
    ("check_min_checks", "…after at least (checks)", "Checks answered before a pause.", True),
)


# --- Forms (parsing only; the services validate) -------------------------------------------
def _int(post, name: str, errors: dict, *, default: int | None = None) -> int | None:
    raw = (post.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        errors.setdefault(name, []).append("a whole number")
        return default


def _float(raw: str, name: str, errors: dict) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        errors.setdefault(name, []).append("a number")
        return None


def _thresholds(post, errors: dict) -> dict:
    values = {}
    for key, default in default_flag_thresholds().items():
        raw = post.get(f"threshold_{key}")
        value = _float(raw, f"threshold_{key}", errors) if raw not in (None, "") else None
        values[key] = default if value is None else value
    return values


def _class_rows(post, errors: dict) -> list[dict]:
    """The class rows of the form, in the order of their ``class_<n>_order`` (the page's
    drag and keys renumber it), blank rows dropped. A row's errors are keyed
    ``class_<position>``, its place in that order (as the service names them)."""
    rows = []
    for n in range(MAX_CLASS_ROWS):
        key = (post.get(f"class_{n}_key") or "").strip()
        ident = (post.get(f"class_{n}_id") or "").strip()
        if not key and not ident:
            continue
        problems: dict = {}
        row = {
            "n": n,
            "id": int(ident) if ident.isdigit() else None,
            "key": key,
            "name": (post.get(f"class_{n}_name") or "").strip(),
            "shortcut": (post.get(f"class_{n}_shortcut") or "").strip(),
            "value": _float(post.get(f"class_{n}_value"), "value", problems),
            "is_borderline": post.get(f"class_{n}_borderline") == "on",
            "order": _int(post, f"class_{n}_order", problems, default=n),
        }
        if len(row["shortcut"]) > 1:
            problems.setdefault("shortcut", []).append("a shortcut is one key")
        row["problems"] = [f"{k}: {m}" for k, msgs in problems.items() for m in msgs]
        rows.append(row)
    rows.sort(key=lambda r: (r["order"], r["n"]))
    shortcuts = [r["shortcut"].lower() for r in rows if r["shortcut"]]
    for position, r in enumerate(rows):
        if r["shortcut"] and shortcuts.count(r["shortcut"].lower()) > 1:
            r["problems"].append(f"shortcut {r['shortcut']!r} is used twice")
        if r["problems"]:
            errors[f"class_{position}"] = r.pop("problems")
        else:
            r.pop("problems")
    return rows


def _settings_from_form(post, errors: dict) -> dict:
    out = {
        "name": (post.get("name") or "").strip(),
        "description": (post.get("description") or "").strip(),
        "level": post.get("level") or MeasurementLevel.NOMINAL,
        "dynamic_overlap": post.get("dynamic_overlap") == "on",
    }
    if not out["name"]:
        errors.setdefault("name", []).append("name the project")
    for name, _, _ in OVERLAP_FIELDS:
        value = _int(post, name, errors)
        if value is not None:
            out[name] = value
    return out


def _field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Errors by field; errors of no field under ``general`` (templates cannot read
    Django's ``__all__``)."""
    if hasattr(exc, "error_dict"):
        return {("general" if k == "__all__" else k): list(v) for k, v in exc.message_dict.items()}
    return {"general": list(exc.messages)}


def _class_context(project: Project | None, rows: list[dict] | None) -> list[dict]:
    """Rows for the class table: the form's rows after an error, else the project's
    classes, plus empty rows to add to."""
    if rows is None:
        rows = []
        if project is not None:
            for c in project.classes.filter(merged_into__isnull=True).order_by("order", "id"):
                rows.append(
                    {
                        "id": c.pk,
                        "key": c.key,
                        "name": c.name,
                        "shortcut": c.shortcut,
                        "value": c.value,
                        "is_borderline": c.is_borderline,
                    }
                )
    blanks = 2 if rows else 3
    rows = [
        *rows,
        *(
            {"id": None, "key": "", "name": "", "shortcut": "", "value": None}
            for _ in range(blanks)
        ),
    ]
    for n, row in enumerate(rows):
        row["n"] = n
        row["error_key"] = f"class_{n}"
    return rows


def _monitoring_fields() -> list:
    """Monitoring settings that exist on the project model and may be edited (another
    part of Concord adds them); shown generically."""
    return [
        f
        for f in Project._meta.get_fields()
        if f.name.startswith("monitoring") and f.name in services.PROJECT_EDITABLE_FIELDS
    ]


def _monitoring_from_form(post, errors: dict) -> dict:
    out = {}
    for f in _monitoring_fields():
        kind = f.get_internal_type()
        raw = post.get(f.name)
        if kind == "BooleanField":
            out[f.name] = raw == "on"
        elif raw not in (None, ""):
            if "Integer" in kind:
                out[f.name] = _int(post, f.name, errors)
            elif kind == "FloatField":
                out[f.name] = _float(raw, f.name, errors)
            else:
                out[f.name] = raw
    return out


def _checks_from_form(post, errors: dict) -> dict:
    out = {}
    for name, _, _, whole in CHECK_FORM_FIELDS:
        value = _int(post, name, errors) if whole else _float(post.get(name), name, errors)
        if value is not None:
            out[name] = value
    return out


def _check_context(project: Project | None, post) -> list[dict]:
    if project is None:
        return []
    stored = selectors.check_settings(project)
    return [
        {
            "name": name,
            "label": label,
            "help": help_text,
            "whole": whole,
            "value": post.get(name, "") if post is not None else stored[name[len("check_") :]],
        }
        for name, label, help_text, whole in CHECK_FORM_FIELDS
    ]


def _form_context(project: Project | None, post=None, errors=None, class_rows=None) -> dict:
    thresholds = (project.flag_thresholds if project else None) or default_flag_thresholds()
    if post is not None:
        thresholds = {k: post.get(f"threshold_{k}", v) for k, v in thresholds.items()}
    monitoring = [
        {
            "name": f.name,
            "label": MONITORING_LABELS.get(f.name, str(f.verbose_name).capitalize()),
            "help": f.help_text,
            "kind": f.get_internal_type(),
            "choices": list(f.choices or []),
            "value": (
                post.get(f.name) if post is not None else getattr(project, f.name, f.default)
            ),
        }
        for f in _monitoring_fields()
    ]
    source = post if post is not None else {}

    def value(name, default=""):
        if post is not None:
            return post.get(name, "")
        return getattr(project, name) if project is not None else default

    return {
        "project": project,
        "errors": errors or {},
        "task_types": TaskType.choices,
        "levels": MeasurementLevel.choices,
        "values": {
            "name": value("name"),
            "description": value("description"),
            "task_type": source.get("task_type")
            if post is not None
            else (project.task_type if project else TaskType.CLASSIFICATION),
            "level": value("level", MeasurementLevel.NOMINAL),
            "dynamic_overlap": (
                post.get("dynamic_overlap") == "on"
                if post is not None
                else bool(project and project.dynamic_overlap)
            ),
        },
        "overlap_fields": [
            {
                "name": name,
                "label": label,
                "help": help_text,
                "value": value(name, Project._meta.get_field(name).default),
            }
            for name, label, help_text in OVERLAP_FIELDS
        ],
        "thresholds": [
            {"key": k, "value": v, "help": THRESHOLD_HELP.get(k, "")} for k, v in thresholds.items()
        ],
        "monitoring": monitoring,
        "checks": _check_context(project, post),
        "classes": _class_context(project, class_rows),
    }


# --- Create and configure ------------------------------------------------------------------
@login_required
def project_create(request):
    """A new project: settings, classes and thresholds; the creator becomes its manager."""
    if not access.may_create_projects(request.user):
        raise PermissionDenied("only staff or superusers may create projects")
    if request.method != "POST":
        return render(request, "manage/project_form.html", _form_context(None))
    errors: dict[str, list[str]] = {}
    post = request.POST
    settings = _settings_from_form(post, errors)
    rows = _class_rows(post, errors)
    thresholds = _thresholds(post, errors)
    task_type = post.get("task_type") or TaskType.CLASSIFICATION
    monitoring = _monitoring_from_form(post, errors)
    if not errors:
        try:
            with transaction.atomic():
                overlap = settings.pop("overlap", 3)
                name = settings.pop("name")
                project = services.create_project(
                    name=name,
                    task_type=task_type,
                    overlap=overlap,
                    created_by=request.user,
                    classes=[
                        {
                            "key": r["key"],
                            "name": r["name"] or None,
                            "value": r["value"],
                            "is_borderline": r["is_borderline"],
                            "shortcut": r["shortcut"],
                        }
                        for r in rows
                    ],
                    flag_thresholds=thresholds,
                    **settings,
                    **monitoring,
                )
        except ValidationError as exc:
            errors = _field_errors(exc)
        else:
            messages.success(request, f"Project {project.name} created. Import its items next.")
            return redirect("project-import", project_id=project.pk)
    context = _form_context(None, post, errors, rows_for_form(rows))
    return render(request, "manage/project_form.html", context, status=400)


def rows_for_form(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "n"} for r in rows]


@page_access(MANAGER_ROLES)
def project_settings(request, project: Project, role: str):
    """Change a project's settings, classes (rename, reorder, shortcuts, values,
    borderline, add) and flag thresholds. The task type is fixed once created."""
    if request.method != "POST":
        return render(request, "manage/project_form.html", _form_context(project))
    errors: dict[str, list[str]] = {}
    post = request.POST
    changes = _settings_from_form(post, errors)
    rows = _class_rows(post, errors)
    thresholds = _thresholds(post, errors)
    changes.update(_monitoring_from_form(post, errors))
    changes.update(_checks_from_form(post, errors))
    if not errors:
        try:
            with transaction.atomic():
                services.update_project(project=project, actor=request.user, **changes)
                services.update_flag_thresholds(
                    project=project, actor=request.user, thresholds=thresholds
                )
                services.update_label_classes(
                    project=project,
                    actor=request.user,
                    classes=[{k: v for k, v in r.items() if k != "n"} for r in rows],
                )
        except ValidationError as exc:
            errors = _field_errors(exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("project-settings", project_id=project.pk)
    context = _form_context(project, post, errors, rows_for_form(rows))
    return render(request, "manage/project_form.html", context, status=400)


# --- Import --------------------------------------------------------------------------------
@page_access(MANAGER_ROLES)
def project_import(request, project: Project, role: str):
    """Drop files to import items or historical labels (the page's script sends them to
    the import endpoints, with a progress bar, and offers "import the valid rows" as a
    second step after row errors); below, the history of source batches."""
    batches = SourceBatch.objects.filter(project=project).select_related("created_by")[:50]
    return render(
        request,
        "manage/import.html",
        {
            "project": project,
            "role": role,
            "batches": batches,
            "items_url": reverse("api-items-import", args=[project.pk]),
            "annotations_url": reverse("api-annotations-import", args=[project.pk]),
            "n_items": Item.objects.filter(project=project).count(),
        },
    )


# --- Data manager ----------------------------------------------------------------------------
@page_access(REVIEW_ROLES)
def data_manager(request, project: Project, role: str):
    """The project's items in a server-side paged, sorted and filtered table."""
    return render(
        request,
        "manage/data_manager.html",
        {
            "project": project,
            "role": role,
            "can_edit": role in MANAGER_ROLES,
            "classes": selectors.active_classes(project),
            "tags": selectors.tag_counts(project),
            "labelers": ProjectMembership.objects.filter(project=project)
            .select_related("user")
            .order_by("user__username"),
        },
    )


# --- Guidelines --------------------------------------------------------------------------------
@page_access(MANAGER_ROLES)
def guidelines(request, project: Project, role: str):
    """Write the next guideline version in Markdown with a live preview; publish it."""
    current = selectors.current_guideline(project)
    errors: dict[str, list[str]] = {}
    text = current.text if current else ""
    note = ""
    examples = ""
    if request.method == "POST":
        text = request.POST.get("text", "")
        note = request.POST.get("change_note", "").strip()
        examples = request.POST.get("example_items", "")
        wanted = [e.strip() for line in examples.splitlines() for e in line.split(",") if e.strip()]
        found = dict(
            Item.objects.filter(project=project, external_id__in=wanted).values_list(
                "external_id", "pk"
            )
        )
        missing = [e for e in wanted if e not in found]
        if missing:
            errors["example_items"] = [f"no item {m!r} in this project" for m in missing[:10]]
        if len(text) > MAX_GUIDELINE_CHARS:
            errors["text"] = [f"at most {MAX_GUIDELINE_CHARS} characters"]
        if not errors:
            try:
                guideline = services.publish_guideline(
                    project=project,
                    text=text,
                    change_note=note,
                    published_by=request.user,
                    example_item_ids=[found[e] for e in wanted],
                )
            except ValidationError as exc:
                errors = _field_errors(exc)
            else:
                messages.success(request, f"Guideline v{guideline.version} published.")
                return redirect("project-guidelines", project_id=project.pk)
    elif current is not None:
        examples = "\n".join(
            current.example_items.order_by("id").values_list("external_id", flat=True)
        )
    history = Guideline.objects.filter(project=project).select_related("published_by")[:20]
    return render(
        request,
        "manage/guidelines.html",
        {
            "project": project,
            "role": role,
            "current": current,
            "text": text,
            "note": note,
            "examples": examples,
            "preview": render_markdown(text),
            "history": history,
            "errors": errors,
            "max_chars": MAX_GUIDELINE_CHARS,
        },
        status=400 if errors else 200,
    )


@page_access(MANAGER_ROLES)
@require_POST
def guideline_preview(request, project: Project, role: str):
    """The editor's preview: the Markdown of the POSTed ``text``, sanitised, as JSON."""
    text = request.POST.get("text", "")[:MAX_GUIDELINE_CHARS]
    return JsonResponse({"html": str(render_markdown(text))})


# --- People ------------------------------------------------------------------------------------
@page_access(MANAGER_ROLES)
def people(request, project: Project, role: str):
    """Members with their roles and labeling counts; create an account, invite a user
    with a role, change a role, deactivate or reactivate an account."""
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            done = _people_action(request, project, action)
        except ValidationError as exc:
            errors = _field_errors(exc)
        except PermissionDenied as exc:
            errors = {"general": [str(exc)]}
        else:
            messages.success(request, done)
            return redirect("project-people", project_id=project.pk)
    members = (
        ProjectMembership.objects.filter(project=project)
        .select_related("user")
        .annotate(
            n_labels=Count(
                "user__annotations",
                filter=Q(user__annotations__project=project, user__annotations__is_current=True),
            )
        )
        .order_by("role", "user__username")
    )
    return render(
        request,
        "manage/people.html",
        {
            "project": project,
            "role": role,
            "members": members,
            "roles": Role.choices,
            "errors": errors,
            "form": request.POST if errors else {},
        },
        status=400 if errors else 200,
    )


def _people_action(request, project: Project, action: str | None) -> str:
    post = request.POST
    username = (post.get("username") or "").strip()
    if action == "create":
        if not username:
            raise ValidationError({"username": "choose a user name"})
        role = post.get("role") or Role.LABELER
        with transaction.atomic():
            user = services.create_account(
                username=username,
                password=post.get("password") or None,
                email=(post.get("email") or "").strip(),
                actor=request.user,
            )
            services.set_membership(project=project, user=user, role=role, actor=request.user)
        return f"Account {username} created and added as {role}."
    if action == "invite":
        user = User.objects.filter(username=username).first()
        if user is None:
            raise ValidationError({"username": f"no account {username!r}; create it below"})
        role = post.get("role") or Role.LABELER
        services.set_membership(project=project, user=user, role=role, actor=request.user)
        return f"{username} is now {role} in {project.name}."
    if action == "remove":
        user = User.objects.filter(username=username).first()
        if user is None:
            raise ValidationError({"username": "no such member"})
        services.remove_membership(project=project, user=user, actor=request.user)
        return f"{username} removed from {project.name} (their labels stay)."
    if action in ("deactivate", "activate"):
        target = access.account_for(request.user, username)
        services.set_user_active(user=target, is_active=action == "activate", actor=request.user)
        return f"Account {username} {'reactivated' if action == 'activate' else 'deactivated'}."
    raise ValidationError({"action": "unknown action"})
