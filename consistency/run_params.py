"""Agreement-run parameters: their defaults, limits and validation.

A run's ``params`` are validated once, when the run is created (:func:`validate_params`);
everything downstream reads the normalised dict stored on the run.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from consistency.metrics import LEVELS
from labeling.models import Item, Project, TaskType

MAX_CHUNK_ITEMS = 10_000_000
DEFAULT_N_BOOTSTRAP = 1000
MAX_N_BOOTSTRAP = 10_000
CONSENSUS_METHODS = ("majority", "dawid_skene")
SPECIAL_SLICES = ("tag", "labeler", "guideline_version", "captured_week")
COMMON_METADATA_KEYS = ("factory", "line", "camera", "phone_model", "device")
METADATA_KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
PARAM_KEYS = ("level", "slices", "n_bootstrap", "seed", "consensus", "chunk_items")


def chunk_items_setting() -> int:
    """Items per chunk when a run's params name none (``CONCORD_AGREEMENT_CHUNK_ITEMS``)."""
    return int(settings.CONCORD_AGREEMENT_CHUNK_ITEMS)


def max_chunk_items_setting() -> int:
    """The most items a planned chunk may hold (``CONCORD_AGREEMENT_MAX_CHUNK_ITEMS``):
    larger runs are split into more chunks than workers, to bound a chunk's memory."""
    return int(getattr(settings, "CONCORD_AGREEMENT_MAX_CHUNK_ITEMS", 200_000))


def default_slices(project: Project) -> list[str]:
    """Slices a run computes when the request names none: guideline version, tags, the
    common provenance keys the project's items carry, and capture week."""
    keys = ["guideline_version", "tag"]
    items = Item.objects.filter(project=project)
    keys += [k for k in COMMON_METADATA_KEYS if items.filter(metadata__has_key=k).exists()]
    if items.filter(metadata__has_key="captured_at").exists():
        keys.append("captured_week")
    return keys


def validate_params(project: Project, params: dict | None) -> dict:
    """Normalised run parameters with defaults, or ValidationError naming what is wrong.

    ``{level?, slices?, n_bootstrap? (0..10000, default 1000), seed? (int, default 0),
    consensus? (subset of majority, dawid_skene; default both), chunk_items?
    (``CONCORD_AGREEMENT_MIN_CHUNK_ITEMS``..``MAX_CHUNK_ITEMS``)}``.
    """
    params = dict(params or {})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        errors["params"] = [
            f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(PARAM_KEYS)}"
        ]
    level = params.get("level", project.level)
    if level not in LEVELS:
        errors["level"] = [f"unknown level {level!r}; one of {', '.join(LEVELS)}"]
    if project.task_type == TaskType.TRANSCRIPTION and level != "nominal":
        errors["level"] = ["a transcription project is compared at the nominal level"]
    slices = params.get("slices")
    if slices is None:
        slices = default_slices(project)
    elif not isinstance(slices, list) or not all(isinstance(s, str) for s in slices):
        errors["slices"] = ["slices must be a list of metadata keys or " + "|".join(SPECIAL_SLICES)]
        slices = []
    else:
        bad = [
            s for s in slices if s not in SPECIAL_SLICES and not METADATA_KEY_PATTERN.fullmatch(s)
        ]
        absent = [
            s
            for s in slices
            if s not in SPECIAL_SLICES
            and s not in bad
            and not Item.objects.filter(project=project, metadata__has_key=s).exists()
        ]
        if bad or absent:
            errors["slices"] = [
                f"unknown slice key(s): {', '.join(map(repr, bad + absent))}; use a metadata key "
                f"that the project's items carry or one of {', '.join(SPECIAL_SLICES)}"
            ]
        slices = list(dict.fromkeys(slices))
    n_bootstrap = params.get("n_bootstrap", DEFAULT_N_BOOTSTRAP)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int):
        errors["n_bootstrap"] = [f"n_bootstrap must be an integer, got {n_bootstrap!r}"]
    elif not 0 <= n_bootstrap <= MAX_N_BOOTSTRAP:
        errors["n_bootstrap"] = [f"n_bootstrap must be between 0 and {MAX_N_BOOTSTRAP}"]
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        errors["seed"] = [f"seed must be a non-negative integer, got {seed!r}"]
    consensus = params.get("consensus", list(CONSENSUS_METHODS))
    if not isinstance(consensus, list) or not all(c in CONSENSUS_METHODS for c in consensus):
        errors["consensus"] = [
            f"unknown consensus method(s) in {consensus!r}; use {', '.join(CONSENSUS_METHODS)}"
        ]
    chunk_items = params.get("chunk_items")
    min_chunk = settings.CONCORD_AGREEMENT_MIN_CHUNK_ITEMS
    if chunk_items is not None and (
        isinstance(chunk_items, bool)
        or not isinstance(chunk_items, int)
        or not min_chunk <= chunk_items <= MAX_CHUNK_ITEMS
    ):
        errors["chunk_items"] = [
            f"chunk_items must be an integer from {min_chunk} to {MAX_CHUNK_ITEMS}, "
            f"got {chunk_items!r}"
        ]
    if errors:
        raise ValidationError(errors)
    out = {
        "level": level,
        "slices": slices,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "consensus": list(dict.fromkeys(consensus)),
    }
    if chunk_items is not None:
        out["chunk_items"] = chunk_items
    return out
