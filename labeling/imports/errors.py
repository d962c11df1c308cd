"""What an import answers: the rejection (nothing stored) and the result (what was stored).

Errors are ``{row, field, message}`` dicts, row numbers as described in
:mod:`labeling.imports`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError

MAX_REPORTED_ERRORS = 1000


class ImportRejected(Exception):
    """The file cannot be imported as sent; nothing was stored.

    ``errors`` is a list of ``{row, field, message}`` (row numbers as described in the
    module docstring); ``status`` is the HTTP status the API should answer with (400, or
    413 when the file is over the size limit).
    """

    def __init__(self, message: str, *, errors: Sequence[dict] = (), status: int = 400):
        super().__init__(message)
        self.message = message
        self.errors = list(errors)[:MAX_REPORTED_ERRORS]
        self.n_errors = len(errors)
        self.status = status


@dataclass
class ImportResult:
    """What an import stored: counts, the batch id and the rows it refused."""

    source_batch: int
    n_rows: int
    n_created: int
    n_updated: int
    errors: list[dict]
    extra: dict = field(default_factory=dict)

    @property
    def n_errors(self) -> int:
        return len(self.errors)

    def as_dict(self) -> dict:
        return {
            "source_batch": self.source_batch,
            "n_rows": self.n_rows,
            "n_created": self.n_created,
            "n_updated": self.n_updated,
            "n_errors": self.n_errors,
            "errors": self.errors[:MAX_REPORTED_ERRORS],
            **self.extra,
        }


def _conflicts_rejected(function):
    """A unique constraint hit while writing means a concurrent writer stored the same
    external ids (or accounts) first: nothing of this import was kept; say so (409)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except IntegrityError as exc:
            raise ImportRejected(
                "another import changed the same items or accounts at the same time; "
                "nothing of this file was stored — send it again",
                status=409,
            ) from exc

    return wrapper


def _error(row: int | None, field_name: str, message: str) -> dict:
    return {"row": row, "field": field_name, "message": message}


def _reject_or_continue(
    *, good: list, errors: list, n_rows: int, partial: bool, what: str = "rows"
) -> None:
    if n_rows == 0:
        raise ImportRejected("the file holds no rows", errors=[_error(None, "", "no rows")])
    if errors and not partial:
        rows = sorted({e["row"] for e in errors if e["row"] is not None})
        shown = ", ".join(str(r) for r in rows[:20]) + (" …" if len(rows) > 20 else "")
        raise ImportRejected(
            f"{len(errors)} error(s) in {what} {shown or '(file)'}; nothing was imported "
            "(fix them, or send ?partial=true to import the valid rows)",
            errors=sorted(errors, key=lambda e: (e["row"] is None, e["row"] or 0)),
        )
    if not good:
        raise ImportRejected(
            f"no valid {what} to import",
            errors=sorted(errors, key=lambda e: (e["row"] is None, e["row"] or 0)),
        )


def _sort_errors(errors: list[dict]) -> list[dict]:
    return sorted(errors, key=lambda e: (e["row"] is None, e["row"] or 0))
