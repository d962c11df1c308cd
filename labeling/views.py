"""Server-rendered pages of the labeling app.

The labeling page is a plain POST form per item (it works without JavaScript);
``static/concord/label.js`` adds keyboard shortcuts, zoom/pan and time measurement.
Views are thin: hand-out, submit and skip are ``labeling.assignment`` services.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling import access, selectors, services
from labeling import assignment as assignment_service
from labeling import box_page as boxes
from labeling.access import LABEL_ROLES, MANAGER_ROLES, READ_ROLES, REVIEW_ROLES, page_access
from labeling.markdown import render_markdown
from labeling.models import MAX_TIME_SPENT_MS, Annotation, Assignment, Item, Project, TaskType


@login_required
def home(request):
    """My projects, with my role, the project's progress and my own."""
    projects = []
    visible = list(access.visible_projects(request.user).filter(is_archived=False))
    roles = access.roles_in_projects(request.user, visible)
    for project in visible:
        role = roles.get(project.pk)
        can_label = role in LABEL_ROLES
        projects.append(
            {
                "project": project,
                "role": role,
                "progress": selectors.project_progress(project),
                "mine": (
                    assignment_service.labeler_progress(project, request.user)
                    if can_label
                    else None
                ),
                "can_label": can_label,
                "can_review": role in REVIEW_ROLES,
            }
        )
    return render(
        request,
        "labeling/home.html",
        {"projects": projects, "can_create": access.may_create_projects(request.user)},
    )


# The labeling pages: label roles, unarchived projects only.
labeling_page = page_access(LABEL_ROLES, projects=Project.objects.filter(is_archived=False))


def _image_src(item: Item) -> str:
    if item.image:
        return reverse("item-image", args=[item.pk])
    return item.image_url


@labeling_page
def label(request, project: Project, role: str):
    """GET: the next item (or the one being revised with ``?revise=<item id>``).
    POST: submit a label for an item, then go on to the next one."""
    if request.method == "POST":
        return _submit(request, project)
    revise_id = request.GET.get("revise")
    handed, own = None, None
    if revise_id:
        own = (
            Annotation.objects.filter(
                project=project, labeler=request.user, is_current=True, item_id=revise_id
            )
            .select_related("item", "label_class")
            .first()
            if revise_id.isdigit()
            else None
        )
        if own is None:
            messages.info(request, "There is no label of yours on that item to revise.")
            return redirect("label", project_id=project.pk)
        item = own.item
    else:
        try:
            handed = assignment_service.next_item_for(project, request.user)
        except assignment_service.LabelerPaused as exc:
            messages.warning(request, str(exc.args[0]))
            handed = None
        item = handed.item if handed else None
        if handed is not None and handed.reason == assignment_service.REASON_RELABEL:
            # Sent back for relabeling: show the labeler's own label, to confirm or change.
            own = (
                Annotation.objects.filter(item=item, labeler=request.user, is_current=True)
                .select_related("label_class")
                .first()
            )
    saved = request.session.pop(SAVED_SESSION_KEY, None)
    classes, borderline = selectors.class_buttons(project)
    guideline = selectors.current_guideline(project)
    examples = []
    if guideline is not None:
        shown = list(guideline.example_items.all().order_by("id")[:12])
        captions = selectors.example_captions(shown)
        for example in shown:
            thumb = None
            if example.thumbnail:
                thumb = reverse("item-thumbnail", args=[example.pk])
            elif example.image:
                thumb = reverse("item-image", args=[example.pk])
            elif example.image_url:
                thumb = example.image_url
            full = reverse("item-image", args=[example.pk]) if example.image else thumb
            examples.append(
                {"item": example, "thumb": thumb, "full": full, "caption": captions[example.pk]}
            )
    is_detection = project.task_type == TaskType.DETECTION
    if is_detection:
        boxes.add_example_boxes(examples)
    previous = assignment_service.previous_label(
        project, request.user, before_item_id=own.item_id if own else None
    )
    own_value = selectors.annotation_value(own) if own else None
    context = {
        "project": project,
        "role": role,
        "item": item,
        "assignment": handed,
        "own": own,
        "own_value": own_value,
        "own_value_str": "" if own_value is None else str(own_value),
        "image_src": _image_src(item) if item else "",
        "classes": classes,
        "borderline": borderline,
        "guideline": guideline,
        # Markdown, sanitised (labeling.markdown): no script, no handlers, no javascript:.
        "guideline_html": render_markdown(guideline.text) if guideline else "",
        "examples": examples,
        "previous": previous,
        "progress": assignment_service.labeler_progress(project, request.user),
        "is_transcription": project.task_type == TaskType.TRANSCRIPTION,
        "is_rating": project.task_type == TaskType.RATING,
        "is_detection": is_detection,
        "saved": saved,
        "metadata_rows": selectors.metadata_rows(item.metadata) if item else [],
    }
    if is_detection:
        context.update(boxes.page_context(project=project, own_value=own_value, item=item))
    return render(request, "labeling/label.html", context)


def _submit(request, project: Project):
    item = get_object_or_404(Item, pk=request.POST.get("item") or 0, project=project)
    value = request.POST.get("value", "")
    if project.task_type == TaskType.DETECTION:
        value = boxes.posted_boxes(value, nothing=request.POST.get("nothing") == "1")
    assignment_id = request.POST.get("assignment") or ""
    time_spent = request.POST.get("time_spent_ms") or ""
    try:
        annotation = assignment_service.submit_label(
            item=item,
            labeler=request.user,
            value=value,
            comment=request.POST.get("comment", "").strip(),
            # Measured by the page, not typed: a tab left open a day is clamped, not refused.
            time_spent_ms=min(int(time_spent), MAX_TIME_SPENT_MS) if time_spent.isdigit() else None,
            assignment_id=int(assignment_id) if assignment_id.isdigit() else None,
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        target = reverse("label", args=[project.pk])
        if request.POST.get("revising"):
            target += f"?revise={item.pk}"
        return redirect(target)
    # Confirmed on the next page as a brief toast that takes no room in the layout (a
    # message list above the page would push the next item down).
    label_class = annotation.label_class
    request.session[SAVED_SESSION_KEY] = {
        "item": item.external_id,
        "label": label_class.name if label_class else _short(value),
        "revised": bool(annotation.supersedes_id),
    }
    return redirect("label", project_id=project.pk)


# The label just submitted, for the next labeling page's confirmation toast.
SAVED_SESSION_KEY = "concord.label_saved"


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@labeling_page
@require_POST
def skip(request, project: Project, role: str):
    handed = get_object_or_404(
        Assignment, pk=request.POST.get("assignment") or 0, project=project, labeler=request.user
    )
    try:
        assignment_service.skip_assignment(assignment=handed, labeler=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("label", project_id=project.pk)


def _safe_file_response(field, content_type: str) -> FileResponse:
    response = FileResponse(field.open("rb"), content_type=content_type)
    # Served as an image, never sniffed into HTML or script.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


IMAGE_CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}


@page_access(READ_ROLES, scope=Item, url_kwarg="item_id")
def item_image(request, item: Item, role: str):
    if not item.image:
        raise Http404("this item has no uploaded image")
    suffix = item.image.name.rsplit(".", 1)[-1].lower()
    return _safe_file_response(
        item.image, IMAGE_CONTENT_TYPES.get(suffix, "application/octet-stream")
    )


@page_access(READ_ROLES, scope=Item, url_kwarg="item_id")
def item_thumbnail(request, item: Item, role: str):
    if not item.thumbnail:
        raise Http404("no thumbnail yet")
    return _safe_file_response(item.thumbnail, "image/jpeg")


# --- Tags in bulk ----------------------------------------------------------------------
def _split_external_ids(text: str) -> list[str]:
    """External ids from the textarea: one per line or comma-separated, blanks dropped."""
    return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


def _tag_request(project: Project, post) -> tuple[dict, dict[str, list[str]]]:
    """The ``change_item_tags`` keyword arguments from the tags form, or the form's errors
    by field (``tag``, ``items``, ``filter``, ``action``)."""
    errors: dict[str, list[str]] = {}
    action = post.get("action")
    if action not in ("add", "remove"):
        errors["action"] = ["choose add or remove"]
    tag = (post.get("tag") or "").strip()
    if not tag:
        errors["tag"] = ["name a tag"]
    options: dict = {action if action in ("add", "remove") else "add": [tag]}
    ids = _split_external_ids(post.get("items") or "")
    metadata_filter = (post.get("filter") or "").strip()
    if ids and metadata_filter:
        errors["filter"] = ["give external ids or a filter, not both"]
    elif ids:
        options["external_ids"] = ids
    elif metadata_filter:
        key, sep, value = metadata_filter.partition("=")
        key = key.strip().removeprefix("metadata.")
        if not sep or not key:
            errors["filter"] = ["write the filter as key=value, e.g. factory=A"]
        else:
            try:
                items = selectors.filter_items(project, metadata={key: value.strip()})
            except ValueError as exc:
                errors["filter"] = [str(exc)]
            else:
                options["item_ids"] = list(items.values_list("pk", flat=True))
    else:
        errors["items"] = ["give external ids or a metadata filter"]
    return options, errors


@page_access(REVIEW_ROLES)
def tags(request, project: Project, role: str):
    """The project's tags with their item counts (review roles); managers add or remove
    a tag on items named by external id or matched by one ``key=value`` metadata filter.
    POST redirects back with a message naming how many items changed."""
    can_edit = role in MANAGER_ROLES
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("only managers change tags")
        options, errors = _tag_request(project, request.POST)
        if not errors:
            try:
                result = services.change_item_tags(project=project, actor=request.user, **options)
            except ValidationError as exc:
                by_field = exc.message_dict
                field_of = {"add": "tag", "remove": "tag"}
                if "item_ids" in options:
                    field_of["items"] = "filter"
                for field, msgs in by_field.items():
                    errors.setdefault(field_of.get(field, field), []).extend(msgs)
            else:
                changed = sum(result["added"].values()) + sum(result["removed"].values())
                verb = "added to" if "add" in options else "removed from"
                tag_name = next(iter(result["added"] or result["removed"]))
                messages.success(
                    request,
                    f"Tag {tag_name} {verb} {changed} item{'s' if changed != 1 else ''}"
                    f" ({result['n_items']} selected).",
                )
                return redirect("project-tags", project_id=project.pk)
    return render(
        request,
        "labeling/tags.html",
        {
            "project": project,
            "tags": selectors.tag_counts(project),
            "can_edit": can_edit,
            "errors": errors,
            "form": request.POST if request.method == "POST" else {},
        },
        status=400 if errors else 200,
    )
