"""A labeler's page for managers and SMEs: throughput per week, and agreement with the
consensus and accuracy against ground truth over the project's agreement runs (as each
run measured them: ``results.per_labeler``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count
from django.db.models.functions import TruncWeek
from django.http import Http404
from django.shortcuts import render

from consistency import charts
from consistency.models import AgreementRun, RunStatus
from labeling.access import SME_ROLES, page_access
from labeling.models import Annotation, Project, ProjectMembership

User = get_user_model()


def labeler_history(project: Project, username: str) -> list[dict]:
    """One row per succeeded run that measured the labeler, oldest first:
    ``{run, finished_at, n, agreement_with_consensus, cohen_kappa_mean, accuracy_vs_gold,
    reasons}`` (null where the run could not compute a figure, with its reason)."""
    out = []
    runs = (
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .order_by("finished_at", "id")
        .values("id", "finished_at", "results")
    )
    for run in runs:
        for entry in (run["results"] or {}).get("per_labeler", []):
            if entry.get("labeler") == username:
                out.append(
                    {
                        "run": run["id"],
                        "finished_at": run["finished_at"],
                        "n": entry.get("n"),
                        "agreement_with_consensus": entry.get("agreement_with_consensus"),
                        "cohen_kappa_mean": entry.get("cohen_kappa_mean"),
                        "accuracy_vs_gold": entry.get("accuracy_vs_gold"),
                        "reasons": entry.get("reasons") or {},
                    }
                )
    return out


def weekly_throughput(project: Project, user) -> list[dict]:
    """Labels (current or revised) the user gave per ISO week: ``{week, n, mean_seconds}``
    (mean time spent per label, seconds, over the labels that measured it)."""
    rows = (
        Annotation.objects.filter(project=project, labeler=user)
        .annotate(week=TruncWeek("created_at"))
        .values("week")
        .annotate(n=Count("pk"), mean_ms=Avg("time_spent_ms"))
        .order_by("week")
    )
    return [
        {
            "week": r["week"],
            "n": r["n"],
            "mean_seconds": None if r["mean_ms"] is None else round(r["mean_ms"] / 1000, 1),
        }
        for r in rows
    ]


@page_access(SME_ROLES)
def labeler_page(request, project: Project, role: str, username: str):
    membership = (
        ProjectMembership.objects.filter(project=project, user__username=username)
        .select_related("user")
        .first()
    )
    user = membership.user if membership else None
    if user is None:
        # A labeler known only from imported labels is not a member, but has a history.
        user = (
            User.objects.filter(username=username, annotations__project=project).distinct().first()
        )
    if user is None:
        raise Http404("no such labeler in this project")
    history = labeler_history(project, username)
    points = [
        {
            "label": f"#{h['run']}",
            "value": h["agreement_with_consensus"],
            "ci": None,
            "title": f"run #{h['run']}",
        }
        for h in history
    ]
    return render(
        request,
        "manage/labeler.html",
        {
            "project": project,
            "role": role,
            "labeler": user,
            "membership": membership,
            "history": history,
            "throughput": weekly_throughput(project, user),
            "chart": charts.line_chart(points) if points else None,
            "n_current": Annotation.objects.filter(
                project=project, labeler=user, is_current=True
            ).count(),
        },
    )
