"""On PostgreSQL a trigger refuses UPDATE and DELETE on the event log, so not even raw
SQL or another client can rewrite history. SQLite relies on the ORM guards."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION concord_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'provenance_event is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER provenance_event_append_only
    BEFORE UPDATE OR DELETE ON provenance_event
    FOR EACH ROW EXECUTE FUNCTION concord_event_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS provenance_event_append_only ON provenance_event;
DROP FUNCTION IF EXISTS concord_event_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL holds a literal % (RAISE format), not a placeholder.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("provenance", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
