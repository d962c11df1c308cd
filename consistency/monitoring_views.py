"""The monitoring page: what drifted, where and since when, per metric and slice, and
each labeler's agreement and ground-truth accuracy week by week.

Viewers, SMEs and managers look (it shows every labeler's agreement, so labelers get
403); SMEs and managers start a run. Everything drawn comes from one stored
``MonitoringRun.results``; the chart geometry is :mod:`consistency.monitoring_charts`.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from consistency import monitoring, pause_flags
from consistency import monitoring_charts as charts
from consistency.models import MonitoringRun, RunStatus
from labeling import selectors as labeling_selectors
from labeling.access import REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import Project

METRIC_TITLES = {
    "mean_brightness": "Image brightness",
    "width": "Image width",
    "height": "Image height",
    "missing_metadata": "Missing metadata",
    "volume": "Volume",
    "label_distribution": "Label distribution",
    "krippendorff_alpha": "Krippendorff's α",
    "gwet_ac1": "Gwet's AC1",
    "labeler_agreement": "Agreement with the others' majority",
    "labeler_label_distribution": "Labeler's label distribution",
}
NUMBER_METRICS = ("mean_brightness", "width", "height")
TEST_NAMES = {
    "ks": "Kolmogorov–Smirnov",
    "wasserstein": "normalised Wasserstein",
    "chi_square": "chi-square",
    "jensen_shannon": "Jensen–Shannon",
    "bootstrap_difference": "bootstrap difference",
    "binomial_rate": "binomial rate test",
}


def _subject(check: dict) -> str:
    if check.get("labeler"):
        return f"labeler {check['labeler']}"
    s = check.get("slice")
    if s:
        return f"{s['key']} = {s['value']}" if s.get("value") is not None else f"by {s['key']}"
    if check.get("field"):
        return f"metadata key {check['field']}"
    return "all items" if check["metric"] in NUMBER_METRICS else "overall"


def _figure(side: dict, metric: str) -> str:
    if metric in NUMBER_METRICS:
        return "–" if side.get("mean") is None else f"mean {side['mean']:.4g}"
    if metric == "volume" and side.get("per_day") is not None:
        return f"{side['per_day']:.3g}/day"
    if side.get("value") is not None:
        return f"{side['value']:.3f}"
    shares = side.get("shares") or {}
    if metric == "missing_metadata":
        return f"{(shares.get('missing') or 0):.1%} missing"
    if shares:
        top = max(shares, key=lambda k: shares[k] or 0)
        return f"{top} {shares[top]:.0%}"
    return "–"


def _card(check: dict, current_start: str) -> dict:
    metric = check["metric"]
    card = {
        "check": check,
        "title": METRIC_TITLES.get(metric, metric),
        "subject": _subject(check),
        "baseline": _figure(check["baseline"], metric),
        "current": _figure(check["current"], metric),
        "series": charts.series_chart(check.get("series"), current_start=current_start),
        "since": (check.get("series") or {}).get("since"),
        "reason": (check.get("reasons") or {}).get("drifted"),
        "test": TEST_NAMES.get(check["test"], check["test"]),
    }
    if metric in NUMBER_METRICS:
        card["hist"] = charts.histogram_pair(check.get("histogram"))
    elif "shares" in check["baseline"]:
        card["shares"] = charts.share_pair(check["baseline"], check["current"])
    return card


def _fold_aliases(cards: list[dict]) -> list[dict]:
    """Drop the cards of checks that cut the same items as an earlier one (``same_as``)
    and name their slices on that card instead ("also line = A2, device = ...")."""
    kept, by_subject = [], {}
    for card in cards:
        check = card["check"]
        same = check.get("same_as")
        if same:
            key = (check["metric"], same["key"], same["value"])
            if key in by_subject:
                by_subject[key]["also"].append(_subject(check))
                continue
        card["also"] = []
        if check.get("slice"):
            by_subject[(check["metric"], check["slice"]["key"], check["slice"]["value"])] = card
        kept.append(card)
    return kept


def _constant(cards: list[dict]) -> float | None:
    """The value every item of every window has, if there is only one."""
    means = set()
    for card in cards:
        for side in (card["check"]["baseline"], card["check"]["current"]):
            if side.get("n") and side.get("std") not in (0, 0.0):
                return None
            if side.get("n"):
                means.add(side.get("mean"))
    return means.pop() if len(means) == 1 else None


def _check_chart(entry: dict, threshold: float, current_start: str | None) -> dict | None:
    """Weekly accuracy on ground-truth checks (``labeling.selectors.check_accuracy``),
    with the pause bar as the lower edge of the band."""
    series = {
        "figure": "check_accuracy",
        "points": [
            {"week": w["week"], "n": w["n_checks"], "value": w["accuracy"]} for w in entry["weekly"]
        ],
        "alarm": {"low": threshold},
    }
    return charts.series_chart(series, current_start=current_start)


def _add_checks(
    rows: list[dict], checks: list[dict], flags: dict, threshold: float, current_start
) -> list[dict]:
    """Put each labeler's ground-truth check accuracy (live, not from the run) and pause
    state beside their run figures; labelers with checks but no row in the run get a
    row of their own. Drifted or paused labelers first."""
    by_name = {r["labeler"]: r for r in rows}
    for entry in checks:
        row = by_name.get(entry["labeler"])
        if row is None:
            row = by_name[entry["labeler"]] = {
                "labeler": entry["labeler"],
                "drifted": False,
                "agreement": None,
                "distribution": None,
                "gold": None,
                "n_gold": 0,
                "n_labels": 0,
            }
            rows.append(row)
        row.update(
            {
                # Not shaded by the run's window: checks are live and may be newer than any run.
                "checks": _check_chart(entry, threshold, None),
                "n_checks": entry["n_checks"],
                "check_accuracy": entry["accuracy"],
                "paused": entry["paused"],
                "paused_at": entry["paused_at"],
                "paused_reason": entry["paused_reason"],
                "pause_flag": flags.get(entry["labeler_id"]),
            }
        )
    for row in rows:
        row.setdefault("n_checks", 0)
        row.setdefault("paused", False)
    rows.sort(key=lambda r: (not (r["drifted"] or r["paused"]), r["labeler"]))
    return rows


def _labeler_rows(results: dict, cards: list[dict], current_start: str) -> list[dict]:
    by_labeler = {}
    for card in cards:
        lab = card["check"].get("labeler")
        if lab:
            by_labeler.setdefault(lab, {})[card["check"]["metric"]] = card
    rows = []
    for entry in results.get("labelers", []):
        name = entry["labeler"]
        own = by_labeler.get(name, {})
        weeks = entry["weeks"]
        agreement = own.get("labeler_agreement")
        gold_series = {
            "figure": "gold_accuracy",
            "points": [
                {"week": w["week"], "n": w["n_gold"], "value": w["gold_accuracy"]} for w in weeks
            ],
            "alarm": {},
        }
        drifted = any(c["check"]["drifted"] for c in own.values())
        rows.append(
            {
                "labeler": name,
                "drifted": drifted,
                "agreement": agreement,
                "distribution": own.get("labeler_label_distribution"),
                "gold": charts.series_chart(gold_series, current_start=current_start)
                if any(w["n_gold"] for w in weeks)
                else None,
                "n_gold": sum(w["n_gold"] for w in weeks),
                "n_labels": sum(w["n_labels"] for w in weeks),
            }
        )
    rows.sort(key=lambda r: (not r["drifted"], r["labeler"]))
    return rows


@page_access(REVIEW_ROLES)
def monitoring_page(request, project: Project, role: str):
    """The latest finished run (or ``?run=<id>``): drifted checks first, then per metric
    the baseline and current distributions per slice, agreement, labelers, volume and
    missing metadata, and the checks that could not be judged, with their reasons."""
    recent = list(MonitoringRun.objects.filter(project=project).order_by("-created_at")[:10])
    active = next((r for r in recent if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)), None)
    run = None
    wanted = request.GET.get("run", "")
    if wanted.isdigit():
        run = MonitoringRun.objects.filter(project=project, pk=int(wanted)).first()
    if run is None:
        run = next((r for r in recent if r.status == RunStatus.SUCCEEDED), None)
    context = {
        "project": project,
        "role": role,
        "can_start": role in SME_ROLES,
        "recent": recent,
        "active": active,
        "run": run,
        "failed": next((r for r in recent if r.status == RunStatus.FAILED), None),
    }
    # Ground-truth checks are read live (they are not part of a run): a pause shows here
    # at once, with its flag (raised here at the latest, consistency.pause_flags).
    pause_flags.sync_pause_flags(project)
    checks = labeling_selectors.check_accuracy(project)
    check_settings = labeling_selectors.check_settings(project)
    threshold = check_settings["min_accuracy"]
    flags = pause_flags.open_pause_flags(project)
    current_start = run.params["current"]["start"] if run is not None and run.results else None
    context["labelers"] = _add_checks([], checks, flags, threshold, current_start)
    context["check_threshold"] = threshold
    # The check lines only where checks are in use (a rate set, or answers recorded).
    context["checks_on"] = bool(checks) or check_settings["rate"] > 0
    if run is not None and run.results:
        results = run.results
        current_start = run.params["current"]["start"]
        cards = _fold_aliases([_card(c, current_start) for c in results["checks"]])
        by_metric: dict[str, list[dict]] = {}
        for card in cards:
            by_metric.setdefault(card["check"]["metric"], []).append(card)
        inputs = [
            {
                "metric": m,
                "title": METRIC_TITLES[m],
                "cards": by_metric[m],
                # the same single value everywhere (fixed-size images): one line, no charts
                "constant": _constant(by_metric[m]),
            }
            for m in NUMBER_METRICS
            if m in by_metric
        ]
        context.update(
            {
                "results": results,
                "summary": results.get("summary", {}),
                "settings": results.get("settings", {}),
                "drifted": [c for c in cards if c["check"]["drifted"]],
                "inputs": inputs,
                "labels": by_metric.get("label_distribution", []),
                "agreement": by_metric.get("krippendorff_alpha", [])
                + by_metric.get("gwet_ac1", []),
                "labelers": _add_checks(
                    _labeler_rows(results, cards, current_start),
                    checks,
                    flags,
                    threshold,
                    current_start,
                ),
                "volume": by_metric.get("volume", []) + by_metric.get("missing_metadata", []),
                "undecided": [c for c in cards if c["check"]["drifted"] is None],
            }
        )
    return render(request, "consistency/monitoring.html", context)


@page_access(SME_ROLES)
@require_POST
def start_monitoring(request, project: Project, role: str):
    """Start a monitoring run with the default windows and slices."""
    try:
        run = monitoring.start_monitoring_run(project=project, created_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("consistency-monitoring", project_id=project.pk)
    messages.success(request, f"Monitoring run #{run.pk} queued.")
    return redirect("consistency-monitoring", project_id=project.pk)
