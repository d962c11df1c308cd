"""Server-rendered pages of the labeling app."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render

from labeling import selectors
from labeling.models import Item


@login_required
def home(request):
    """My projects, with my role and the project's progress."""
    projects = []
    for project in selectors.projects_for_user(request.user).filter(is_archived=False):
        projects.append(
            {
                "project": project,
                "role": selectors.role_in_project(request.user, project),
                "progress": selectors.project_progress(project),
            }
        )
    return render(request, "labeling/home.html", {"projects": projects})


def _member_item(request, item_id: int) -> Item:
    item = get_object_or_404(Item.objects.select_related("project"), pk=item_id)
    if selectors.role_in_project(request.user, item.project) is None:
        raise Http404("no such item")
    return item


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


@login_required
def item_image(request, item_id: int):
    item = _member_item(request, item_id)
    if not item.image:
        raise Http404("this item has no uploaded image")
    suffix = item.image.name.rsplit(".", 1)[-1].lower()
    return _safe_file_response(
        item.image, IMAGE_CONTENT_TYPES.get(suffix, "application/octet-stream")
    )


@login_required
def item_thumbnail(request, item_id: int):
    item = _member_item(request, item_id)
    if not item.thumbnail:
        raise Http404("no thumbnail yet")
    return _safe_file_response(item.thumbnail, "image/jpeg")
