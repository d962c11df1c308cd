"""labeling.imports.formats: the import format from a file name or a Content-Type."""

from __future__ import annotations

import pytest

from labeling.imports import formats


@pytest.mark.parametrize(
    "content_type, filename, fmt",
    [
        ("application/json; charset=utf-8", "", "json"),
        ("application/x-ndjson", "", "jsonl"),
        ("text/csv", "", "csv"),
        ("application/zip", "", "zip"),
        ("", "export.NDJSON", "jsonl"),
        ("", "images.zip", "zip"),
    ],
)
def test_format_comes_from_the_extension_or_the_content_type(content_type, filename, fmt):
    assert formats.detect_format(content_type=content_type, filename=filename) == fmt
