"""Import formats: which format a file is (from its name or Content-Type), and its text."""

from __future__ import annotations

from labeling.imports.errors import ImportRejected, _error

FORMATS = ("json", "jsonl", "csv", "zip")
CONTENT_TYPE_FORMATS = {
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
}
EXTENSION_FORMATS = {
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "csv": "csv",
    "zip": "zip",
}


def detect_format(*, content_type: str = "", filename: str = "") -> str:
    """The import format from a file name's extension (preferred) or a Content-Type.

    Raises :class:`ImportRejected` when neither names a known format.
    """
    if filename and "." in filename:
        ext = filename.rsplit(".", 1)[-1].lower()
        if ext in EXTENSION_FORMATS:
            return EXTENSION_FORMATS[ext]
        raise ImportRejected(
            f"cannot tell the format of {filename!r} from its extension; "
            f"use one of: {', '.join(sorted(EXTENSION_FORMATS))}"
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in CONTENT_TYPE_FORMATS:
        return CONTENT_TYPE_FORMATS[media_type]
    raise ImportRejected(
        f"unsupported Content-Type {media_type or '(none)'!r}; send one of "
        f"{', '.join(sorted(CONTENT_TYPE_FORMATS))}, or a multipart upload in the field "
        "'file' whose name ends in .json, .jsonl, .csv or .zip"
    )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            f"the file is not UTF-8 text (byte {exc.start} cannot be decoded)",
            errors=[_error(None, "", "the file must be UTF-8 encoded")],
        ) from exc
