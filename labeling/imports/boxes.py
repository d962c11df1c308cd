"""Box adapters for detection projects: a COCO JSON file and a YOLO zip as label rows.

Each adapter turns the file into :class:`~labeling.imports.rows.AnnotationRow` objects
whose ``value`` is a list of boxes ``{class, x, y, w, h}`` in image pixels (x/y the
top-left corner) and whose ``image_size`` is the size the file states, plus row errors.
The boxes are validated later, with every other label row, by
:func:`labeling.boxes.normalize_boxes` (via the import's value resolver): this module only
converts coordinates and names classes.

Row numbers in errors:

- COCO: the image's position in ``images`` (1-based); ``field`` names the JSON path at
  fault (``images[3].file_name``, ``annotations[17].bbox``); a problem with
  ``categories`` is row 0.
- YOLO: the image's position in the archive's sorted image list (1-based); ``field``
  names the file (``labels/train/a.txt``), the message its line.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

from labeling import images, safe_json
from labeling.imports.errors import ImportRejected, _error
from labeling.imports.formats import _decode
from labeling.imports.parsing import ZipArchive, parse_rows
from labeling.imports.rows import AnnotationRow, clean_annotation_row

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")
MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "manifest.json")
COCO_KEYS = ("images", "annotations", "categories")


# --- Shared ----------------------------------------------------------------------------------
def _stem(path: str) -> str:
    name = posixpath.basename(path)
    return name.rsplit(".", 1)[0] if "." in name else name


def _external_id_candidates(path: str) -> list[str]:
    """Which external ids a file may stand for: its path, its name, its name's stem."""
    name = posixpath.basename(path)
    return list(dict.fromkeys([path, name, _stem(path)]))


def _match_item(candidates: Sequence[str], known: dict[str, int]) -> str | None:
    """The first candidate that is an item of the project, else None."""
    return next((c for c in candidates if c in known), None)


def _label_row(
    n: int,
    *,
    item: str,
    labeler: str | None,
    boxes: list[dict],
    image_size: tuple[int, int] | None,
    gold: bool,
    created_at: Any = None,
    prefix: str = "",
) -> tuple[AnnotationRow | None, list[dict]]:
    """A label row through the same shape checks as every import (labeler id, dates)."""
    raw: dict[str, Any] = {"item": item, "labeler": labeler, "value": boxes, "gold": gold}
    if created_at not in (None, ""):
        raw["created_at"] = created_at
    row, errors = clean_annotation_row(n, raw, prefix=prefix)
    if row is not None:
        row.image_size = image_size
    return row, errors


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if float(value).is_integer() and value > 0:
        return int(value)
    return None


# --- COCO ------------------------------------------------------------------------------------
def parse_coco(data: bytes) -> dict:
    """The COCO document (an object with ``images``, ``annotations``, ``categories``
    lists), after the same depth and text checks as every JSON import."""
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
    if not is_coco(document):
        raise ImportRejected(
            "a COCO file is an object with the lists images, annotations and categories",
            errors=[_error(None, k, f"missing list {k!r}") for k in COCO_KEYS],
        )
    if safe_json.has_surrogate_escape(text) and safe_json.surrogate_path(document):
        where = safe_json.surrogate_path(document)
        raise ImportRejected(
            f"{where}: invalid text (a lone surrogate escape such as \\ud800)",
            errors=[_error(None, where, "invalid text")],
        )
    return document


def is_coco(document: Any) -> bool:
    """True for an object holding the three COCO lists."""
    return isinstance(document, dict) and all(isinstance(document.get(k), list) for k in COCO_KEYS)


def looks_like_coco(data: bytes) -> bool:
    """A cheap test before parsing: the three COCO keys appear in the file."""
    head = data[:64].removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 BOM is allowed
    return head[:1] == b"{" and all(f'"{k}"'.encode() in data for k in COCO_KEYS)


def coco_rows(
    document: dict,
    *,
    known_items: Callable[[Sequence[str]], dict[str, int]],
    labeler: str | None = None,
    gold: bool = False,
) -> tuple[list[AnnotationRow], list[dict], int, dict]:
    """COCO images, annotations and categories as label rows, one per (image, labeler).

    ``known_items(candidates)``: {external id: item pk} of those that exist. An image is
    the item whose external id is the image's ``external_id`` field, else its
    ``file_name`` (as given, its base name, or the base name without extension). A
    category names a class by its ``name``. ``bbox`` is ``[x, y, width, height]`` in
    pixels, x/y the top-left corner. The labeler is the annotation's ``labeler``, else the
    image's, else ``labeler``; an image without annotations is an explicit "nothing
    there" ([]) by the image's labeler or ``labeler``, and is otherwise skipped. ``gold``
    (or an image's ``gold: true``) makes the labels ground truth.

    Returns (rows, errors, number of images, extra counts).
    """
    errors: list[dict] = []
    categories: dict[Any, str] = {}
    for index, category in enumerate(document["categories"]):
        where = f"categories[{index}]"
        if not isinstance(category, dict) or "id" not in category:
            errors.append(_error(0, where, "a category needs an id and a name"))
            continue
        name = category.get("name")
        if not isinstance(name, str) or not name:
            errors.append(_error(0, f"{where}.name", "a category needs a name (a class key)"))
            continue
        if category["id"] in categories:
            errors.append(_error(0, f"{where}.id", f"category id {category['id']!r} repeats"))
            continue
        categories[category["id"]] = name

    image_list = document["images"]
    positions: dict[Any, int] = {}
    for index, image in enumerate(image_list):
        n = index + 1
        if not isinstance(image, dict) or "id" not in image:
            errors.append(_error(n, f"images[{index}]", "an image needs an id and a file_name"))
            continue
        if image["id"] in positions:
            errors.append(_error(n, f"images[{index}].id", f"image id {image['id']!r} repeats"))
            continue
        positions[image["id"]] = index

    candidates: dict[int, list[str]] = {}
    for index in positions.values():
        image = image_list[index]
        external_id = image.get("external_id")
        if isinstance(external_id, int | str) and not isinstance(external_id, bool):
            candidates[index] = [str(external_id)]
        elif isinstance(image.get("file_name"), str) and image["file_name"].strip():
            candidates[index] = _external_id_candidates(image["file_name"].strip())
        else:
            errors.append(
                _error(index + 1, f"images[{index}].file_name", "an image needs a file_name")
            )
    known = known_items(sorted({c for cs in candidates.values() for c in cs}))

    boxes: dict[tuple[int, str | None], list[dict]] = defaultdict(list)
    bad_images: set[int] = set()
    for a_index, annotation in enumerate(document["annotations"]):
        where = f"annotations[{a_index}]"
        if not isinstance(annotation, dict):
            errors.append(_error(None, where, "an annotation must be an object"))
            continue
        index = positions.get(annotation.get("image_id"))
        if index is None:
            errors.append(
                _error(
                    None, f"{where}.image_id", f"no image with id {annotation.get('image_id')!r}"
                )
            )
            continue
        n = index + 1
        category = categories.get(annotation.get("category_id"))
        if category is None:
            errors.append(
                _error(
                    n,
                    f"{where}.category_id",
                    f"no category with id {annotation.get('category_id')!r}",
                )
            )
            bad_images.add(index)
            continue
        bbox = annotation.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            errors.append(_error(n, f"{where}.bbox", "bbox must be [x, y, width, height]"))
            bad_images.add(index)
            continue
        who = annotation.get("labeler", image_list[index].get("labeler", labeler))
        x, y, w, h = bbox
        boxes[(index, who)].append({"class": category, "x": x, "y": y, "w": w, "h": h})

    rows: list[AnnotationRow] = []
    n_skipped = 0
    labelled = {index for index, _ in boxes}
    for index in sorted(candidates):
        image = image_list[index]
        n = index + 1
        if index in bad_images:
            continue
        external_id = _match_item(candidates[index], known)
        if external_id is None:
            errors.append(
                _error(
                    n,
                    f"images[{index}].file_name"
                    if "external_id" not in image
                    else f"images[{index}].external_id",
                    f"the project has no item {' or '.join(map(repr, candidates[index]))}",
                )
            )
            continue
        width, height = _positive_int(image.get("width")), _positive_int(image.get("height"))
        size = (width, height) if width and height else None
        image_gold = gold or image.get("gold") is True
        groups = [(who, b) for (i, who), b in boxes.items() if i == index]
        if index not in labelled:
            who = image.get("labeler", labeler)
            if who is None:
                n_skipped += 1
                continue
            groups = [(who, [])]
        for who, image_boxes in sorted(groups, key=lambda g: str(g[0])):
            if who is None:
                errors.append(
                    _error(
                        n,
                        f"images[{index}].labeler",
                        "no labeler: give each annotation (or image) a 'labeler', or send "
                        "?labeler=<labeler id>",
                    )
                )
                continue
            row, row_errors = _label_row(
                n,
                item=external_id,
                labeler=who,
                boxes=image_boxes,
                image_size=size,
                gold=image_gold,
                created_at=image.get("created_at"),
                prefix=f"images[{index}].",
            )
            errors.extend(row_errors)
            if row is not None:
                rows.append(row)
    return rows, errors, len(image_list), {"n_images_without_labeler": n_skipped}


# --- YOLO ------------------------------------------------------------------------------------
_YOLO_LINE = re.compile(r"\s+")


def _yolo_class_names(archive: ZipArchive) -> tuple[list[str] | None, str]:
    """Class names by index from ``classes.txt`` (one per line) or ``data.yaml`` /
    ``dataset.yaml`` (``names`` as a list or an index map); (None, "") without either."""
    by_depth = sorted(archive.members, key=lambda m: (m.count("/"), m))
    for name in by_depth:
        base = posixpath.basename(name)
        if base in ("classes.txt", "obj.names"):
            text = _decode(archive.read(name, limit=1 << 20))
            return [line.strip() for line in text.splitlines() if line.strip()], name
    for name in by_depth:
        if posixpath.basename(name) in ("data.yaml", "dataset.yaml", "data.yml"):
            import yaml

            try:
                document = yaml.safe_load(_decode(archive.read(name, limit=1 << 20)))
            except yaml.YAMLError as exc:
                raise ImportRejected(
                    f"{name}: not valid YAML: {exc}", errors=[_error(None, name, "invalid YAML")]
                ) from exc
            names = document.get("names") if isinstance(document, dict) else None
            if isinstance(names, dict) and all(
                isinstance(k, int) and isinstance(v, str) for k, v in names.items()
            ):
                if sorted(names) != list(range(len(names))):
                    raise ImportRejected(
                        f"{name}: names must be numbered 0, 1, 2, …",
                        errors=[_error(None, f"{name}: names", "indices must be 0..n-1")],
                    )
                return [names[i] for i in range(len(names))], name
            if isinstance(names, list) and all(isinstance(v, str) for v in names):
                return list(names), name
            raise ImportRejected(
                f"{name}: 'names' must be a list of class names or a map index -> name",
                errors=[_error(None, f"{name}: names", "expected a list or a map")],
            )
    return None, ""


def _yolo_label_path(image: str, labels: set[str]) -> str | None:
    """The label file of an image: ``.../labels/...`` for ``.../images/...``
    (Ultralytics), else the same folder, with the extension ``.txt``."""
    stem_path = image.rsplit(".", 1)[0]
    parts = stem_path.split("/")
    options = []
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            options.append("/".join([*parts[:i], "labels", *parts[i + 1 :]]) + ".txt")
            break
    options.append(stem_path + ".txt")
    return next((o for o in options if o in labels), None)


def _yolo_manifest(archive: ZipArchive) -> dict[str, str]:
    """{image path: external id} from a manifest in the archive (as Concord's exports
    write one), else {}."""
    found = [m for m in archive.members if posixpath.basename(m) in MANIFEST_NAMES]
    if not found:
        return {}
    name = sorted(found, key=lambda m: (m.count("/"), m))[0]
    base = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    fmt = {"jsonl": "jsonl", "csv": "csv", "json": "json"}[name.rsplit(".", 1)[-1]]
    rows, errors = parse_rows(archive.read(name, limit=64 << 20), fmt, csv_required=("file",))
    if errors:
        raise ImportRejected(f"{name}: cannot be read", errors=errors)
    out = {}
    for _, row in rows:
        if isinstance(row, dict) and isinstance(row.get("file"), str) and row.get("external_id"):
            out[base + row["file"]] = str(row["external_id"])
    return out


def yolo_rows(
    archive: ZipArchive,
    *,
    class_order: Sequence[str],
    known_items: Callable[[Sequence[str]], dict[str, int]],
    labeler: str,
    gold: bool = False,
    max_image_bytes: int,
    max_image_pixels: int,
) -> tuple[list[AnnotationRow], list[dict], int, dict]:
    """A YOLO archive (images and one ``.txt`` per image of ``class cx cy w h`` lines,
    normalised to the image size) as label rows by ``labeler``.

    Class indices name classes from ``classes.txt`` / ``data.yaml`` in the archive, else
    the project's ``class_order``. An image without a label file is "nothing there" ([]).
    The item is named by the archive's manifest (``file`` -> ``external_id``) when there is
    one, else by the image's base name without extension (or with it).

    Returns (rows, errors, number of images, extra counts).
    """
    names, names_file = _yolo_class_names(archive)
    classes = names if names is not None else list(class_order)
    manifest = _yolo_manifest(archive)
    image_paths = sorted(
        m
        for m in archive.members
        if "." in m
        and m.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS
        and not posixpath.basename(m).startswith(".")
    )
    label_files = {
        m
        for m in archive.members
        if m.endswith(".txt") and posixpath.basename(m) not in ("classes.txt", "obj.names")
    }
    if not image_paths:
        raise ImportRejected(
            "the archive holds no images: a YOLO import needs each image beside its labels "
            "(the boxes are normalised to the image size)",
            errors=[_error(None, "file", "no images")],
        )
    candidates = {
        path: [manifest[path]] if path in manifest else _external_id_candidates(path)
        for path in image_paths
    }
    known = known_items(sorted({c for cs in candidates.values() for c in cs}))
    rows: list[AnnotationRow] = []
    errors: list[dict] = []
    used_labels: set[str] = set()
    for n, path in enumerate(image_paths, start=1):
        external_id = _match_item(candidates[path], known)
        if external_id is None:
            errors.append(
                _error(
                    n,
                    path,
                    f"the project has no item {' or '.join(map(repr, candidates[path]))}",
                )
            )
            continue
        try:
            with Image.open(io.BytesIO(archive.read(path, limit=max_image_bytes))) as im:
                width, height = im.size
        except (images.ImageRejected, OSError, UnidentifiedImageError) as exc:
            errors.append(_error(n, path, f"cannot read the image's size: {exc}"))
            continue
        if width * height > max_image_pixels:
            errors.append(_error(n, path, f"image is {width}×{height}: over the pixel limit"))
            continue
        label_path = _yolo_label_path(path, label_files)
        boxes: list[dict] = []
        row_errors: list[dict] = []
        if label_path is not None:
            used_labels.add(label_path)
            text = _decode(archive.read(label_path, limit=8 << 20))
            for line_no, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                box, problem = _yolo_box(line, classes, width, height)
                if problem:
                    row_errors.append(_error(n, label_path, f"line {line_no}: {problem}"))
                else:
                    boxes.append(box)
        if row_errors:
            errors.extend(row_errors)
            continue
        row, shape_errors = _label_row(
            n,
            item=external_id,
            labeler=labeler,
            boxes=boxes,
            image_size=(width, height),
            gold=gold,
        )
        errors.extend(shape_errors)
        if row is not None:
            rows.append(row)
    orphans = sorted(label_files - used_labels)
    for name in orphans:
        errors.append(_error(None, name, "a label file without its image (same name, .png/.jpg)"))
    extra = {"classes_from": names_file or "project class order"}
    return rows, errors, len(image_paths), extra


def _yolo_box(line: str, classes: Sequence[str], width: int, height: int) -> tuple[dict, str]:
    """One ``class cx cy w h`` line (normalised to 0..1) as a pixel box, or an error."""
    parts = _YOLO_LINE.split(line.strip())
    if len(parts) != 5:
        return {}, f"expected 'class cx cy w h', got {len(parts)} values"
    try:
        index = int(parts[0])
        cx, cy, w, h = (float(p) for p in parts[1:])
    except ValueError:
        return {}, "class must be an integer and cx cy w h numbers"
    if not 0 <= index < len(classes):
        return {}, f"class index {index} is not one of 0..{len(classes) - 1}"
    if not all(0 <= v <= 1.0001 for v in (cx, cy, w, h)):
        return {}, "cx cy w h must be normalised to 0..1"
    return (
        {
            "class": classes[index],
            "x": max(0.0, (cx - w / 2) * width),
            "y": max(0.0, (cy - h / 2) * height),
            "w": w * width,
            "h": h * height,
        },
        "",
    )
