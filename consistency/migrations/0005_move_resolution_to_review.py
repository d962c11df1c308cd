"""Resolution moves to the review app: forget it here, keep its table and rows.

State only: ``review.0001_initial`` takes the model over with the same table
(``consistency_resolution`` and its ``consistency_resolution_items`` link table).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("consistency", "0004_model_runs"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Resolution")],
            database_operations=[],
        ),
    ]
