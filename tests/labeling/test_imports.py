"""labeling.imports without HTTP: row numbering, row checks, zip paths, Label Studio mapping."""

from __future__ import annotations

import io
import zipfile

import pytest

from labeling import images
from labeling.imports import errors, formats, label_studio, parsing, rows


def test_csv_rows_are_numbered_from_the_first_data_row_and_blank_cells_dropped():
    rows, errors = parsing.parse_csv(
        b"external_id,text,metadata.line\nA,hello,\n\nB,world,3\n", required=["external_id"]
    )
    assert errors == []
    assert rows == [
        (1, {"external_id": "A", "text": "hello"}),
        (3, {"external_id": "B", "text": "world", "metadata.line": "3"}),
    ]  # noqa: E501


def test_csv_with_a_bom_and_quoted_commas_parses():
    rows, _ = parsing.parse_csv(
        '\ufeffexternal_id,tags\nA,"x, y"\n'.encode(), required=["external_id"]
    )
    assert parsing._csv_item_row(rows[0][1]) == {"external_id": "A", "tags": ["x", "y"]}


def test_csv_repeated_header_column_is_refused():
    with pytest.raises(errors.ImportRejected, match="repeats the columns text"):
        parsing.parse_csv(b"external_id,text,text\n", required=["external_id"])


def test_jsonl_rows_are_numbered_by_line_and_bad_lines_are_row_errors():
    rows, errors = parsing.parse_jsonl(b'{"a": 1}\n\n{"a": \n{"a": 3}\n')
    assert [n for n, _ in rows] == [1, 4]
    assert [e["row"] for e in errors] == [3]


def test_non_utf8_file_is_refused():
    with pytest.raises(errors.ImportRejected, match="not UTF-8"):
        parsing.parse_jsonl(b'{"a": "\xff"}\n')


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


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://cdn.example.org/a.jpg?x=1", True),
        ("http://10.0.0.1/a.png", True),  # stored; refused later by the fetcher, not here
        ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("file:///etc/passwd", False),
        ("https://", False),
        ("https://exa mple.org/a.png", False),
        ('https://example.org/"onerror=x', False),
        ("https://example.org:99999/a.png", False),
        ("https://example.org/" + "a" * 2000, False),
    ],
)
def test_http_url_check(url, ok):
    assert rows.is_http_url(url) is ok


@pytest.mark.parametrize(
    "name, safe",
    [
        ("img/a.png", "img/a.png"),
        ("./img//a.png", "img/a.png"),
        ("../a.png", None),
        ("img/../../a.png", None),
        ("/etc/passwd", None),
        ("C:/windows/a.png", None),
        ("..\\a.png", None),
    ],
)
def test_zip_member_names_that_could_escape_are_refused(name, safe):
    assert parsing._safe_member_name(name) == safe


def test_zip_member_with_a_lying_or_large_header_is_refused_not_inflated():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\0" * 10_000)
    archive = parsing.ZipArchive(buffer.getvalue(), max_member_bytes=100, max_total_bytes=10**6)
    archive.members["a.bin"].file_size = 10  # a forged, small declared size
    with pytest.raises(images.ImageRejected, match="cannot be read"):
        archive.read("a.bin")  # zipfile stops at the declared 10 bytes; the CRC fails
    archive.members["a.bin"].file_size = 10_000  # the truth, over the limit: refused unread
    with pytest.raises(images.ImageRejected, match="the limit is 100 bytes"):
        archive.read("a.bin")


@pytest.mark.parametrize(
    "completed_by, labeler",
    [
        ({"id": 3, "email": "Ana@Example.org", "first_name": "Ana"}, "ana@example.org"),
        ({"id": 3, "email": ""}, "ls-user-3"),
        (17, "ls-user-17"),
        (None, None),
    ],
)
def test_label_studio_completed_by_becomes_a_labeler_id(completed_by, labeler):
    assert label_studio.label_studio_labeler(completed_by) == labeler


def test_label_studio_result_value_follows_the_task_type():
    result = [
        {"type": "textarea", "value": {"text": ["first line", "second"]}},
        {"type": "choices", "value": {"choices": ["dent", "scratch"]}},
    ]
    assert label_studio._label_studio_value(result, "classification") == "dent"
    assert label_studio._label_studio_value(result, "transcription") == "first line\nsecond"
    assert (
        label_studio._label_studio_value([{"type": "rating", "value": {"rating": 4}}], "rating")
        == 4
    )
    assert label_studio._label_studio_value([], "classification") is None


def test_label_studio_detection_needs_data_and_annotations_in_every_task():
    assert label_studio.is_label_studio_export([{"data": {}, "annotations": []}])
    assert not label_studio.is_label_studio_export([{"item": "a", "labeler": "b", "value": "c"}])
    assert not label_studio.is_label_studio_export([])


def test_zip_with_too_many_members_is_refused(monkeypatch):
    monkeypatch.setattr(parsing, "MAX_ZIP_MEMBERS", 3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n in range(4):
            zf.writestr(f"{n}.png", b"x")
    with pytest.raises(errors.ImportRejected, match="holds 4 files; the limit is 3") as info:
        parsing.ZipArchive(buffer.getvalue(), max_member_bytes=100, max_total_bytes=10**6)
    assert info.value.status == 413
