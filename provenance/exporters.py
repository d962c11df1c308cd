"""Streaming exports of a published dataset version: JSONL, CSV, Parquet, ImageFolder zip.

Every exporter is a generator of ``bytes`` that reads the version's rows in chunks
(``.iterator(chunk_size=...)``), so memory stays constant in the number of rows: JSONL and
CSV hold one chunk of lines, Parquet one row group, the zip one image. The output depends
only on the stored rows, so a re-export is byte-identical (Parquet and zip carry no
timestamps; Parquet bytes are fixed for a given pyarrow version).

No exporter opens a path taken from item data. Images are read only through the storage
names Concord generated at upload (``projects/<project id>/images/<sha256>.<ext>``), and
every name inside a zip is rebuilt from a safe alphabet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator

from django.core.files.storage import default_storage

from provenance.models import DatasetRow, DatasetVersion

CHUNK_ROWS = 5000
PARQUET_ROW_GROUP = 50_000
FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "imagefolder": ("application/zip", "zip"),
}
# A spreadsheet treats a cell starting with one of these as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _rows(version: DatasetVersion, split: str | None, *fields: str):
    qs = DatasetRow.objects.filter(version=version)
    if split:
        qs = qs.filter(split=split)
    return qs.order_by("position").values_list(*fields).iterator(chunk_size=CHUNK_ROWS)


def _lines(version: DatasetVersion, split: str | None) -> Iterator[str]:
    qs = DatasetRow.objects.filter(version=version)
    if split:
        qs = qs.filter(split=split)
    return qs.order_by("position").values_list("line", flat=True).iterator(chunk_size=CHUNK_ROWS)


# --- JSONL -----------------------------------------------------------------------------------
def stream_jsonl(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """The canonical JSON lines, exactly as hashed, one row per line."""
    buffer: list[str] = []
    for line in _lines(version, split):
        buffer.append(line)
        if len(buffer) >= CHUNK_ROWS:
            buffer.append("")
            yield "\n".join(buffer).encode()
            buffer = []
    if buffer:
        buffer.append("")
        yield "\n".join(buffer).encode()


# --- CSV -------------------------------------------------------------------------------------
def neutralise_cell(value: str) -> str:
    """Prefix a text cell a spreadsheet would run as a formula with ``'``."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _csv_cell(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "list":
        return neutralise_cell(";".join(str(v) for v in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and kind in ("int", "float"):
        return repr(value)  # a number is never a formula; keep "-3" a number
    if isinstance(value, str):
        return neutralise_cell(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return neutralise_cell(text)


def _column_value(record: dict, column: dict):
    if "key" in column:
        return record.get("metadata", {}).get(column["key"])
    return record.get(column["name"])


def stream_csv(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """One header line, then one line per row; metadata as ``metadata.<key>`` columns,
    lists joined by ``;``. Text cells that a spreadsheet would evaluate are neutralised."""
    columns = version.columns
    buffer = io.StringIO()
    # RFC 4180 line ends; a cell holding CR or LF is then always quoted.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise_cell(c["name"]) for c in columns])
    for n, line in enumerate(_lines(version, split), start=1):
        record = json.loads(line)
        writer.writerow([_csv_cell(_column_value(record, c), c["type"]) for c in columns])
        if n % CHUNK_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# --- Parquet ---------------------------------------------------------------------------------
class _DrainableSink(io.RawIOBase):
    """A write-only, unseekable file that hands out what was written since the last drain,
    so a writer (pyarrow, zipfile) can stream into a response chunk by chunk."""

    def __init__(self):
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self._chunks.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks = []
        return data


def parquet_schema(columns: list[dict]):
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "json": pa.string(),
    }
    fields = []
    for column in columns:
        if column["name"] == "labelers":
            fields.append(pa.field("labelers", pa.list_(pa.string())))
        elif column["name"] == "guideline_versions":
            fields.append(pa.field("guideline_versions", pa.list_(pa.int64())))
        else:
            fields.append(pa.field(column["name"], types[column["type"]]))
    return pa.schema(fields)


def _parquet_value(value, kind: str):
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if kind == "float":
        return float(value)
    return value


def stream_parquet(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """A Parquet file written one row group at a time (constant memory per row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = version.columns
    schema = parquet_schema(columns)
    sink = _DrainableSink()
    writer = pq.ParquetWriter(sink, schema, compression="snappy", write_statistics=True)
    data: dict[str, list] = {c["name"]: [] for c in columns}
    n = 0

    def flush() -> bytes:
        table = pa.Table.from_pydict(data, schema=schema)
        writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
        for values in data.values():
            values.clear()
        return sink.drain()

    for line in _lines(version, split):
        record = json.loads(line)
        for column in columns:
            data[column["name"]].append(
                _parquet_value(_column_value(record, column), column["type"])
            )
        n += 1
        if n % PARQUET_ROW_GROUP == 0:
            yield flush()
    if n % PARQUET_ROW_GROUP or n == 0:
        yield flush()
    writer.close()
    yield sink.drain()


# --- ImageFolder zip -------------------------------------------------------------------------
def safe_name(text: str, fallback: str = "item") -> str:
    """A file or folder name made of ``[A-Za-z0-9._-]`` only, never ``.``/``..``-led."""
    name = SAFE_NAME.sub("_", str(text)).lstrip(".")[:150]
    return name or fallback


def concord_image_name(project_id: int, name: str) -> bool:
    """Whether ``name`` is a storage name Concord itself gives uploaded images."""
    pattern = rf"projects/{int(project_id)}/images/[A-Za-z0-9_-]+\.[a-z0-9]{{1,5}}"
    return bool(name) and re.fullmatch(pattern, name) is not None


def _zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def stream_imagefolder(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """A zip in the ImageFolder layout ``<split>/<label>/<external id>.<ext>`` of the
    uploaded images, plus ``manifest.jsonl``: every row with its file in the zip or, for
    items given by URL, its ``image_url`` (those are not downloaded)."""
    sink = _DrainableSink()
    used: set[str] = set()
    paths: dict[int, str] = {}
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for position, external_id, row_split, label, image_name, item_id in _rows(
            version, split, "position", "external_id", "split", "label", "image_name", "item_id_ref"
        ):
            if not concord_image_name(version.project_id, image_name):
                continue
            stem = safe_name(external_id)
            if stem != external_id:
                stem = f"{stem}-{item_id}"
            ext = image_name.rsplit(".", 1)[-1]
            folder = f"{safe_name(row_split)}/{safe_name(label, 'unlabeled')}"
            path = f"{folder}/{stem}.{ext}"
            if path in used:
                path = f"{folder}/{stem}-{position}.{ext}"
            try:
                with default_storage.open(image_name, "rb") as fh:
                    payload = fh.read()
            except FileNotFoundError:
                continue
            used.add(path)
            paths[position] = path
            archive.writestr(_zip_info(path, zipfile.ZIP_STORED), payload)
            yield sink.drain()
        manifest = _zip_info("manifest.jsonl", zipfile.ZIP_DEFLATED)
        with archive.open(manifest, "w", force_zip64=True) as out:
            for position, line in _rows(version, split, "position", "line"):
                record = json.loads(line)
                entry = {
                    "external_id": record["external_id"],
                    "split": record["split"],
                    "label": record["label"],
                    "file": paths.get(position),
                    "image_url": record.get("image_url"),
                }
                out.write((json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode())
                if position % CHUNK_ROWS == 0:
                    yield sink.drain()
    yield sink.drain()


EXPORTERS = {
    "jsonl": stream_jsonl,
    "csv": stream_csv,
    "parquet": stream_parquet,
    "imagefolder": stream_imagefolder,
}
