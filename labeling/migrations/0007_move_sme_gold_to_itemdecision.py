"""SME decisions were stored as GoldLabel rows with source "sme"; they move to ItemDecision,
and GoldLabel keeps only ground truth. Reversible: the reverse moves them back."""

from django.db import migrations


def forward(apps, schema_editor):
    GoldLabel = apps.get_model("labeling", "GoldLabel")
    ItemDecision = apps.get_model("labeling", "ItemDecision")
    rows = GoldLabel.objects.filter(source="sme")
    ItemDecision.objects.bulk_create(
        [
            ItemDecision(
                item_id=g.item_id,
                label_class_id=g.label_class_id,
                value_number=g.value_number,
                value_text=g.value_text,
                decided_by_id=g.created_by_id,
            )
            for g in rows
        ],
        batch_size=1000,
    )
    rows.delete()


def backward(apps, schema_editor):
    GoldLabel = apps.get_model("labeling", "GoldLabel")
    ItemDecision = apps.get_model("labeling", "ItemDecision")
    # An item holds one GoldLabel: where ground truth exists, it stays and the decision goes.
    have = set(GoldLabel.objects.values_list("item_id", flat=True))
    GoldLabel.objects.bulk_create(
        [
            GoldLabel(
                item_id=d.item_id,
                label_class_id=d.label_class_id,
                value_number=d.value_number,
                value_text=d.value_text,
                source="sme",
                created_by_id=d.decided_by_id,
            )
            for d in ItemDecision.objects.all()
            if d.item_id not in have
        ],
        batch_size=1000,
    )
    ItemDecision.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("labeling", "0006_itemdecision")]

    operations = [migrations.RunPython(forward, backward)]
