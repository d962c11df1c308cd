"""The one bulk writer: many rows of one model in one ``INSERT``/``COPY`` or ``UPDATE``.

Rows are plain dicts keyed by field ``attname`` (``project_id``, not ``project``), never
model instances: constructing 100,000 instances costs more than writing them, and
``QuerySet.bulk_create`` compiles every value of every row through the SQL compiler,
which dominates a 100,000-row import. Here plain values (text, numbers, booleans, foreign
key ids) go to the driver as they are; JSON, files and dates go through their field's
``get_db_prep_save``. No signals are sent, no ``save()`` runs, and primary keys are not
read back: a caller that needs them reads them with one query on a column it set.

It lives in ``provenance`` (the leaf every app may import, the event log included) and
imports no other Concord app.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone

#: Rows per ``executemany`` / ``COPY`` (and ids per ``IN (...)`` for :func:`chunks`).
BATCH_SIZE = 2000

# Field types whose Python values (str, int, float, bool, None) the database drivers take
# as they are: no per-value conversion needed on SQLite or PostgreSQL.
_PLAIN_TYPES = frozenset(
    {
        "CharField",
        "TextField",
        "SlugField",
        "URLField",
        "EmailField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "PositiveBigIntegerField",
        "FloatField",
        "BooleanField",
        "ForeignKey",
    }
)
# Text-like columns that are NOT NULL without a default take "" when a row omits them.
_EMPTY_STRING_TYPES = ("CharField", "TextField", "SlugField", "URLField", "FileField")


def chunks(values: Sequence, size: int = BATCH_SIZE) -> Iterable[Sequence]:
    """Consecutive slices of ``values`` of at most ``size`` elements (the last one shorter)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_rows(model: type[Model], rows: Sequence[dict]) -> None:
    """Insert ``rows`` into ``model``'s table; returns nothing (primary keys are not read).

    ``rows``: one ``{attname: value}`` dict per row; a column missing from a row takes the
    field's default (or ``""`` for a NOT NULL text or file column without one, or NULL),
    and an unset ``auto_now``/``auto_now_add`` date takes one "now" shared by the whole
    call. Dates are timezone-aware ``datetime`` values (or ISO strings the field accepts);
    JSON fields take any JSON-serialisable value (``None`` is SQL NULL).

    Written in chunks of :data:`BATCH_SIZE` rows: ``COPY ... FROM STDIN`` on PostgreSQL
    (one command per chunk), one ``executemany`` elsewhere. A unique-key conflict raises
    ``django.db.IntegrityError`` on every backend. Call it inside the caller's transaction.
    """
    if not rows:
        return
    qn = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    columns = []
    for f in fields:
        auto = getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        default = None if auto or not f.has_default() else f.get_default()
        if (
            default is None
            and not f.null
            and not auto
            and f.get_internal_type() in _EMPTY_STRING_TYPES
        ):
            default = ""
        columns.append((f.attname, default, _column_converter(f, now)))
    table = qn(model._meta.db_table)
    column_list = ", ".join(qn(f.column) for f in fields)
    sql = f"INSERT INTO {table} ({column_list}) VALUES ({', '.join(['%s'] * len(fields))})"
    for chunk in chunks(rows, BATCH_SIZE):
        params = [
            [
                row.get(name, default) if convert is None else convert(row.get(name, default))
                for name, default, convert in columns
            ]
            for row in chunk
        ]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # COPY streams the rows in one command (executemany pays a round trip per
                # row through Django's client-side-binding cursor).
                copy_sql = f"COPY {table} ({column_list}) FROM STDIN"
                # The raw psycopg cursor bypasses Django's error translation: restore it,
                # so a unique-key race surfaces as IntegrityError (409) like elsewhere.
                with connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:
                    for row in params:
                        copy.write_row(row)
            else:
                cursor.executemany(sql, params)


def update_rows(model: type[Model], rows: Sequence[dict], field_names: Sequence[str]) -> None:
    """Set ``field_names`` on the rows of ``model`` named by each row's ``"id"``.

    ``rows``: one ``{"id": primary key, attname: value, ...}`` dict per row; a field of
    ``field_names`` missing from a row is set to the field's default (``""`` or NULL when
    it has none). ``field_names`` are field names (``source_batch`` or ``source_batch_id``
    both work). Values are converted as in :func:`insert_rows`; an ``auto_now`` date left
    unset becomes one "now" shared by the whole call. Runs ``UPDATE ... SET <fields>
    WHERE pk = %s`` as one ``executemany`` per :data:`BATCH_SIZE` rows; rows whose id does
    not exist are skipped silently. Returns nothing.

    ``QuerySet.bulk_update`` builds a ``CASE WHEN pk = ... THEN ...`` expression per field
    and row, which costs seconds per thousand rows in Python; one prepared statement with
    many parameter sets costs microseconds per row on SQLite and PostgreSQL alike.
    """
    if not rows:
        return
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    now = timezone.now()
    columns = []
    for f in fields:
        default = f.get_default() if f.has_default() else (None if f.null else "")
        columns.append((f.attname, default, _column_converter(f, now)))
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET "
        + ", ".join(f"{qn(f.column)} = %s" for f in fields)
        + f" WHERE {qn(model._meta.pk.column)} = %s"
    )
    for chunk in chunks(rows, BATCH_SIZE):
        params = [
            [
                row.get(name, default) if convert is None else convert(row.get(name, default))
                for name, default, convert in columns
            ]
            + [row["id"]]
            for row in chunk
        ]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def _column_converter(field: Field, now: datetime):
    """A function turning a column value into the value the driver is sent (None: as is)."""
    kind = field.get_internal_type()
    if kind in _PLAIN_TYPES:
        return None
    if kind == "FileField":
        return lambda value: (
            value if isinstance(value, str) else ((value.name or "") if value else "")
        )
    if kind == "DateTimeField":
        cache: dict = {}
        auto = field.auto_now or field.auto_now_add

        def convert(value):
            value = now if (value is None and auto) else value
            if value not in cache:
                cache[value] = field.get_db_prep_save(value, connection)
            return cache[value]

        return convert
    return lambda value: field.get_db_prep_save(value, connection)
