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

import io
import json
import re
import zipfile
from collections.abc import Iterator

from django.core.files.storage import default_storage
from django.db import connections

from datasets.models import DatasetRow, DatasetVersion
from labeling.models import safe_class_key

CHUNK_ROWS = 5000
PARQUET_ROW_GROUP = 10_000
FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "imagefolder": ("application/zip", "zip"),
    "coco": ("application/json", "json"),  # detection versions only
    "yolo": ("application/zip", "zip"),  # detection versions only
}
# A spreadsheet treats a cell starting with one of these as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_PATTERN = r"^([=+\-@\t\r])"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _queryset(version: DatasetVersion, split: str | None):
    qs = DatasetRow.objects.filter(version=version)
    if split:
        qs = qs.filter(split=split)
    return qs.order_by("position")


def _rows(version: DatasetVersion, split: str | None, *fields: str):
    return _queryset(version, split).values_list(*fields).iterator(chunk_size=CHUNK_ROWS)


def _line_batches(version: DatasetVersion, split: str | None) -> Iterator[list[str]]:
    """The rows' JSON lines, a chunk at a time, from a chunked (server-side) cursor.

    The ORM builds the query; the rows are fetched with ``fetchmany`` directly, which
    skips a per-row Python step (the export's hot loop runs a million times).
    """
    qs = _queryset(version, split).values_list("line", flat=True)
    sql, params = qs.query.sql_with_params()
    connection = connections[qs.db]
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(CHUNK_ROWS)
            if not rows:
                return
            yield [row[0] for row in rows]


def _lines(version: DatasetVersion, split: str | None) -> Iterator[str]:
    for batch in _line_batches(version, split):
        yield from batch


# --- JSONL -----------------------------------------------------------------------------------
def stream_jsonl(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """The canonical JSON lines, exactly as hashed, one row per line."""
    for batch in _line_batches(version, split):
        batch.append("")
        yield "\n".join(batch).encode()


# --- Neutralising formulas (CSV) ------------------------------------------------------------
def neutralise_cell(value: str) -> str:
    """Prefix a text cell a spreadsheet would run as a formula with ``'``."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _plan(columns: list[dict]) -> list[tuple[str, str | None, str]]:
    """(row field, metadata key or None, type) per export column."""
    return [(c["name"], c.get("key"), c["type"]) for c in columns]


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


def _arrow_type(column: dict):
    import pyarrow as pa

    if column["name"] == "labelers":
        return pa.list_(pa.string())
    if column["name"] == "guideline_versions":
        return pa.list_(pa.int64())
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "json": pa.string(),
    }[column["type"]]


def parquet_schema(columns: list[dict]):
    """The export schema: base columns, then ``metadata.<key>`` columns, flat."""
    import pyarrow as pa

    return pa.schema([pa.field(c["name"], _arrow_type(c)) for c in columns])


def _json_schema(columns: list[dict]):
    """The same columns as the JSON lines hold them: metadata as one nested struct."""
    import pyarrow as pa

    base = [pa.field(c["name"], _arrow_type(c)) for c in columns if "key" not in c]
    nested = [pa.field(c["key"], _arrow_type(c)) for c in columns if "key" in c]
    if nested:
        base.append(pa.field("metadata", pa.struct(nested)))
    return pa.schema(base)


def _parquet_value(value, kind: str):
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if kind == "float":
        return float(value)
    return value


def _tables_from_json(version, split, columns, schema) -> Iterator:
    """Row groups parsed by Arrow's JSON reader (C++), then flattened and ordered."""
    import pyarrow.json as pajson

    names = [c["name"] for c in columns]
    parse = pajson.ParseOptions(
        explicit_schema=_json_schema(columns), unexpected_field_behavior="ignore"
    )
    lines: list[str] = []

    def table_of(block: list[str]):
        data = ("\n".join(block) + "\n").encode()
        read = pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
        table = pajson.read_json(io.BytesIO(data), read_options=read, parse_options=parse)
        if "metadata" in table.column_names:
            table = table.flatten()
        return table.select(names).cast(schema)

    for line in _lines(version, split):
        lines.append(line)
        if len(lines) >= PARQUET_ROW_GROUP:
            yield table_of(lines)
            lines = []
    if lines:
        yield table_of(lines)


def _tables_from_python(version, split, columns, schema) -> Iterator:
    """Row groups built value by value (for metadata of mixed types, kept as JSON text)."""
    import pyarrow as pa

    plan = _plan(columns)
    data: dict[str, list] = {name: [] for name, _, _ in plan}
    n = 0
    for line in _lines(version, split):
        record = json.loads(line)
        metadata = record.get("metadata") or {}
        for name, key, kind in plan:
            value = metadata.get(key) if key is not None else record.get(name)
            data[name].append(_parquet_value(value, kind))
        n += 1
        if n % PARQUET_ROW_GROUP == 0:
            yield pa.Table.from_pydict(data, schema=schema)
            for values in data.values():
                values.clear()
    if n % PARQUET_ROW_GROUP:
        yield pa.Table.from_pydict(data, schema=schema)


def stream_parquet(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """A Parquet file written one row group at a time (constant memory per row group)."""
    import pyarrow.parquet as pq

    columns = version.columns
    schema = parquet_schema(columns)
    sink = _DrainableSink()
    writer = pq.ParquetWriter(sink, schema, compression="snappy", write_statistics=True)
    wrote = False
    for table in _tables(version, split, columns, schema):
        writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
        wrote = True
        yield sink.drain()
    if not wrote:
        writer.write_table(schema.empty_table())
    writer.close()
    yield sink.drain()


def _tables(version: DatasetVersion, split: str | None, columns: list[dict], schema) -> Iterator:
    """The rows as Arrow tables of at most PARQUET_ROW_GROUP rows, in the export schema."""
    mixed = any(c["type"] == "json" for c in columns)
    return (_tables_from_python if mixed else _tables_from_json)(version, split, columns, schema)


def stream_csv(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """One header line, then one line per row (CRLF line ends, text cells quoted);
    metadata as ``metadata.<key>`` columns, lists joined by ``;``. Text cells that a
    spreadsheet would evaluate as a formula are neutralised with a leading ``'``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    columns = version.columns
    schema = parquet_schema(columns)
    text_schema = pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema]
    )

    def neutralised(table):
        arrays = []
        for field, column in zip(schema, table.columns, strict=True):
            array = column
            if pa.types.is_list(field.type):
                array = pc.binary_join(array.cast(pa.list_(pa.string())), ";")
            if pa.types.is_list(field.type) or pa.types.is_string(field.type):
                array = pc.replace_substring_regex(
                    array, pattern=FORMULA_PATTERN, replacement="'\\1"
                )
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=text_schema)

    sink = _DrainableSink()
    options = pacsv.WriteOptions(quoting_style="needed", eol="\r\n")
    with pacsv.CSVWriter(sink, text_schema, write_options=options) as writer:
        for table in _tables(version, split, columns, schema):
            writer.write_table(neutralised(table))
            yield sink.drain()
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
            # a class key is any text: its folder is the derived safe form, distinct per key
            folder = f"{safe_name(row_split)}/{safe_class_key(label) if label else 'unlabeled'}"
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
                # Rows of versions built before final_label_source existed lack it: their
                # manifests stay byte-identical.
                if "final_label_source" in record:
                    entry["final_label_source"] = record["final_label_source"]
                out.write((json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode())
                if position % CHUNK_ROWS == 0:
                    yield sink.drain()
    yield sink.drain()


# --- Detection: COCO JSON and YOLO --------------------------------------------------------------
def is_detection(version: DatasetVersion) -> bool:
    """Whether the version's rows carry boxes (built by :mod:`datasets.detection`)."""
    return "box_classes" in (version.params or {})


def formats_for(version: DatasetVersion) -> list[str]:
    """The export formats a version offers: COCO and YOLO only for detection versions."""
    return [f for f in FORMATS if f not in DETECTION_FORMATS or is_detection(version)]


def _box_rows(version: DatasetVersion, split: str | None) -> Iterator[dict]:
    """Each row as ``{position, external_id, split, item_id, image_name, image_url,
    boxes, width, height}``, in position order (the box list is read from the line, so
    the exporters never care where the boxes came from)."""
    for position, external_id, row_split, image_name, item_id, line in _rows(
        version, split, "position", "external_id", "split", "image_name", "item_id_ref", "line"
    ):
        record = json.loads(line)
        yield {
            "position": position,
            "external_id": external_id,
            "split": row_split,
            "item_id": item_id,
            "image_name": image_name,
            "image_url": record.get("image_url"),
            "boxes": record.get("boxes") or [],
            "width": record.get("image_width"),
            "height": record.get("image_height"),
        }


def _image_paths(version: DatasetVersion, row: dict) -> tuple[str, str] | None:
    """(image path, label path) of an uploaded image in the YOLO layout
    ``images/<split>/<stem>.<ext>`` / ``labels/<split>/<stem>.txt``; None for items given
    by URL. The stem is the external id made file-safe (plus the item id when that
    changed it, so two ids never share a file)."""
    image_name = row["image_name"]
    if not concord_image_name(version.project_id, image_name):
        return None
    stem = safe_name(row["external_id"])
    if stem != row["external_id"]:
        stem = f"{stem}-{row['item_id']}"
    split = safe_name(row["split"])
    ext = image_name.rsplit(".", 1)[-1]
    return f"images/{split}/{stem}.{ext}", f"labels/{split}/{stem}.txt"


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stream_coco(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """One COCO JSON document: ``categories`` (id = index in the version's class order
    + 1, name = class key), ``images`` (id = row position + 1, ``file_name`` as in the
    YOLO zip, ``width``, ``height``, ``external_id``, ``split``, ``coco_url`` for items
    given by URL) and ``annotations`` (``bbox`` = [x, y, w, h] in pixels, ``area`` = w*h,
    ``iscrowd`` 0). Streamed a row at a time; keys sorted, so re-exports are identical."""
    classes = version.params["box_classes"]
    category = {key: n for n, key in enumerate(classes, start=1)}
    head = {
        "info": {
            "description": f"Concord dataset version {version.pk} of project {version.project_id}",
            "version": str(version.pk),
            "content_hash": version.content_hash,
            "split": split,
        },
        "licenses": [],
        "categories": [{"id": n, "name": key, "supercategory": ""} for key, n in category.items()],
    }
    opening = _dumps(head)[:-1]  # without the closing brace
    yield (opening + ',"images":[').encode()
    first = True
    for row in _box_rows(version, split):
        paths = _image_paths(version, row)
        image = {
            "id": row["position"] + 1,
            "file_name": paths[0] if paths else safe_name(row["external_id"]),
            "width": row["width"],
            "height": row["height"],
            "external_id": row["external_id"],
            "split": row["split"],
        }
        if row["image_url"]:
            image["coco_url"] = row["image_url"]
        yield (("" if first else ",") + _dumps(image)).encode()
        first = False
    yield b'],"annotations":['
    first = True
    n = 0
    for row in _box_rows(version, split):
        out = []
        for box in row["boxes"]:
            n += 1
            annotation = {
                "id": n,
                "image_id": row["position"] + 1,
                "category_id": category[box["class"]],
                "bbox": [box["x"], box["y"], box["w"], box["h"]],
                "area": round(box["w"] * box["h"], 4),
                "iscrowd": 0,
            }
            out.append(_dumps(annotation))
        if out:
            yield (("" if first else ",") + ",".join(out)).encode()
            first = False
    yield b"]}\n"


def yolo_line(box: dict, index: int, width: int, height: int) -> str:
    """``class cx cy w h``, normalised to the image size, 6 decimals (a millionth of the
    image: well under the stored 0.01 px for images up to 10,000 px)."""
    cx = (box["x"] + box["w"] / 2) / width
    cy = (box["y"] + box["h"] / 2) / height
    return f"{index} {cx:.6f} {cy:.6f} {box['w'] / width:.6f} {box['h'] / height:.6f}"


def stream_yolo(version: DatasetVersion, split: str | None = None) -> Iterator[bytes]:
    """A zip in the Ultralytics YOLO layout: ``images/<split>/<stem>.<ext>`` (uploaded
    images), ``labels/<split>/<stem>.txt`` (one ``class cx cy w h`` line per box; an
    empty file is nothing there), ``classes.txt``, ``data.yaml`` (splits and names) and
    ``manifest.jsonl`` (every row: external id, split, files, or its ``image_url``; items
    given by URL or of unknown size have no files)."""
    classes = version.params["box_classes"]
    index = {key: n for n, key in enumerate(classes)}
    sink = _DrainableSink()
    manifest: list[dict] = []
    splits: set[str] = set()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for row in _box_rows(version, split):
            paths = _image_paths(version, row)
            entry = {
                "external_id": row["external_id"],
                "split": row["split"],
                "file": None,
                "label_file": None,
                "image_url": row["image_url"],
                "n_boxes": len(row["boxes"]),
            }
            manifest.append(entry)
            if paths is None or not row["width"] or not row["height"]:
                continue
            try:
                with default_storage.open(row["image_name"], "rb") as fh:
                    payload = fh.read()
            except FileNotFoundError:
                continue
            image_path, label_path = paths
            lines = [
                yolo_line(b, index[b["class"]], row["width"], row["height"]) for b in row["boxes"]
            ]
            archive.writestr(_zip_info(image_path, zipfile.ZIP_STORED), payload)
            archive.writestr(
                _zip_info(label_path, zipfile.ZIP_DEFLATED), "".join(f"{line}\n" for line in lines)
            )
            entry["file"], entry["label_file"] = image_path, label_path
            splits.add(safe_name(row["split"]))
            yield sink.drain()
        archive.writestr(
            _zip_info("classes.txt", zipfile.ZIP_DEFLATED), "".join(f"{c}\n" for c in classes)
        )
        yaml_lines = [f"# Concord dataset version {version.pk} ({version.content_hash})", "path: ."]
        for name in sorted(splits):
            key = "val" if name == "dev" else name
            yaml_lines.append(f"{key}: images/{name}")
        yaml_lines.append("names:")
        yaml_lines += [
            f"  {n}: {json.dumps(key, ensure_ascii=False)}" for n, key in enumerate(classes)
        ]
        archive.writestr(_zip_info("data.yaml", zipfile.ZIP_DEFLATED), "\n".join(yaml_lines) + "\n")
        archive.writestr(
            _zip_info("manifest.jsonl", zipfile.ZIP_DEFLATED),
            "".join(_dumps(entry) + "\n" for entry in manifest),
        )
    yield sink.drain()


DETECTION_FORMATS = ("coco", "yolo")
EXPORTERS = {
    "jsonl": stream_jsonl,
    "csv": stream_csv,
    "parquet": stream_parquet,
    "imagefolder": stream_imagefolder,
    "coco": stream_coco,
    "yolo": stream_yolo,
}
