"""Server-rendered pages of the datasets app: a project's dataset versions (build form,
counts, downloads), the diff of two versions, a version's lineage graph, and pipeline
token management. Thin: they call datasets services and selectors.

Who sees what matches the REST API: review roles (viewer, SME, manager) read, SMEs and
managers build, managers manage tokens; a non-member gets 404.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from consistency.models import AgreementRun, RunStatus
from datasets import exporters, selectors, services
from datasets.models import DatasetStatus, DatasetVersion, PipelineToken
from labeling import safe_json
from labeling.access import MANAGER_ROLES, REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import Project


def _build_request_from_form(post) -> dict:
    """The dataset request (DESIGN.md) from the build form; the service validates it."""
    data: dict = {"consensus": post.get("consensus") or "majority"}
    if post.get("agreement_run"):
        try:
            data["agreement_run"] = int(post["agreement_run"])
        except ValueError:
            raise ValidationError({"agreement_run": "choose a run"}) from None
    if post.get("min_confidence", "").strip():
        try:
            data["min_confidence"] = float(post["min_confidence"])
        except ValueError:
            raise ValidationError({"min_confidence": "must be a number between 0 and 1"}) from None
    data["include_borderline"] = post.get("include_borderline") == "on"
    data["include_unresolved"] = post.get("include_unresolved") == "on"
    ratios = {}
    for name in ("train", "dev", "test"):
        raw = post.get(f"split_{name}", "").strip()
        if raw:
            try:
                ratios[name] = float(raw)
            except ValueError:
                raise ValidationError({"splits": f"{name}: must be a number"}) from None
    if ratios:
        data["splits"] = ratios
    if post.get("seed", "").strip():
        try:
            data["seed"] = int(post["seed"])
        except ValueError:
            raise ValidationError({"seed": "must be a non-negative integer"}) from None
    data["stratify_by"] = [s.strip() for s in post.get("stratify_by", "").split(",") if s.strip()]
    if post.get("group_by", "").strip():
        data["group_by"] = post["group_by"].strip()
    if post.get("filters", "").strip():
        try:
            data["filters"] = safe_json.loads(post["filters"], where="filters")
        except safe_json.UnsafeJson as exc:
            raise ValidationError({"filters": str(exc)}) from None
        except json.JSONDecodeError as exc:
            raise ValidationError({"filters": f"not valid JSON: {exc.msg}"}) from None
    return data


def _page(request, project: Project, role: str, **extra):
    versions = list(selectors.dataset_versions(project)[:50])
    runs = list(
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).order_by(
            "-created_at", "-id"
        )[:20]
    )
    tokens = (
        list(PipelineToken.objects.filter(project=project).select_related("created_by"))
        if role in MANAGER_ROLES
        else []
    )
    rows = []
    for version in versions:
        rows.append(
            {
                "version": version,
                "splits": list(version.split_counts.items()),
                "classes": list((version.class_counts or {}).get("all", {}).items()),
                "params": _params_summary(version),
                "published": version.status == DatasetStatus.SUCCEEDED,
                "detection": exporters.is_detection(version),
            }
        )
    context = {
        "project": project,
        "role": role,
        "rows": rows,
        "runs": runs,
        "tokens": tokens,
        "can_build": role in SME_ROLES,
        "can_manage_tokens": role in MANAGER_ROLES,
        "formats": [f for f in exporters.FORMATS],
        "form": request.POST if request.method == "POST" else {},
        "api_base": request.build_absolute_uri("/api/v1/"),
        # While a version is being built the page reloads itself (no JavaScript needed).
        "building": any(
            r["version"].status in (DatasetStatus.QUEUED, DatasetStatus.BUILDING) for r in rows
        ),
        **extra,
    }
    return render(request, "datasets/datasets.html", context)


def _params_summary(version: DatasetVersion) -> list[tuple[str, str]]:
    params = version.params or version.request or {}
    out = []
    for key in (
        "agreement_run",
        "consensus",
        "min_confidence",
        "include_borderline",
        "include_unresolved",
        "splits",
        "seed",
        "stratify_by",
        "group_by",
        "filters",
        "class_merges",
    ):
        value = params.get(key)
        if value in (None, {}, [], False) and key not in ("seed",):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        out.append((key, str(value)))
    return out


# Where create_token leaves a new token's secret for the one page view that shows it.
NEW_TOKEN_SESSION_KEY = "concord.new_pipeline_token"


@page_access(REVIEW_ROLES)
def datasets(request, project: Project, role: str):
    fresh = request.session.get(NEW_TOKEN_SESSION_KEY)
    if not fresh or fresh.get("project") != project.pk or role not in MANAGER_ROLES:
        return _page(request, project, role)
    del request.session[NEW_TOKEN_SESSION_KEY]
    token = PipelineToken.objects.filter(pk=fresh["token"], project=project).first()
    if token is None:
        return _page(request, project, role)
    response = _page(request, project, role, new_token=token, new_secret=fresh["secret"])
    # The secret is in this response only: never cached, gone on reload.
    response["Cache-Control"] = "no-store"
    return response


@page_access(SME_ROLES)
@require_POST
def build(request, project: Project, role: str):
    try:
        data = _build_request_from_form(request.POST)
        version = services.request_dataset_version(
            project=project, requested_by=request.user, data=data
        )
    except ValidationError as exc:
        errors = [
            f"{field}: {message}"
            for field, msgs in getattr(exc, "message_dict", {"request": exc.messages}).items()
            for message in msgs
        ]
        return _page(request, project, role, build_errors=errors)
    messages.success(request, f"Dataset version {version.pk} is being built.")
    return redirect(f"{reverse('datasets', args=[project.pk])}#version-{version.pk}")


@page_access(REVIEW_ROLES)
def diff(request, project: Project, role: str):
    try:
        a_id, b_id = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        messages.error(request, "Choose two dataset versions to compare.")
        return redirect("datasets", project_id=project.pk)
    a = get_object_or_404(DatasetVersion, pk=a_id, project=project, status=DatasetStatus.SUCCEEDED)
    b = get_object_or_404(DatasetVersion, pk=b_id, project=project, status=DatasetStatus.SUCCEEDED)
    result = selectors.dataset_diff(a, b, limit=500)
    return render(
        request,
        "datasets/diff.html",
        {"project": project, "role": role, "a": a, "b": b, "diff": result},
    )


# Columns of the lineage drawing, left to right.
LINEAGE_COLUMNS = {
    "source_batch": 0,
    "item_summary": 1,
    "guideline": 1,
    "annotation_summary": 2,
    "agreement_run": 3,
    "resolution": 3,
    "dataset_version": 4,
}
NODE_W, NODE_H, COL_GAP, ROW_GAP = 190, 44, 70, 18
# Items → version would cross the whole drawing; the JSON keeps it, the picture implies it.
UNDRAWN_RELATIONS = frozenset({"rows_of"})


def lineage_layout(graph: dict) -> dict:
    """Positions for a left-to-right drawing of the lineage graph (plain SVG, no JS)."""
    columns: dict[int, list[dict]] = {}
    for node in graph["nodes"]:
        columns.setdefault(LINEAGE_COLUMNS.get(node["type"], 4), []).append(node)
    height = max((len(nodes) for nodes in columns.values()), default=1) * (NODE_H + ROW_GAP)
    placed = {}
    for col, nodes in columns.items():
        offset = (height - len(nodes) * (NODE_H + ROW_GAP)) / 2
        for i, node in enumerate(nodes):
            x = 10 + col * (NODE_W + COL_GAP)
            y = 10 + offset + i * (NODE_H + ROW_GAP)
            placed[node["id"]] = {
                **node,
                "x": x,
                "y": y,
                "title": str(node.get("label", node["id"]))[:28],
                "subtitle": node["type"].replace("_", " "),
            }
    edges = []
    for edge in graph["edges"]:
        if edge["relation"] in UNDRAWN_RELATIONS:
            continue
        a, b = placed.get(edge["from"]), placed.get(edge["to"])
        if a is None or b is None:
            continue
        x1, y1 = a["x"] + NODE_W, a["y"] + NODE_H / 2
        x2, y2 = b["x"], b["y"] + NODE_H / 2
        if x2 <= x1:  # same column: go around the right side
            x2, y2 = b["x"] + NODE_W, b["y"] + NODE_H / 2
        mid = (x1 + x2) / 2
        edges.append(
            {
                "path": (
                    f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
                ),
                "relation": edge["relation"],
            }
        )
    width = 20 + (max(columns, default=0) + 1) * (NODE_W + COL_GAP)
    return {
        "nodes": list(placed.values()),
        "edges": edges,
        "width": width,
        "height": height + 20,
        "node_w": NODE_W,
        "node_h": NODE_H,
    }


@page_access(REVIEW_ROLES, scope=DatasetVersion, url_kwarg="dataset_id")
def lineage(request, version: DatasetVersion, role: str):
    project = version.project
    if version.status != DatasetStatus.SUCCEEDED:
        raise Http404("this version is not published")
    graph = selectors.lineage_graph(version)
    return render(
        request,
        "datasets/lineage.html",
        {
            "project": project,
            "role": role,
            "version": version,
            "graph": graph,
            "layout": lineage_layout(graph),
            "summary": version.lineage,
        },
    )


@page_access(MANAGER_ROLES)
@require_POST
def create_token(request, project: Project, role: str):
    scopes = ["read", "write"] if request.POST.get("write") == "on" else ["read"]
    try:
        token, secret = services.create_pipeline_token(
            project=project,
            name=request.POST.get("name", ""),
            scopes=scopes,
            created_by=request.user,
        )
    except ValidationError as exc:
        return _page(request, project, role, token_errors=exc.messages)
    # Redirect after POST, so a reload cannot create a second token. The secret rides in
    # the session to the next GET of the page, which shows it once and drops it.
    request.session[NEW_TOKEN_SESSION_KEY] = {
        "project": project.pk,
        "token": token.pk,
        "secret": secret,
    }
    return redirect(f"{reverse('datasets', args=[project.pk])}#new-token")


@page_access(MANAGER_ROLES, scope=PipelineToken, url_kwarg="token_id")
@require_POST
def revoke_token(request, token: PipelineToken, role: str):
    project = token.project
    services.revoke_pipeline_token(token=token, revoked_by=request.user)
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    return redirect(f"{reverse('datasets', args=[project.pk])}#tokens")
