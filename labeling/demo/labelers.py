"""Simulated labelers for the phone-screen project and their confusion behaviour.

Each persona is a :class:`LabelerProfile`; :func:`simulate_label` turns (persona, item,
guideline version, labelling day, random generator) into one class key.  The planted
behaviours, which the consistency jobs are expected to rediscover:

* everyone confuses ``deep_scratch`` and ``shallow_scratch`` more the closer an item's
  severity is to the 0.5 boundary, symmetrically (so the pair is genuinely confusable,
  not one labeler's quirk); guideline v2 (depth/width rule) reduces but does not remove
  this;
* faint scratches split between ``no_defect`` / ``shallow_scratch`` / ``borderline``,
  with each persona leaning its own way;
* the dark camera (tag ``dark``) triples everyone's error rate and makes faint marks
  more often read as ``no_defect``; glare adds errors too;
* ``labeler5`` is careless (a uniformly random class ~30% of the time, and fast);
* ``labeler6`` calls ~80% of shallow scratches deep;
* ``labeler7`` drifts: accurate for four weeks, then much worse in weeks 5-6 (a week
  after guideline v2; the monitoring page flags it);
* ``labeler8`` is cautious and uses ``borderline`` near the deep/shallow boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NO_DEFECT = "no_defect"
SHALLOW = "shallow_scratch"
DEEP = "deep_scratch"
DENT = "dent"
CRACK = "crack"
BORDERLINE = "borderline"
DEFECT_KEYS = (NO_DEFECT, SHALLOW, DEEP, DENT, CRACK)

SEVERITY_BOUNDARY = 0.5  # deep_scratch iff a scratch's severity >= this
_BOUNDARY_WIDTH = 0.07  # how fast deep/shallow confusion fades away from the boundary
_BOUNDARY_PEAK = 0.45  # P(flip) exactly at the boundary, guideline v1

# Where a generic (non-scratch-boundary) mistake lands, by the label the labeler had.
_PLAUSIBLE: dict[str, tuple[tuple[str, float], ...]] = {
    NO_DEFECT: ((SHALLOW, 0.7), (DENT, 0.3)),
    SHALLOW: ((NO_DEFECT, 0.6), (DEEP, 0.4)),
    DEEP: ((SHALLOW, 0.6), (CRACK, 0.4)),
    DENT: ((NO_DEFECT, 0.6), (DEEP, 0.4)),
    CRACK: ((DEEP, 0.8), (DENT, 0.2)),
    BORDERLINE: ((SHALLOW, 0.5), (NO_DEFECT, 0.5)),
}


@dataclass(frozen=True)
class LabelerProfile:
    """One simulated labeler.

    ``faint_split`` is P(no_defect, shallow_scratch, borderline) for a faint scratch.
    ``drift_after_day`` counts days since the first capture; from then on the
    labeler's generic error rate is at least ``drift_error``.
    """

    username: str
    full_name: str
    persona: str
    base_error: float
    random_rate: float = 0.0
    shallow_to_deep: float = 0.0
    borderline_near_boundary: float = 0.0
    faint_split: tuple[float, float, float] = (0.4, 0.45, 0.15)
    drift_after_day: int | None = None
    drift_error: float = 0.0
    speed: float = 1.0


IMAGE_LABELERS: tuple[LabelerProfile, ...] = (
    LabelerProfile(
        "labeler1", "Ana Veteran", "veteran: very accurate", 0.02, faint_split=(0.35, 0.5, 0.15)
    ),
    LabelerProfile(
        "labeler2", "Ben Steady", "accurate, lenient on faint marks", 0.03,
        faint_split=(0.55, 0.35, 0.10),
    ),
    LabelerProfile(
        "labeler3", "Chen Strict", "accurate, strict on faint marks", 0.03,
        faint_split=(0.3, 0.55, 0.15),
    ),
    LabelerProfile(
        "labeler4", "Dara Newcomer", "accurate, a little noisier", 0.045,
        faint_split=(0.5, 0.4, 0.1), speed=1.2,
    ),
    LabelerProfile(
        "labeler5", "Eli Hasty", "careless: random class ~30% of the time, fast", 0.08,
        random_rate=0.30, faint_split=(0.5, 0.4, 0.1), speed=0.45,
    ),
    LabelerProfile(
        "labeler6", "Farah Severe", "calls ~80% of shallow scratches deep", 0.03,
        shallow_to_deep=0.8, faint_split=(0.2, 0.7, 0.1),
    ),
    LabelerProfile(
        "labeler7", "Gus Drifting", "accurate for four weeks, then drifts", 0.03,
        drift_after_day=28, drift_error=0.45,
    ),
    LabelerProfile(
        "labeler8", "Hana Careful", "cautious: uses borderline near the deep/shallow boundary",
        0.03, borderline_near_boundary=0.5, faint_split=(0.25, 0.3, 0.45), speed=1.3,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class ItemContext:
    """What the simulation needs to know about an item (ground truth included)."""

    truth: str
    severity: float
    is_faint: bool
    dark: bool
    glare: bool


def boundary_closeness(severity: float) -> float:
    """1 at the deep/shallow boundary, decaying to ~0 a few widths away."""
    return math.exp(-abs(severity - SEVERITY_BOUNDARY) / _BOUNDARY_WIDTH)


def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    keys = [k for k, _ in options]
    p = np.asarray([w for _, w in options], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def simulate_label(
    profile: LabelerProfile,
    item: ItemContext,
    rng: np.random.Generator,
    *,
    guideline_version: int,
    day: float,
) -> str:
    """One label by ``profile`` for ``item``; ``day`` = days since the first capture."""
    # Draw every random number up front so each decision uses a fixed slot of the stream.
    u = rng.random(6)
    if u[0] < profile.random_rate:
        return DEFECT_KEYS[int(rng.integers(len(DEFECT_KEYS)))]

    if item.is_faint:
        p_no, p_sh, p_bl = profile.faint_split
        if item.dark:  # a faint mark disappears in a dark image
            p_no, p_sh = p_no + 0.5 * p_sh, 0.5 * p_sh
        label = _choice(rng, ((NO_DEFECT, p_no), (SHALLOW, p_sh), (BORDERLINE, p_bl)))
        return label

    label = item.truth
    if item.truth in (SHALLOW, DEEP):
        near = boundary_closeness(item.severity)
        if u[1] < profile.borderline_near_boundary * near:
            return BORDERLINE
        if item.truth == SHALLOW and u[2] < profile.shallow_to_deep:
            label = DEEP
        else:
            p_flip = _BOUNDARY_PEAK * near * (0.6 if guideline_version >= 2 else 1.0)
            if item.dark:
                p_flip = min(0.5, p_flip * 1.3)
            if u[3] < p_flip:
                label = DEEP if label == SHALLOW else SHALLOW

    err = profile.base_error
    if profile.drift_after_day is not None and day >= profile.drift_after_day:
        err = max(err, profile.drift_error)
    if item.dark:
        err = err * 3 + 0.06
    if item.glare:
        err *= 1.6
    if u[4] < min(err, 0.9):
        if item.dark and label != NO_DEFECT and u[5] < 0.5:
            return NO_DEFECT  # missed in the dark
        label = _choice(rng, _PLAUSIBLE[label])
    return label


def difficulty(item: ItemContext) -> float:
    """0 for an easy, well-lit item; larger for items a person would linger on."""
    d = 0.0
    if item.truth in (SHALLOW, DEEP) and not item.is_faint:
        d += 1.5 * boundary_closeness(item.severity)
    if item.is_faint:
        d += 1.0
    if item.truth in (DENT, CRACK):
        d += 0.2
    if item.dark:
        d += 0.5
    if item.glare:
        d += 0.3
    return d


def simulate_time_spent(profile: LabelerProfile, item: ItemContext, rng) -> float:
    """Seconds spent on the item: longer for hard items, shorter for hasty labelers."""
    t = 5.5 * profile.speed * (1.0 + difficulty(item)) * float(rng.lognormal(0.0, 0.35))
    return round(max(0.8, t), 1)


def simulate_comment(profile: LabelerProfile, item: ItemContext, rng) -> str:
    """Rarely, a short free-text comment about why the item was hard."""
    if profile.random_rate > 0 or difficulty(item) < 0.8 or rng.random() > 0.15:
        return ""
    if item.dark:
        return "hard to see, dark image"
    if item.glare:
        return "glare over the screen, not sure"
    if item.is_faint:
        return "barely visible mark, could be dust"
    return "could be deep or shallow, width is borderline"
