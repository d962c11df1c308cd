"""The manager's flag for a labeler paused by the ground-truth checks (issue 11, item 6).

The pause itself belongs to labeling: ``labeling.assignment._score_check`` sets
``LabelerState.paused_at`` (and writes ``labeler.paused``) in the submit's transaction.
The flag belongs to consistency, and labeling may not import consistency (DESIGN,
"Layout"). So the flag is a record *derived* from the pause, kept in step by
:func:`sync_pause_flags`, which is idempotent: one open flag of kind ``labeler`` per
pause (signature ``paused:<labeler id>:<paused_at>``), never a second for the same
pause (open, or dismissed by an SME); an open pause flag of a labeler who is no longer
paused is resolved.

Why derived, not raised inside the submit: the submit has two callers (the API and the
labeling page); the page lives in labeling and cannot call consistency, and wrapping
only the API's submit would leave the page's pauses without a flag. A signal would hide
the write (STYLE: no logic in signals). Instead the pause is the source of truth and
the flag is brought in step wherever the layering allows:

* right after a submit through the API (``api.labeling``: the usual path of tools);
* whenever a manager reads the flag queue (page and API), so the queue never shows a
  paused labeler without their flag;
* by the periodic task ``consistency.tasks.sync_all_pause_flags`` (every 5 minutes),
  for pauses made on the labeling page while no manager is looking;
* :func:`resume_labeler` resumes and resolves the flag in one transaction.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from consistency.models import Flag, FlagKind, FlagStatus
from labeling import assignment, selectors
from labeling.models import LabelerState, Project
from provenance import events

SIGNATURE_PREFIX = "paused:"


def _signature(labeler_id: int, paused_at) -> str:
    return f"{SIGNATURE_PREFIX}{labeler_id}:{paused_at.isoformat()}"


def _open_pause_flags(project: Project):
    return Flag.objects.filter(
        project=project,
        kind=FlagKind.LABELER,
        status=FlagStatus.OPEN,
        evidence__signature__startswith=SIGNATURE_PREFIX,
    )


def _evidence(state: LabelerState, settings: dict) -> dict:
    """What the pause was decided on: the counters since the last resume (fractions in
    0-1; ``accuracy`` null with a reason when no check was answered)."""
    n, correct = state.n_checks, state.n_checks_correct
    return {
        "signature": _signature(state.labeler_id, state.paused_at),
        "cause": "ground_truth_checks",
        "paused_at": state.paused_at.isoformat(),
        "paused_reason": state.paused_reason,
        "n_checks": n,
        "n_correct": correct,
        "accuracy": correct / n if n else None,
        "threshold": settings["min_accuracy"],
        "min_checks": settings["min_checks"],
        "reasons": {} if n else {"accuracy": "no checks answered"},
    }


def _flagged(project: Project, signatures: set[str]) -> set[str]:
    """Which of these pauses have a flag already, in any status: a pause an SME
    dismissed (or resolved without resuming) is not flagged again; a new pause is."""
    if not signatures:
        return set()
    return set(
        Flag.objects.filter(
            project=project, kind=FlagKind.LABELER, evidence__signature__in=sorted(signatures)
        ).values_list("evidence__signature", flat=True)
    )


def _in_step(project: Project, labeler_id: int | None) -> bool:
    """Whether every pause has its flag and every open pause flag its pause (two or three
    reads, no lock: the usual case on the read paths takes no write transaction)."""
    states = LabelerState.objects.filter(project=project, paused_at__isnull=False)
    flags = _open_pause_flags(project)
    if labeler_id is not None:
        states, flags = states.filter(labeler_id=labeler_id), flags.filter(labeler_id=labeler_id)
    wanted = {_signature(i, at) for i, at in states.values_list("labeler_id", "paused_at")}
    open_sigs = set(flags.values_list("evidence__signature", flat=True))
    if not open_sigs <= wanted:
        return False
    return wanted <= open_sigs or wanted <= _flagged(project, wanted)


def sync_pause_flags(project: Project, *, labeler_id: int | None = None) -> list[Flag]:
    """Bring the project's pause flags in step with the pauses (all labelers, or one).

    Raises one open ``labeler`` flag per pause that has no flag yet (evidence: accuracy
    and n checks since the last resume, the threshold; a pause whose flag an SME
    dismissed is not raised again, a later pause is);
    resolves the open pause flags of labelers no longer paused. Returns the flags
    created. Two reads when nothing changed; otherwise the labelers' counter rows are
    locked first, so two concurrent calls cannot both raise a flag.
    """
    if _in_step(project, labeler_id):
        return []
    return _sync_locked(project, labeler_id)


def flag_if_paused(project: Project, labeler_id: int) -> list[Flag]:
    """After a labeler's submit: raise their pause flag when the submit paused them. One
    read when they are not paused (the submit path's budget); else as
    :func:`sync_pause_flags`."""
    if not LabelerState.objects.filter(
        project=project, labeler_id=labeler_id, paused_at__isnull=False
    ).exists():
        return []
    return sync_pause_flags(project, labeler_id=labeler_id)


@transaction.atomic
def _sync_locked(project: Project, labeler_id: int | None) -> list[Flag]:
    states = (
        LabelerState.objects.select_for_update(of=("self",))
        .select_related("labeler")
        .filter(project=project)
    )
    flags = _open_pause_flags(project)
    if labeler_id is not None:
        states = states.filter(labeler_id=labeler_id)
        flags = flags.filter(labeler_id=labeler_id)
    paused = {s.labeler_id: s for s in states.filter(paused_at__isnull=False).order_by("pk")}
    open_flags = list(flags)
    stale = [
        f
        for f in open_flags
        if f.labeler_id not in paused
        or f.evidence.get("signature") != _signature(f.labeler_id, paused[f.labeler_id].paused_at)
    ]
    _resolve(project, stale, actor=None, reason="the labeler is no longer paused")
    if not paused:
        return []
    settings = selectors.check_settings(project)
    flagged = _flagged(project, {_signature(i, s.paused_at) for i, s in paused.items()})
    created = []
    for state in sorted(paused.values(), key=lambda s: (s.paused_at, s.pk)):
        evidence = _evidence(state, settings)
        if evidence["signature"] in flagged:
            continue
        accuracy = evidence["accuracy"]
        shown = f"{accuracy:.0%}" if accuracy is not None else "n/a"
        created.append(
            Flag.objects.create(
                project=project,
                run=None,
                kind=FlagKind.LABELER,
                labeler_id=state.labeler_id,
                # How far below the bar, weighted by the checks it rests on.
                impact=round(
                    max(settings["min_accuracy"] - (accuracy or 0.0), 0.0) * state.n_checks, 4
                ),
                suggested_action="review_labeler",
                summary=(
                    f"{state.labeler.get_username()} paused: accuracy on ground-truth checks"
                    f" {state.n_checks_correct}/{state.n_checks} ({shown}),"
                    f" below {settings['min_accuracy']:.0%}"
                )[:300],
                evidence=evidence,
            )
        )
    return created


def _resolve(project: Project, flags: list[Flag], *, actor, reason: str) -> None:
    now = timezone.now()
    for flag in flags:
        flag.status, flag.closed_at = FlagStatus.RESOLVED, now
        flag.save(update_fields=["status", "closed_at"])
        events.flag_resolved(
            project_id=project.pk,
            actor_id=getattr(actor, "pk", None),
            flag_id=flag.pk,
            before={"status": FlagStatus.OPEN},
            after={"status": FlagStatus.RESOLVED, "action": "resume_labeler"},
            reason=reason,
        )


def open_pause_flags(project: Project) -> dict[int, Flag]:
    """``{labeler id: their open pause flag}`` (for the pages that link to it)."""
    return {f.labeler_id: f for f in _open_pause_flags(project).order_by("pk")}


@transaction.atomic
def resume_labeler(
    *, project: Project, labeler: AbstractBaseUser, actor: AbstractBaseUser | None, reason: str = ""
) -> list[Flag]:
    """Resume a paused labeler (``labeling.assignment.resume_labeler``: ValidationError
    when not paused) and resolve their open pause flags, in one transaction. Returns the
    flags resolved."""
    assignment.resume_labeler(project=project, labeler=labeler, actor=actor, reason=reason)
    flags = list(_open_pause_flags(project).filter(labeler_id=labeler.pk))
    _resolve(project, flags, actor=actor, reason=reason or "labeler resumed")
    return flags


def sync_all_pause_flags() -> int:
    """Every project with a paused labeler or an open pause flag (periodic task).
    Returns how many flags were raised."""
    ids = set(
        LabelerState.objects.filter(paused_at__isnull=False).values_list("project_id", flat=True)
    ) | set(
        Flag.objects.filter(
            kind=FlagKind.LABELER,
            status=FlagStatus.OPEN,
            evidence__signature__startswith=SIGNATURE_PREFIX,
        ).values_list("project_id", flat=True)
    )
    return sum(len(sync_pause_flags(p)) for p in Project.objects.filter(pk__in=ids))
