"""labeling.imports.parsing: row numbering of JSONL and CSV, zip member paths and limits."""

from __future__ import annotations

import io
import zipfile

import pytest

from labeling import images
from labeling.imports import errors, parsing


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


def test_zip_with_too_many_members_is_refused(monkeypatch):
    monkeypatch.setattr(parsing, "MAX_ZIP_MEMBERS", 3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n in range(4):
            zf.writestr(f"{n}.png", b"x")
    with pytest.raises(errors.ImportRejected, match="holds 4 files; the limit is 3") as info:
        parsing.ZipArchive(buffer.getvalue(), max_member_bytes=100, max_total_bytes=10**6)
    assert info.value.status == 413
