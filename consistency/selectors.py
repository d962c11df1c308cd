"""Reads of agreement runs, consensus and transcript rule sets that more than one caller
needs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Max, QuerySet

from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    RunStatus,
    TranscriptRuleSet,
)
from labeling import selectors as labeling_selectors
from labeling.models import Annotation, Project


def runs_for_project(project: Project) -> QuerySet[AgreementRun]:
    """The project's runs, newest first, without their (large) results."""
    return (
        AgreementRun.objects.filter(project=project)
        .select_related("created_by")
        .defer("results")
        .order_by("-created_at", "-id")
    )


def latest_finished_run(project: Project) -> AgreementRun | None:
    return (
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )


def run_consensus(
    run: AgreementRun, *, status: str | None = None, method: str | None = None
) -> QuerySet[Consensus]:
    """A run's consensus rows with item and class loaded (no query per row)."""
    rows = Consensus.objects.filter(run=run).select_related("item", "label_class")
    if status:
        rows = rows.filter(status=status)
    if method:
        rows = rows.filter(method=method)
    return rows.order_by("item_id", "method")


def alpha_trend(project: Project, limit: int = 30) -> list[dict]:
    """Overall alpha (with CI) of the project's last ``limit`` succeeded runs, oldest first.

    Reads only the ``overall`` part of each run's results from Python: runs are few, and
    JSON-path queries differ between SQLite and PostgreSQL.
    """
    runs = list(
        AgreementRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .values("id", "finished_at", "results", "params")[:limit]
    )
    out = []
    for r in reversed(runs):
        overall = (r["results"] or {}).get("overall", {})
        out.append(
            {
                "run": r["id"],
                "finished_at": r["finished_at"],
                "alpha": overall.get("krippendorff_alpha"),
                "alpha_ci": overall.get("krippendorff_alpha_ci"),
                "level": (r["params"] or {}).get("level"),
            }
        )
    return out


def data_version(project: Project | int) -> dict:
    """Snapshot of the project's current labels: highest annotation id and count."""
    project_id = project.pk if isinstance(project, Project) else project
    agg = Annotation.objects.filter(project_id=project_id, is_current=True).aggregate(
        max_id=Max("id"), n=Count("id")
    )
    return {"max_annotation_id": agg["max_id"], "n_annotations": agg["n"]}


def is_stale(run: AgreementRun) -> bool:
    """Whether the project's labels changed since the run read them."""
    if not run.data_version:
        return False
    now = data_version(run.project_id)
    return any(run.data_version.get(k) != v for k, v in now.items())


# --------------------------------------------------------------------------- transcript rules
def rule_sets(project: Project | int) -> QuerySet[TranscriptRuleSet]:
    """Every published transcript rule set of the project, newest version first."""
    project_id = project.pk if isinstance(project, Project) else project
    return TranscriptRuleSet.objects.filter(project_id=project_id).order_by("-version")


def current_rule_set(project: Project | int) -> TranscriptRuleSet | None:
    """The rule set in force (the highest version), None when none was published."""
    return rule_sets(project).first()


def current_normalization_rules(project: Project | int) -> list[dict]:
    """The latest published rule set (``[]`` when none): apply it to transcripts with
    ``consistency.normalization.normalize_texts(texts, rules)``."""
    rule_set = current_rule_set(project)
    return list(rule_set.rules) if rule_set else []


def current_normalization(project: Project | int) -> dict:
    """``{"version": n, "rules": [...]}`` of the latest published rule set (version 0 and
    no rules when none): what a run should record beside its transcription results."""
    rule_set = current_rule_set(project)
    if rule_set is None:
        return {"version": 0, "rules": []}
    return {"version": rule_set.version, "rules": list(rule_set.rules)}


# --- The final label of an item ---------------------------------------------------------
SOURCE_GROUND_TRUTH = "ground_truth"
SOURCE_SME = "sme"
SOURCE_CONSENSUS = "consensus"
# Precedence, highest first: ground truth is an externally defined label and nothing
# overrides it (an SME decision against it stays recorded and is reported as a conflict);
# an SME decision, chosen on review, overrides the run's consensus.
FINAL_LABEL_SOURCES = (SOURCE_GROUND_TRUTH, SOURCE_SME, SOURCE_CONSENSUS)


@dataclass(frozen=True)
class FinalLabel:
    """An item's final label. ``label_class_id`` is the class as stored (map it through
    ``labeling.selectors.effective_class_map`` for the class it counts as today);
    ``confidence`` is 1.0 for ground truth and an SME decision; ``status`` is the consensus
    status, or ``resolved`` for ground truth and an SME decision. ``source`` is one of
    :data:`FINAL_LABEL_SOURCES` (the ``final_label_source`` of datasets and error
    analysis)."""

    source: str  # SOURCE_GROUND_TRUTH | SOURCE_SME | SOURCE_CONSENSUS
    label_class_id: int | None
    value_text: str
    value_number: float | None
    status: str
    support: float | None
    confidence: float | None


def final_labels(
    project: Project, run: AgreementRun | None, *, method: str = ConsensusMethod.MAJORITY
) -> dict[int, FinalLabel]:
    """``{item id: FinalLabel}``, the one rule for an item's final label: its ground truth
    (``GoldLabel`` other than source ``sme``), else an SME decision (``ItemDecision``), else
    the consensus of ``run`` by ``method``; items with none are absent. Without a run,
    ground truth and SME decisions alone. Three queries."""
    out: dict[int, FinalLabel] = {}
    if run is not None:
        for row in Consensus.objects.filter(run=run, method=method).values(
            "item_id",
            "label_class_id",
            "value_text",
            "value_number",
            "support",
            "confidence",
            "status",
        ):
            out[row["item_id"]] = FinalLabel(
                source=SOURCE_CONSENSUS,
                label_class_id=row["label_class_id"],
                value_text=row["value_text"],
                value_number=row["value_number"],
                status=row["status"],
                support=row["support"],
                confidence=row["confidence"],
            )
    for item_id, class_id in labeling_selectors.sme_decisions(project).items():
        out[item_id] = FinalLabel(
            source=SOURCE_SME,
            label_class_id=class_id,
            value_text="",
            value_number=None,
            status=ConsensusStatus.RESOLVED,
            support=None,
            confidence=1.0,
        )
    for item_id, class_id, text, number in labeling_selectors.ground_truth(project):
        out[item_id] = FinalLabel(
            source=SOURCE_GROUND_TRUTH,
            label_class_id=class_id,
            value_text=text,
            value_number=number,
            status=ConsensusStatus.RESOLVED,
            support=None,
            confidence=1.0,
        )
    return out
