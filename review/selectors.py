"""Reads of the review queue: flags ranked by impact, the labels on a flag's items, the
agreement history with what was in force at each run, and the transcript rule sets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from consistency.models import AgreementRun, Flag, FlagStatus, RunStatus
from consistency.selectors import rule_sets
from labeling import selectors as labeling_selectors
from labeling.models import Annotation, Item, Project


def flag_queue(project: Project, *, status: str | None = FlagStatus.OPEN, kind: str | None = None):
    """Flags of the project ranked by impact (highest first), related rows prefetched."""
    qs = Flag.objects.filter(project=project)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return (
        qs.select_related("labeler", "run")
        .prefetch_related("items", "classes")
        .order_by("-impact", "id")
    )


def neighbours(flag: Flag) -> tuple[int | None, int | None]:
    """Previous and next open flag ids in queue order (for j / k)."""
    ids = list(
        Flag.objects.filter(project_id=flag.project_id, status=FlagStatus.OPEN)
        .order_by("-impact", "id")
        .values_list("id", flat=True)
    )
    if flag.pk not in ids:
        return None, ids[0] if ids else None
    i = ids.index(flag.pk)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


def item_labels(items: Iterable[Item]) -> dict[int, list[dict]]:
    """Every current label on the items, with labeler, guideline version and comment."""
    out: dict[int, list[dict]] = defaultdict(list)
    rows = (
        Annotation.objects.filter(item__in=list(items), is_current=True)
        .select_related("labeler", "label_class", "guideline")
        .order_by("item_id", "created_at")
    )
    for a in rows:
        out[a.item_id].append(
            {
                "labeler": a.labeler.get_username(),
                "value": labeling_selectors.annotation_value(a),
                "guideline_version": a.guideline.version if a.guideline_id else None,
                "comment": a.comment,
                "created_at": a.created_at,
                "time_spent_ms": a.time_spent_ms,
            }
        )
    return out


# --------------------------------------------------------------------------- history
def _merges_of(run: AgreementRun) -> list[list[str]]:
    """``[[class, root class], ...]`` in force when the run computed: the engine records
    them in ``results["merges"]`` (``{merged key: root key}``) from ``LabelClass.merged_into``."""
    merges = (run.results or {}).get("merges") or {}
    return sorted([k, v] for k, v in merges.items())


def agreement_history(project: Project) -> list[dict]:
    """Succeeded runs, oldest first, with what was in force when each ran.

    Each entry: ``{run, created_at, krippendorff_alpha, krippendorff_alpha_ci,
    percent_agreement, n_items, n_annotations, guideline_version, merges: [[class,
    into], ...], delta_alpha}`` — ``guideline_version`` is the run's
    ``params``/``data_version`` value when it recorded one, else the latest version
    published before it started; merges are those the run recorded in its results.
    """
    runs = list(
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).order_by(
            "created_at", "id"
        )
    )
    versions = list(
        project.guidelines.order_by("published_at").values_list("version", "published_at")
    )
    out, previous = [], None
    for run in runs:
        when = run.started_at or run.created_at
        overall = (run.results or {}).get("overall") or {}
        gv = (run.params or {}).get("guideline_version") or (run.data_version or {}).get(
            "guideline_version"
        )
        if gv is None:
            gv = max((v for v, at in versions if at <= when), default=None)
        alpha = overall.get("krippendorff_alpha")
        out.append(
            {
                "run": run.pk,
                "created_at": run.created_at,
                "krippendorff_alpha": alpha,
                "krippendorff_alpha_ci": overall.get("krippendorff_alpha_ci"),
                "percent_agreement": overall.get("percent_agreement"),
                "n_items": overall.get("n_items"),
                "n_annotations": overall.get("n_annotations"),
                "guideline_version": gv,
                "merges": _merges_of(run),
                "delta_alpha": (
                    alpha - previous if alpha is not None and previous is not None else None
                ),
            }
        )
        previous = alpha if alpha is not None else previous
    return out


def alpha_before_after(project: Project) -> dict | None:
    """The last two runs' alpha, for the review page's "before → after"."""
    history = [h for h in agreement_history(project) if h["krippendorff_alpha"] is not None]
    if not history:
        return None
    after = history[-1]
    before = history[-2] if len(history) > 1 else None
    changes = []
    if before is not None:
        if before["guideline_version"] != after["guideline_version"]:
            changes.append(
                f"guideline v{before['guideline_version']} → v{after['guideline_version']}"
            )
        added = [m for m in after["merges"] if m not in before["merges"]]
        removed = [m for m in before["merges"] if m not in after["merges"]]
        changes += [f"merged {a} into {b}" for a, b in added]
        changes += [f"unmerged {a}" for a, _ in removed]
    return {
        "before": before,
        "after": after,
        "delta": (after["krippendorff_alpha"] - before["krippendorff_alpha"]) if before else None,
        "changes": changes,
    }


# --------------------------------------------------------------------------- transcript rules
def normalization_versions(project: Project) -> list[dict]:
    """Every published rule set, newest first: ``{version, rules, by, at, rationale}``."""
    return [
        {
            "version": r.version,
            "rules": r.rules,
            "by": r.created_by.get_username() if r.created_by_id else None,
            "at": r.created_at,
            "rationale": r.rationale,
        }
        for r in rule_sets(project).select_related("created_by")
    ]
