"""Plain dataclasses returned by the demo generator (no Django imports).

Everything here is JSON-friendly except ``DemoItem.image_png`` (PNG bytes) and the
aware ``datetime`` fields (all UTC).  The Django ``seed_demo`` command maps these onto
models; see ``labeling.demo.synth`` for the mapping notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DemoClass:
    """A label class: ``rank`` orders classes by severity; borderline has ``rank=None``."""

    key: str
    name: str
    rank: int | None
    description: str
    is_borderline: bool = False


@dataclass(frozen=True)
class DemoGuideline:
    """One guideline version: markdown-ish ``text`` and example item external ids."""

    version: int
    title: str
    text: str
    examples: list[str]
    published_at: datetime


@dataclass(frozen=True)
class DemoItem:
    """One item to label.

    ``truth`` and ``severity`` and ``is_faint`` are generator ground truth: hidden from
    labelers, used by tests and (optionally) to seed gold labels.  ``image_png`` is set
    for image projects, ``text`` for transcription projects (the ASR draft).
    """

    external_id: str
    image_png: bytes | None
    text: str | None
    metadata: dict[str, Any]
    tags: list[str]
    truth: str
    severity: float | None
    is_faint: bool = False
    # Detection items: the truth boxes [{class, x, y, w, h}] where the generator drew
    # each defect (generator ground truth, hidden from labelers like ``truth``).
    boxes: list[dict] | None = None

    @property
    def filename(self) -> str | None:
        """Suggested file name for the image payload (``None`` without an image)."""
        return f"{self.external_id}.png" if self.image_png is not None else None


@dataclass(frozen=True)
class DemoAnnotation:
    """One labeler's label: ``item`` is the item's external id, ``value`` a class key
    (classification), the transcript text (transcription) or a list of boxes
    ``{class, x, y, w, h}`` in pixels (detection)."""

    item: str
    labeler: str
    value: str | list[dict]
    time_spent_s: float
    guideline_version: int
    created_at: datetime
    comment: str = ""


@dataclass(frozen=True)
class DemoGold:
    """An expert (gold) label for an item, by ``annotator`` (the SME user)."""

    item: str
    value: str | list[dict]
    annotator: str
    created_at: datetime


@dataclass(frozen=True)
class DemoProject:
    name: str
    slug: str
    task_type: str  # "classification" | "transcription" | "detection"
    level: str  # "nominal"
    overlap: int
    description: str
    classes: list[DemoClass]
    guidelines: list[DemoGuideline]
    items: list[DemoItem]
    annotations: list[DemoAnnotation]
    gold: list[DemoGold]
    # Items or labels a monitoring window needs before a drift verdict (project setting).
    monitoring_min_window: int = 30

    def item(self, external_id: str) -> DemoItem:
        for it in self.items:
            if it.external_id == external_id:
                return it
        raise KeyError(external_id)


@dataclass(frozen=True)
class DemoUser:
    """A user account (no password: the caller decides).  ``roles`` maps project slug to
    role: ``"manager"`` | ``"sme"`` | ``"labeler"``."""

    username: str
    full_name: str
    email: str
    is_superuser: bool = False
    persona: str = ""
    roles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoData:
    seed: int
    projects: list[DemoProject]
    users: list[DemoUser]

    def project(self, slug: str) -> DemoProject:
        for p in self.projects:
            if p.slug == slug:
                return p
        raise KeyError(slug)

    def user(self, username: str) -> DemoUser:
        for u in self.users:
            if u.username == username:
                return u
        raise KeyError(username)
