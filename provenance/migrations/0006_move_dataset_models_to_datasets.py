"""DatasetVersion, DatasetRow and PipelineToken now belong to the ``datasets`` app
(``datasets`` 0001 took them over): drop them from this app's state only. Their tables,
data and triggers stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("provenance", "0005_move_sourcebatch_to_labeling"),
        ("datasets", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="DatasetRow"),
                migrations.DeleteModel(name="DatasetVersion"),
                migrations.DeleteModel(name="PipelineToken"),
            ]
        )
    ]
