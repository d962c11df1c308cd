"""labeling 0007: SME decisions stored as GoldLabel(source="sme") move to ItemDecision;
imported ground truth stays in GoldLabel. The reverse moves them back."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labeling.models import PayloadKind

BEFORE = [("labeling", "0006_itemdecision")]
AFTER = [("labeling", "0007_move_sme_gold_to_itemdecision")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_sme_gold_rows_move_to_item_decisions_and_back():
    old = _migrate(BEFORE)
    sme = get_user_model().objects.create_user("sam", password="x")
    # Rows written with the models of that state: today's Project has columns added by
    # later migrations, which do not exist yet at 0006.
    project = old.get_model("labeling", "Project").objects.create(name="Phones", slug="phones")
    LabelClass = old.get_model("labeling", "LabelClass")
    ok = LabelClass.objects.create(project=project, key="ok", name="OK")
    dent = LabelClass.objects.create(project=project, key="dent", name="Dent")
    items = [
        old.get_model("labeling", "Item").objects.create(
            project=project, external_id=f"i{n}", kind=PayloadKind.TEXT, text="x"
        )
        for n in range(3)
    ]
    Gold = old.get_model("labeling", "GoldLabel")
    Gold.objects.create(item_id=items[0].pk, label_class_id=ok.pk, source="import")
    Gold.objects.create(
        item_id=items[1].pk, label_class_id=dent.pk, source="sme", created_by_id=sme.pk
    )

    new = _migrate(AFTER)
    Gold, Decision = (
        new.get_model("labeling", "GoldLabel"),
        new.get_model("labeling", "ItemDecision"),
    )
    assert list(Gold.objects.values_list("item_id", "label_class_id", "source")) == [
        (items[0].pk, ok.pk, "import")
    ]
    assert list(Decision.objects.values_list("item_id", "label_class_id", "decided_by_id")) == [
        (items[1].pk, dent.pk, sme.pk)
    ]

    back = _migrate(BEFORE)
    Gold = back.get_model("labeling", "GoldLabel")
    assert sorted(Gold.objects.values_list("item_id", "label_class_id", "source")) == [
        (items[0].pk, ok.pk, "import"),
        (items[1].pk, dent.pk, "sme"),
    ]
    assert not back.get_model("labeling", "ItemDecision").objects.exists()
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
