"""SourceBatch now lives in labeling (labeling 0003): remove it from provenance's state
only. The table ``provenance_sourcebatch`` and its rows stay, owned by labeling."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0003_sourcebatch"),
        ("provenance", "0004_dataset_immutable_trigger"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SourceBatch")],
            database_operations=[],
        ),
    ]
