"""Bulk imports: items (JSON, JSONL, CSV, zip of images + manifest), historical labels
(JSON, JSONL, CSV), Label Studio JSON exports and, for detection projects, COCO JSON
files and YOLO zips. Box values from every path are checked by
:func:`labeling.boxes.normalize_boxes`.

Every import is one :class:`labeling.models.SourceBatch` with provenance events, written
in one transaction. The whole file is parsed and every row validated before anything is
written: a file with invalid rows stores nothing (:class:`ImportRejected` names the rows)
unless the caller asks for a partial import, which stores the valid rows and records the
errors on the batch.

Row numbers in errors are 1-based:

- JSON list: the position of the row in the list (the first element is row 1);
- JSONL: the line number in the file (blank lines count as lines but hold no row);
- CSV: the data row; the header is row 0 and is not counted (the first line under the
  header is row 1); header problems are reported as row 0;
- zip: the row of the manifest, numbered as above for its format;
- Label Studio: the task's position in the exported list (``field`` names the annotation).
- COCO: the image's position in ``images``; ``field`` the JSON path (``annotations[4].bbox``).
- YOLO: the image's position in the archive's sorted image list; ``field`` the file.

Speed: items, tags and events are written with :mod:`provenance.bulk` (one INSERT or COPY
per few thousand rows), annotations with ``bulk_create`` in batches; existing items,
labelers, current annotations and classes are each fetched with one query (or one query
per few thousand ids), never one per row.

The package, one module per concern (each imports only those above it):

- :mod:`~labeling.imports.errors`: ``ImportRejected`` (nothing stored), ``ImportResult``;
- :mod:`~labeling.imports.formats`: ``detect_format`` from a file name or Content-Type;
- :mod:`~labeling.imports.parsing`: JSON, JSONL and CSV rows, ``ZipArchive``;
- :mod:`~labeling.imports.rows`: ``ItemRow``/``AnnotationRow`` and their ``clean_*`` checks;
- :mod:`~labeling.imports.label_studio`: a Label Studio export as item and label rows
  (``rectanglelabels`` results as boxes, percent converted to pixels);
- :mod:`~labeling.imports.boxes`: a COCO file and a YOLO zip as label rows of boxes;
- :mod:`~labeling.imports.items`: ``import_items`` (items, tags, images, their events);
- :mod:`~labeling.imports.annotations`: ``import_annotations``, ``import_label_studio``,
  ``import_coco``, ``import_yolo`` (labels, labeler accounts, gold labels).
"""
