"""Parsing import files into numbered rows: JSON, JSONL, CSV, and zip archives of images
with a manifest (checked before anything is decompressed)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any

from labeling import images, safe_json
from labeling.imports.errors import ImportRejected, _error
from labeling.imports.formats import EXTENSION_FORMATS, _decode

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "manifest.json")


MAX_ZIP_MEMBERS = 200_000


def parse_json(data: bytes, *, list_keys: Sequence[str] = ("items", "rows")) -> list[tuple]:
    """A JSON list of rows (or an object holding one under ``list_keys``) as (row, value)."""
    text = _decode(data)
    try:
        safe_json.check_depth(text, where="the file")
    except safe_json.UnsafeJson as exc:
        raise ImportRejected(str(exc), errors=[_error(None, "", str(exc))]) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRejected(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            errors=[_error(None, "", f"line {exc.lineno}, column {exc.colno}: {exc.msg}")],
        ) from exc
    if isinstance(document, dict):
        for key in list_keys:
            if isinstance(document.get(key), list):
                document = document[key]
                break
    if not isinstance(document, list):
        raise ImportRejected(
            "a JSON import must be a list of rows"
            + (
                f" (or an object with a list under {' or '.join(list_keys)!s})" if list_keys else ""
            ),
            errors=[_error(None, "", "expected a JSON list")],
        )
    rows = [(n, value) for n, value in enumerate(document, start=1)]
    bad = _invalid_text_errors(rows) if safe_json.has_surrogate_escape(text) else []
    if bad:
        raise ImportRejected(
            f"{len(bad)} row(s) hold invalid text (a lone surrogate escape such as \\ud800)",
            errors=bad,
        )
    return rows


def _invalid_text_errors(rows: list[tuple]) -> list[dict]:
    """Row errors for values holding a lone surrogate (which no database column stores)."""
    errors = []
    for n, value in rows:
        where = safe_json.surrogate_path(value)
        if where is not None:
            errors.append(_error(n, where.split(".")[0].split("[")[0], f"{where}: invalid text"))
    return errors


def parse_jsonl(data: bytes) -> tuple[list[tuple], list[dict]]:
    """JSON Lines: one row per non-blank line, numbered by line. Malformed lines are row
    errors (not a whole-file failure) so a partial import can skip them."""
    text = _decode(data)
    # One pass over the whole file; only when it is too deep somewhere is each line checked
    # (so the rows at fault are named).
    check_lines = safe_json.nesting_depth(text) > safe_json.MAX_DEPTH
    check_text = safe_json.has_surrogate_escape(text)
    rows, errors = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            if check_lines:
                safe_json.check_depth(line, where="the row")
            value = json.loads(line)
        except safe_json.UnsafeJson as exc:
            errors.append(_error(n, "", str(exc)))
            continue
        except json.JSONDecodeError as exc:
            errors.append(_error(n, "", f"malformed JSON at column {exc.colno}: {exc.msg}"))
            continue
        where = safe_json.surrogate_path(value) if check_text else None
        if where is not None:
            errors.append(_error(n, where.split(".")[0].split("[")[0], f"{where}: invalid text"))
            continue
        rows.append((n, value))
    return rows, errors


def parse_csv(data: bytes, *, required: Sequence[str] = ()) -> tuple[list[tuple], list[dict]]:
    """CSV with a header. Returns ((row, {column: value}), ...) and row errors.

    A header without a ``required`` column rejects the file (row 0). A row with fewer or
    more values than the header has columns is a row error. Empty cells are dropped.
    """
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected("the CSV file is empty", errors=[_error(0, "", "no header")]) from None
    except csv.Error as exc:
        raise ImportRejected(f"malformed CSV header: {exc}") from exc
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportRejected(
            f"the CSV header has no {', '.join(missing)} column "
            f"(header: {', '.join(header) or '(empty)'})",
            errors=[_error(0, c, f"missing column {c!r} in the header") for c in missing],
        )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise ImportRejected(
            f"the CSV header repeats the columns {', '.join(duplicates)}",
            errors=[_error(0, c, "repeated column") for c in duplicates],
        )
    rows, errors = [], []
    n = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            n += 1
            errors.append(_error(n, "", f"malformed CSV: {exc}"))
            continue
        n += 1
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            missing_cols = header[len(values) :]
            detail = (
                f"; missing: {', '.join(missing_cols)}" if missing_cols else "; too many values"
            )
            errors.append(
                _error(
                    n,
                    missing_cols[0] if missing_cols else "",
                    f"row has {len(values)} values but the header has {len(header)} "
                    f"columns{detail}",
                )
            )
            continue
        rows.append((n, {h: v for h, v in zip(header, values, strict=True) if v.strip()}))
    return rows, errors


def _csv_item_row(cells: dict) -> dict:
    """A CSV row's cells as an item row: ``metadata.<key>`` columns, a separated tags list."""
    row: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for column, value in cells.items():
        if column.startswith("metadata."):
            metadata[column[len("metadata.") :]] = value
        elif column == "tags":
            row["tags"] = [t.strip() for t in re.split(r"[;,]", value) if t.strip()]
        else:
            row[column] = value
    if metadata:
        row["metadata"] = metadata
    return row


def parse_rows(data: bytes, fmt: str, *, csv_required: Sequence[str]) -> tuple[list, list]:
    """(rows, row errors) of a JSON, JSONL or CSV file."""
    if fmt == "json":
        return parse_json(data), []
    if fmt == "jsonl":
        return parse_jsonl(data)
    if fmt == "csv":
        return parse_csv(data, required=csv_required)
    raise ImportRejected(f"format {fmt!r} is not accepted here")


# --- Zip archives ----------------------------------------------------------------------
def _safe_member_name(name: str) -> str | None:
    """The normalised path of a zip member, or None when it could escape its folder."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return None
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


class ZipArchive:
    """A zip of images and a manifest, checked before anything is decompressed.

    Refuses member paths that are absolute or contain ``..``, members whose declared size
    is over the image limit, archives whose declared total is over the import limit, and
    reads every member with a bounded read so a lying header cannot inflate past it.
    """

    def __init__(self, data: bytes, *, max_member_bytes: int, max_total_bytes: int):
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ImportRejected(
                f"not a readable zip archive: {exc}", errors=[_error(None, "", str(exc))]
            ) from exc
        self.max_member_bytes = max_member_bytes
        self.max_total_bytes = max_total_bytes
        self.members: dict[str, zipfile.ZipInfo] = {}
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ImportRejected(
                f"the archive holds {len(infos)} files; the limit is {MAX_ZIP_MEMBERS}",
                status=413,
            )
        bad = [i.filename for i in infos if _safe_member_name(i.filename) is None]
        if bad:
            raise ImportRejected(
                f"the archive holds unsafe paths (absolute or with '..'): {', '.join(bad[:10])}",
                errors=[_error(None, "file", f"unsafe path {name!r}") for name in bad],
            )
        total = sum(i.file_size for i in infos)
        if total > max_total_bytes:
            raise ImportRejected(
                f"the archive would decompress to {total} bytes; the limit is "
                f"{max_total_bytes} bytes",
                status=413,
            )
        for info in infos:
            if not info.is_dir():
                self.members[_safe_member_name(info.filename)] = info
        self.total_read = 0

    def read(self, name: str, *, limit: int | None = None) -> bytes:
        """A member's bytes; raises :class:`images.ImageRejected` when over ``limit``."""
        limit = self.max_member_bytes if limit is None else limit
        info = self.members[name]
        if info.file_size > limit:
            raise images.ImageRejected(
                f"file is {info.file_size} bytes; the limit is {limit} bytes"
            )
        try:
            with self.zf.open(info) as fh:
                content = fh.read(limit + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,  # an encrypted member
        ) as exc:
            # zipfile stops at the declared size and checks the CRC: a forged header or a
            # corrupt member ends here, as a row error rather than a server error.
            raise images.ImageRejected(f"the archive member cannot be read: {exc}") from exc
        if len(content) > limit:
            raise images.ImageRejected(f"file decompresses past the limit of {limit} bytes")
        self.total_read += len(content)
        if self.total_read > self.max_total_bytes:
            raise ImportRejected(
                f"the archive decompresses past the limit of {self.max_total_bytes} bytes",
                status=413,
            )
        return content

    def manifest(self) -> tuple[str, str]:
        """(member name, format) of the manifest: at the root, or in the one top folder."""
        candidates = [n for n in self.members if n.rsplit("/", 1)[-1] in MANIFEST_NAMES]
        candidates.sort(key=lambda n: (n.count("/"), MANIFEST_NAMES.index(n.rsplit("/", 1)[-1])))
        if not candidates or candidates[0].count("/") > 1:
            raise ImportRejected(
                "the archive has no manifest: add manifest.jsonl, manifest.csv or "
                "manifest.json naming each image's 'file' and 'external_id'",
                errors=[_error(None, "file", "no manifest")],
            )
        name = candidates[0]
        return name, EXTENSION_FORMATS[name.rsplit(".", 1)[-1]]
