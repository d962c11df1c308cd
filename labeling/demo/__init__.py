"""Deterministic, Django-free demo data (``build_demo``); see :mod:`labeling.demo.synth`."""

from .synth import (
    BOX_PROJECT_SLUG,
    CAMERAS,
    DARK_CAMERA,
    DIMMING_CAMERA,
    DIMMING_FROM_DAY,
    IMAGE_CLASSES,
    IMAGE_PROJECT_SLUG,
    MANAGER,
    SME,
    SPEECH_PROJECT_SLUG,
    build_demo,
    fingerprint,
)
from .types import (
    DemoAnnotation,
    DemoClass,
    DemoData,
    DemoGold,
    DemoGuideline,
    DemoItem,
    DemoProject,
    DemoUser,
)

__all__ = [
    "BOX_PROJECT_SLUG",
    "CAMERAS",
    "DARK_CAMERA",
    "DIMMING_CAMERA",
    "DIMMING_FROM_DAY",
    "IMAGE_CLASSES",
    "IMAGE_PROJECT_SLUG",
    "MANAGER",
    "SME",
    "SPEECH_PROJECT_SLUG",
    "DemoAnnotation",
    "DemoClass",
    "DemoData",
    "DemoGold",
    "DemoGuideline",
    "DemoItem",
    "DemoProject",
    "DemoUser",
    "build_demo",
    "fingerprint",
]
