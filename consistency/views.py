"""The agreement dashboard (start a run, watch it, read its numbers and charts) and the
model-run page (error analysis: where the model is furthest below HLP, weighted by data).

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

from consistency import charts, jobs, model_runs, runs, selectors
from consistency.models import AgreementRun, ModelRun, RunStatus
from labeling.access import REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import Project


@page_access(REVIEW_ROLES)
def dashboard(request, project: Project, role: str):
    runs = list(selectors.runs_for_project(project)[:12])
    # A run whose worker died (stale heartbeat) does not hold the button: the reaper will
    # re-queue or fail it, and a new run may start meanwhile.
    active = next(
        (
            r
            for r in runs
            if r.status in (RunStatus.QUEUED, RunStatus.RUNNING) and not jobs.is_stalled(r)
        ),
        None,
    )
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
        "box_metrics": _box_metrics(overall) if results.get("detection") else None,
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
        "detection": results.get("detection"),
        "reasons": overall.get("reasons", {}),
        "gwet": _gwet_kpi(overall),
        "paradox": (results.get("reasons") or {}).get("paradox"),
        "paradox_classes": [
            c for c in results.get("per_class", []) if (c.get("reasons") or {}).get("paradox")
        ],
        "icc": overall.get("icc"),
    }


def _gwet_kpi(overall: dict) -> dict | None:
    """The Gwet coefficient shown beside alpha: AC1 on nominal runs, AC2 (the level's
    weights) on ordinal/interval/ratio runs; None for results computed before AC existed."""
    if "gwet_ac1" not in overall and "gwet_ac2" not in overall:
        return None
    key = "gwet_ac1" if overall.get("level") == "nominal" else "gwet_ac2"
    weights = {
        "nominal": "",
        "ordinal": "ordinal weights",
        "interval": "quadratic weights",
        "ratio": "ratio weights",
    }.get(overall.get("level"), "")
    reasons = overall.get("reasons", {})
    return {
        "key": key,
        "name": "AC1" if key == "gwet_ac1" else "AC2",
        "weights": weights,
        "value": overall.get(key),
        "ci": overall.get(f"{key}_ci"),
        "reason": reasons.get(f"{key}_ci") or reasons.get(key),
        "prevalence_index": overall.get("prevalence_index"),
        "bias_index": overall.get("bias_index"),
    }


def _box_metrics(overall: dict) -> list[dict]:
    """The headline figures of a detection run, each with its interval or why it is null."""
    reasons = overall.get("reasons", {})
    threshold = overall.get("iou_threshold")
    rows = (
        ("box_f1", f"Box F1 (IoU ≥ {threshold})", "mean over item × labeler pair"),
        ("box_mean_iou", "Mean IoU of matched boxes", "matched pairs"),
        ("count_alpha", "Box count α (interval)", "number of boxes per item"),
        ("class_alpha", "Class α (matched boxes)", "nominal"),
    )
    return [
        {
            "key": key,
            "label": label,
            "value": overall.get(key),
            "ci": overall.get(f"{key}_ci"),
            "reason": reasons.get(key) or reasons.get(f"{key}_ci"),
            "note": note,
        }
        for key, label, note in rows
    ]


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


SORTABLE = ("key", "value", "n_items", "share", "model_accuracy", "hlp", "gap_to_hlp")
CHART_WIDTH, CHART_X0, CHART_X1, CHART_ROW = 560, 170, 520, 22


@page_access(
    REVIEW_ROLES, scope=ModelRun.objects.select_related("project"), url_kwarg="model_run_id"
)
def model_run_page(request, model_run: ModelRun, role: str):
    """A model run's error analysis: the prioritisation table (by potential gain unless
    ``?sort=<column>``), accuracy beside HLP per slice as a chart, tag statistics,
    per-class metrics and confusion, the model as a labeler, and ``?compare=<run id>``."""
    project = model_run.project
    analysis = model_runs.error_analysis(model_run)
    table = analysis["prioritisation"]
    # The top rows by potential gain are where to work next; marked before any re-sort.
    for rank, row in enumerate(table):
        row["top"] = rank < 3 and bool(row["potential_gain"])
    sort = request.GET.get("sort", "")
    if sort in SORTABLE:
        descending = request.GET.get("dir") != "asc"
        present = [r for r in table if r[sort] is not None]
        present.sort(key=lambda r: r[sort], reverse=descending)
        table = present + [r for r in table if r[sort] is None]
    others = ModelRun.objects.filter(project=project).exclude(pk=model_run.pk).order_by("-id")
    comparison = None
    compare_id = request.GET.get("compare", "")
    if compare_id.isdigit():
        other = others.filter(pk=int(compare_id)).first()
        if other is not None:
            comparison = model_runs.compare_runs(model_run, other)
            comparison["other_name"] = other.name
            comparison["items"] = comparison["items"][:50]
    return render(
        request,
        "consistency/model_run.html",
        {
            "project": project,
            "role": role,
            "run": model_run,
            "analysis": analysis,
            "table": table,
            "sort": sort,
            "chart": _accuracy_vs_hlp_chart(analysis["prioritisation"]),
            "label_errors_shown": analysis["label_errors"][:20],
            "confusion_rows": list(
                zip(
                    (analysis["confusion"] or {}).get("classes") or [],
                    (analysis["confusion"] or {}).get("counts") or [],
                    strict=True,
                )
            ),
            "others": others[:50],
            "comparison": comparison,
            "detection_rows": [analysis["overall"], *analysis["slices"]]
            if analysis.get("detection")
            else [],
        },
    )


def _accuracy_vs_hlp_chart(rows: list[dict]) -> dict:
    """SVG geometry: per slice with both figures, a dot at the model's accuracy and a bar
    at HLP on a 0-1 scale; slices in the table's order (potential gain)."""
    shown = [r for r in rows if r["model_accuracy"] is not None and r["hlp"] is not None][:20]
    span = CHART_X1 - CHART_X0
    out = []
    for n, r in enumerate(shown):
        y = 16 + n * CHART_ROW
        out.append(
            {
                "label": f"{r['key']}={r['value']}",
                "y": y,
                "acc_x": CHART_X0 + span * r["model_accuracy"],
                "hlp_x": CHART_X0 + span * r["hlp"],
                "accuracy": f"{r['model_accuracy']:.3f}",
                "hlp": f"{r['hlp']:.3f}",
            }
        )
    ticks = [{"x": CHART_X0 + span * t / 4, "label": f"{t / 4:.2f}"} for t in range(5)]
    height = 30 + CHART_ROW * max(len(out), 1)
    return {
        "rows": out,
        "ticks": ticks,
        "width": CHART_WIDTH,
        "height": height,
        "axis_y": height - 14,
        "x0": CHART_X0,
    }
