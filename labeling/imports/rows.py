"""Row checks without the database: the shape of an item row and of a label row.

``clean_item_row`` and ``clean_annotation_row`` turn one parsed row into an
:class:`ItemRow` / :class:`AnnotationRow` or row errors; what needs the project's data
(items, classes, guideline versions) is checked by the import services.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from labeling.imports.errors import _error
from labeling.models import MAX_COMMENT_CHARS, MAX_TIME_SPENT_MS, PayloadKind

ITEM_FIELDS = frozenset({"external_id", "image_url", "text", "audio_url", "metadata", "tags"})
PAYLOAD_FIELDS = ("image_url", "text", "audio_url")
ANNOTATION_FIELDS = frozenset(
    {
        "item",
        "labeler",
        "value",
        "created_at",
        "guideline_version",
        "time_spent_ms",
        "comment",
        "gold",
    }
)


METADATA_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,99}")


_username_validator = UnicodeUsernameValidator()


# --- Item rows -------------------------------------------------------------------------
@dataclass
class ItemRow:
    row: int
    external_id: str
    kind: str
    image_url: str = ""
    text: str = ""
    audio_url: str = ""
    metadata: dict | None = None
    tags: list[str] | None = None
    file: str = ""
    image_bytes: bytes | None = None
    content_hash: str = ""


_URL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f<>\"\\^`{|}]")


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, at most 2000 characters, without whitespace,
    control characters or characters that are never valid in a URL.

    Lighter than Django's URLValidator (a tenth of the time per row on large imports) and
    enough here: the URL is only stored, shown escaped, and fetched by ``labeling.fetch``,
    which checks it again at every hop."""
    if len(value) > 2000 or _URL_FORBIDDEN.search(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _clean_external_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= 255 else None


def clean_item_row(n: int, raw: Any, *, allow_file: bool = False) -> tuple[ItemRow | None, list]:
    """Validate one item row; returns (row or None, errors)."""
    if not isinstance(raw, dict):
        return None, [_error(n, "", f"a row must be an object, not {type(raw).__name__}")]
    errors = []
    known = ITEM_FIELDS | ({"file"} if allow_file else set())
    unknown = sorted(set(raw) - known)
    if unknown:
        errors.append(
            _error(
                n,
                unknown[0],
                f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )
        )
    external_id = _clean_external_id(raw.get("external_id"))
    if external_id is None:
        errors.append(
            _error(n, "external_id", "external_id is required: a string of 1–255 characters")
        )
    payload_fields = [f for f in (*PAYLOAD_FIELDS, "file") if raw.get(f) not in (None, "")]
    row = ItemRow(row=n, external_id=external_id or "", kind="")
    if len(payload_fields) != 1:
        names = " | ".join((*PAYLOAD_FIELDS, "file") if allow_file else PAYLOAD_FIELDS)
        message = (
            f"give exactly one payload ({names})"
            if payload_fields
            else f"a payload is required: one of {names}"
        )
        errors.append(_error(n, payload_fields[1] if payload_fields else "payload", message))
    else:
        (payload_field,) = payload_fields
        value = raw[payload_field]
        if not isinstance(value, str):
            errors.append(_error(n, payload_field, f"{payload_field} must be a string"))
        elif payload_field in ("image_url", "audio_url"):
            value = value.strip()
            if not is_http_url(value):
                errors.append(
                    _error(n, payload_field, f"{value[:200]!r} is not an http(s) URL (≤ 2000)")
                )
            setattr(row, payload_field, value)
            row.kind = PayloadKind.IMAGE_URL if payload_field == "image_url" else "audio_url"
        elif payload_field == "text":
            row.text, row.kind = value, PayloadKind.TEXT
            row.content_hash = hashlib.sha256(value.encode()).hexdigest()
        else:
            row.file, row.kind = value.strip(), PayloadKind.IMAGE
    if "metadata" in raw and raw["metadata"] is not None:
        metadata = raw["metadata"]
        if not isinstance(metadata, dict):
            errors.append(_error(n, "metadata", "metadata must be an object"))
        else:
            bad_keys = [k for k in metadata if not METADATA_KEY.fullmatch(str(k))]
            if bad_keys:
                errors.append(
                    _error(n, "metadata", f"metadata keys must be short names: {bad_keys[:5]}")
                )
            row.metadata = metadata
    if "tags" in raw and raw["tags"] is not None:
        tags = raw["tags"]
        if isinstance(tags, str):
            tags = [t.strip() for t in re.split(r"[;,]", tags) if t.strip()]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors.append(_error(n, "tags", "tags must be a list of strings"))
        else:
            names = [slugify(t) for t in tags]
            if not all(names) or any(len(t) > 80 for t in names):
                errors.append(
                    _error(n, "tags", "each tag needs letters or digits (≤ 80 characters)")
                )
            row.tags = sorted(set(names))
    return (None if errors else row), errors


def _mark_duplicates(rows: list, key, what: str) -> tuple[list, list[dict]]:
    """Keep the first of rows sharing ``key(row)``; the later ones become errors."""
    first: dict = {}
    kept, errors = [], []
    for row in rows:
        k = key(row)
        if k in first:
            errors.append(
                _error(row.row, what, f"{what} {k!r} repeats row {first[k]} of this file")
            )
        else:
            first[k] = row.row
            kept.append(row)
    return kept, errors


def _validate_item_rows(raw_rows: list, *, allow_file: bool) -> tuple[list[ItemRow], list]:
    good, errors = [], []
    for n, raw in raw_rows:
        row, row_errors = clean_item_row(n, raw, allow_file=allow_file)
        errors.extend(row_errors)
        if row is not None:
            good.append(row)
    good, dup_errors = _mark_duplicates(good, lambda r: r.external_id, "external_id")
    return good, errors + dup_errors


# --- Annotation rows -------------------------------------------------------------------
@dataclass
class AnnotationRow:
    row: int
    item_external_id: str
    labeler: str
    value: Any
    created_at: datetime | None = None
    guideline_version: int | None = None
    time_spent_ms: int | None = None
    comment: str = ""
    gold: bool = False
    field_prefix: str = ""  # Label Studio: which annotation of the task
    fields: dict = field(default_factory=dict)  # resolved value fields
    # Detection: (width, height) of the image the boxes were drawn on, when the file says.
    image_size: tuple[int, int] | None = None


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def _parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _parse_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            return None
        if parsed is None:
            return None
    else:
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _parse_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def clean_annotation_row(
    n: int, raw: Any, *, prefix: str = ""
) -> tuple[AnnotationRow | None, list]:
    """Check one label row's shape (not yet its item, class or guideline version)."""
    if not isinstance(raw, dict):
        return None, [_error(n, prefix, f"a row must be an object, not {type(raw).__name__}")]
    errors = []
    unknown = sorted(set(raw) - ANNOTATION_FIELDS)
    if unknown:
        errors.append(
            _error(
                n,
                prefix + unknown[0],
                f"unknown field(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(ANNOTATION_FIELDS))}",
            )
        )
    item = _clean_external_id(raw.get("item"))
    if item is None:
        errors.append(_error(n, prefix + "item", "item (the item's external_id) is required"))
    labeler = raw.get("labeler")
    if isinstance(labeler, int) and not isinstance(labeler, bool):
        labeler = str(labeler)
    if not isinstance(labeler, str) or not labeler.strip():
        errors.append(_error(n, prefix + "labeler", "labeler (a labeler id) is required"))
        labeler = ""
    else:
        labeler = labeler.strip()
        try:
            if len(labeler) > 150:
                raise ValidationError("too long")
            _username_validator(labeler)
        except ValidationError:
            errors.append(
                _error(
                    n,
                    prefix + "labeler",
                    f"labeler id {labeler[:50]!r} must be ≤ 150 letters, digits and @.+-_",
                )
            )
    value = raw.get("value")
    # A list is a detection label (boxes; [] = nothing there), checked with the project.
    if value is None or value == "" or isinstance(value, bool | dict):
        errors.append(
            _error(n, prefix + "value", "value (class key, number, text or boxes) is required")
        )
    row = AnnotationRow(row=n, item_external_id=item or "", labeler=labeler, value=value)
    row.field_prefix = prefix
    if raw.get("created_at") not in (None, ""):
        row.created_at = _parse_datetime(raw["created_at"])
        if row.created_at is None:
            errors.append(
                _error(n, prefix + "created_at", "created_at must be an ISO 8601 date-time")
            )
    if raw.get("guideline_version") not in (None, ""):
        row.guideline_version = _parse_int(raw["guideline_version"])
        if row.guideline_version is None:
            errors.append(
                _error(n, prefix + "guideline_version", "guideline_version must be an integer")
            )
    if raw.get("time_spent_ms") not in (None, ""):
        row.time_spent_ms = _parse_int(raw["time_spent_ms"])
        if row.time_spent_ms is None or not 0 <= row.time_spent_ms <= MAX_TIME_SPENT_MS:
            errors.append(
                _error(
                    n,
                    prefix + "time_spent_ms",
                    f"time_spent_ms must be a whole number from 0 to {MAX_TIME_SPENT_MS}",
                )
            )
    comment = raw.get("comment")
    if comment not in (None, ""):
        if not isinstance(comment, str):
            errors.append(_error(n, prefix + "comment", "comment must be text"))
        elif len(comment) > MAX_COMMENT_CHARS:
            errors.append(
                _error(n, prefix + "comment", f"comment longer than {MAX_COMMENT_CHARS} characters")
            )
        else:
            row.comment = comment
    if "gold" in raw:
        gold = _parse_bool(raw["gold"])
        if gold is None:
            errors.append(_error(n, prefix + "gold", "gold must be true or false"))
        else:
            row.gold = gold
    return (None if errors else row), errors
