"""The agreement dashboard: start a run, watch it, read its numbers and charts.

Viewers, SMEs and managers may look (results show everyone's agreement, so labelers get
403); SMEs and managers may start a run. Charts are inline SVG computed by
:mod:`consistency.charts` from the run's stored results: nothing is fetched from a CDN.
"""

from __future__ import annotations

import math

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from consistency import charts, runs, selectors
from consistency.models import AgreementRun, RunStatus
from labeling.access import REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import Project


@page_access(REVIEW_ROLES)
def dashboard(request, project: Project, role: str):
    runs = list(selectors.runs_for_project(project)[:12])
    active = next((r for r in runs if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)), None)
    run_id = request.GET.get("run")
    run = None
    if run_id and run_id.isdigit():
        run = AgreementRun.objects.filter(project=project, pk=int(run_id)).first()
    run = run or selectors.latest_finished_run(project)
    context = {
        "project": project,
        "role": role,
        "can_start": role in SME_ROLES,
        "runs": runs,
        "active": active,
        "run": run,
        "latest_failed": next((r for r in runs if r.status == RunStatus.FAILED), None),
        "trend": _trend_chart(project),
    }
    if run is not None and run.results:
        context.update(_result_context(run))
        context["is_stale"] = selectors.is_stale(run)
    return render(request, "consistency/dashboard.html", context)


@page_access(SME_ROLES)
@require_POST
def start_run(request, project: Project, role: str):
    try:
        run = runs.start_agreement_run(project=project, params={}, created_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("consistency-dashboard", project_id=project.pk)
    messages.success(request, f"Agreement run #{run.pk} queued.")
    return redirect("consistency-dashboard", project_id=project.pk)


def _trend_chart(project: Project) -> dict | None:
    points = [
        {
            "label": f"#{p['run']}",
            "value": p["alpha"],
            "ci": p["alpha_ci"],
            "title": f"run #{p['run']}, {p['finished_at']:%Y-%m-%d %H:%M}",
        }
        for p in selectors.alpha_trend(project)
    ]
    return charts.line_chart(points) if points else None


def _result_context(run: AgreementRun) -> dict:
    results = run.results
    overall = results["overall"]
    hlp = results.get("hlp", {})
    per_labeler = sorted(
        results.get("per_labeler", []),
        key=lambda e: (e.get("agreement_with_consensus") is None, e.get("labeler")),
    )
    defined = [e for e in per_labeler if e.get("agreement_with_consensus") is not None]
    lowest = min(defined, key=lambda e: e["agreement_with_consensus"]) if defined else None
    labeler_bars = charts.bars(
        [
            {
                "label": e["labeler"],
                "value": e.get("agreement_with_consensus"),
                "note": f"n={e['n']}",
                "highlight": lowest is not None and e["labeler"] == lowest["labeler"],
            }
            for e in per_labeler
        ]
    )
    pairwise = results.get("pairwise", {})
    kappa_map = None
    if pairwise.get("labelers") and not pairwise.get("reasons", {}).get("cohen_kappa"):
        names = pairwise["labelers"]
        shared = pairwise.get("n_shared") or [[None] * len(names)] * len(names)
        titles = [
            [
                f"{a} vs {b}: kappa {_fmt(k)} on {n} shared items"
                for b, k, n in zip(names, krow, srow, strict=True)
            ]
            for a, krow, srow in zip(names, pairwise["cohen_kappa"], shared, strict=True)
        ]
        kappa_map = charts.heatmap(names, names, pairwise["cohen_kappa"], titles=titles)
    confusion = results.get("confusion", {})
    confusion_map = None
    if confusion.get("classes") and confusion.get("counts"):
        keys = confusion["classes"]
        confusion_map = charts.heatmap(
            keys, keys, confusion["counts"], kind="row_share", cell=52, label_width=130
        )
    slice_groups = _slice_groups(results.get("slices", []), hlp.get("value"))
    guideline = _guideline_chart(results.get("slices", []), overall.get("krippendorff_alpha"))
    return {
        "results": results,
        "overall": overall,
        "hlp": hlp,
        "per_class": results.get("per_class", []),
        "per_labeler": per_labeler,
        "lowest_labeler": lowest,
        "labeler_bars": labeler_bars,
        "kappa_map": kappa_map,
        "pairwise_reason": pairwise.get("reasons", {}).get("cohen_kappa"),
        "confusion_map": confusion_map,
        "confusion_reason": confusion.get("reasons", {}).get("counts"),
        "slice_groups": slice_groups,
        "guideline_slices": guideline,
        "consensus": results.get("consensus", {}),
        "transcription": results.get("transcription"),
        "reasons": overall.get("reasons", {}),
    }


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _guideline_chart(slices: list[dict], overall_alpha: float | None) -> dict | None:
    """Alpha (with its interval) of the labels made under each guideline version."""
    entries = [s for s in slices if s["key"] == "guideline_version" and s.get("value")]
    if not entries:
        return None
    lows = [s["krippendorff_alpha_ci"][0] for s in entries if s.get("krippendorff_alpha_ci")]
    lows += [s["krippendorff_alpha"] for s in entries if s.get("krippendorff_alpha") is not None]
    lo = min(0.0, math.floor(min(lows, default=0.0) * 4) / 4)
    chart = charts.dot_whiskers(
        [
            {
                "label": s["value"],
                "value": s.get("krippendorff_alpha"),
                "ci": s.get("krippendorff_alpha_ci"),
                "n": s.get("n_items"),
            }
            for s in entries
        ],
        reference=overall_alpha,
        lo=max(lo, -1.0),
    )
    return {"entries": entries, "chart": chart}


def _slice_groups(slices: list[dict], overall_hlp: float | None) -> list[dict]:
    groups: dict[str, list] = {}
    for s in slices:
        if s.get("value") is None:
            continue
        groups.setdefault(s["key"], []).append(s)
    out = []
    for key, entries in groups.items():
        chart = charts.dot_whiskers(
            [
                {
                    "label": f"{e['value']}",
                    "value": e.get("hlp"),
                    "ci": e.get("hlp_ci"),
                    "n": e.get("n_items"),
                    "method": e.get("hlp_method") or "",
                    "n_basis": e.get("hlp_n_items"),
                    "basis": (
                        f"{e.get('hlp_n_items')} gold"
                        if e.get("hlp_method") == "gold"
                        else f"{e.get('hlp_n_items') or e.get('n_items')}"
                    ),
                }
                for e in entries
            ],
            reference=overall_hlp,
        )
        out.append({"key": key, "title": key.replace("_", " "), "entries": entries, "chart": chart})
    return out
