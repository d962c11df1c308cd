"""On PostgreSQL, triggers keep published dataset versions and their rows as they were
published, even against raw SQL. (Deleting a whole project still cascades.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION concord_dataset_row_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'provenance_datasetrow is immutable: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER provenance_datasetrow_immutable
    BEFORE UPDATE ON provenance_datasetrow
    FOR EACH ROW EXECUTE FUNCTION concord_dataset_row_immutable();

CREATE OR REPLACE FUNCTION concord_dataset_version_immutable() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'succeeded' THEN
        RAISE EXCEPTION 'a published dataset version is immutable: % refused', TG_OP;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER provenance_datasetversion_immutable
    BEFORE UPDATE ON provenance_datasetversion
    FOR EACH ROW EXECUTE FUNCTION concord_dataset_version_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS provenance_datasetrow_immutable ON provenance_datasetrow;
DROP FUNCTION IF EXISTS concord_dataset_row_immutable();
DROP TRIGGER IF EXISTS provenance_datasetversion_immutable ON provenance_datasetversion;
DROP FUNCTION IF EXISTS concord_dataset_version_immutable();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL holds a literal % (RAISE format), not a placeholder.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("provenance", "0003_dataset_versions_and_tokens")]
    operations = [migrations.RunPython(forwards, backwards)]
