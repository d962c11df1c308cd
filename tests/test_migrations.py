"""The redesign's model moves keep the data: rows written before it read back after it.

The test database is migrated back to the last nodes before the redesign (the apps added
by it, such as ``datasets``, to nothing), rows are written with the historical models of
that state, then everything is migrated forward to the graph's leaf nodes and the same
rows are read through today's models.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from datasets.models import DatasetRow, DatasetStatus, DatasetVersion, PipelineToken
from labeling.models import Item, Project

# The last migration of each app before the redesign (issue 16).
PRE_REDESIGN = {
    "labeling": "0002_initial",
    "provenance": "0004_dataset_immutable_trigger",
    "consistency": "0004_model_runs",
}


def _project_apps(executor: MigrationExecutor) -> set[str]:
    """Labels of this project's apps that have migrations (not Django's or a library's)."""
    labels = {app for app, _ in executor.loader.graph.leaf_nodes()}
    # A virtual environment may live inside the checkout (``make`` puts it in .venv):
    # installed packages are not the project's apps even then.
    installed = Path(sys.prefix).resolve()
    return {
        label
        for label in labels
        if (path := Path(django_apps.get_app_config(label).path).resolve()).is_relative_to(
            settings.BASE_DIR
        )
        and not path.is_relative_to(installed)
    }


def _pre_redesign_targets(executor: MigrationExecutor) -> list[tuple[str, str | None]]:
    # An app the redesign added did not exist before it: migrate it to nothing.
    return [(app, PRE_REDESIGN.get(app)) for app in sorted(_project_apps(executor))]


def _migrate(targets) -> MigrationExecutor:
    """Migrate to ``targets`` with a fresh executor (the loader caches applied state)."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)


def _latest_targets() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_dataset_rows_written_before_the_redesign_are_read_by_the_datasets_app():
    executor = MigrationExecutor(connection)
    targets = _pre_redesign_targets(executor)
    try:
        executor = _migrate(targets)
        old = executor.loader.project_state([t for t in targets if t[1] is not None]).apps
        user_app, user_model = settings.AUTH_USER_MODEL.split(".")
        User = old.get_model(user_app, user_model)
        OldProject = old.get_model("labeling", "Project")
        OldItem = old.get_model("labeling", "Item")
        OldVersion = old.get_model("provenance", "DatasetVersion")
        OldRow = old.get_model("provenance", "DatasetRow")
        OldToken = old.get_model("provenance", "PipelineToken")

        manager = User.objects.create(username="before-manager")
        service = User.objects.create(username="pipeline-before-1")
        project = OldProject.objects.create(name="Before", slug="before")
        item = OldItem.objects.create(
            project=project,
            external_id="phone-001",
            kind="image_url",
            image_url="https://img.example.com/phone-001.jpg",
            metadata={"factory": "A"},
        )
        finished = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        version = OldVersion.objects.create(
            project=project,
            created_by=manager,
            status="succeeded",
            request={"agreement_run": 7},
            params={"agreement_run": 7, "seed": 3},
            row_count=2,
            split_counts={"train": 1, "test": 1},
            class_counts={"all": {"crack": 1, "ok": 1}},
            columns=[{"name": "external_id", "type": "string"}],
            lineage={"class_merges": {}},
            content_hash="a" * 64,
            finished_at=finished,
        )
        rows = [
            OldRow.objects.create(
                version=version,
                position=0,
                external_id="phone-001",
                split="train",
                label="crack",
                item_id_ref=item.pk,
                image_name="items/phone-001.jpg",
                line='{"external_id":"phone-001"}',
            ),
            OldRow.objects.create(
                version=version,
                position=1,
                external_id="phone-002",
                split="test",
                label="ok",
                line='{"external_id":"phone-002"}',
            ),
        ]
        token = OldToken.objects.create(
            project=project,
            name="nightly export",
            prefix="cnc_abcdef",
            token_hash="b" * 64,
            scopes=["read"],
            user=service,
            created_by=manager,
        )

        _migrate(_latest_targets())

        new_version = DatasetVersion.objects.get(pk=version.pk)
        assert new_version.project_id == project.pk
        assert new_version.created_by_id == manager.pk
        assert new_version.status == DatasetStatus.SUCCEEDED
        assert new_version.params == {"agreement_run": 7, "seed": 3}
        assert new_version.split_counts == {"train": 1, "test": 1}
        assert new_version.content_hash == "a" * 64
        assert new_version.finished_at == finished
        assert list(Project.objects.get(pk=project.pk).dataset_versions.all()) == [new_version]
        assert list(
            new_version.rows.values_list(
                "pk", "position", "external_id", "split", "label", "item_id_ref", "image_name"
            )
        ) == [
            (rows[0].pk, 0, "phone-001", "train", "crack", item.pk, "items/phone-001.jpg"),
            (rows[1].pk, 1, "phone-002", "test", "ok", None, ""),
        ]
        assert DatasetRow.objects.get(pk=rows[0].pk).line == '{"external_id":"phone-001"}'
        assert Item.objects.get(pk=item.pk).external_id == "phone-001"

        new_token = PipelineToken.objects.get(pk=token.pk)
        assert (new_token.project_id, new_token.name, new_token.token_hash) == (
            project.pk,
            "nightly export",
            "b" * 64,
        )
        assert new_token.scopes == ["read"]
        assert new_token.user.pipeline_token == new_token

        if connection.vendor == "postgresql":
            # The immutability trigger still guards the table it was attached to.
            with pytest.raises(DatabaseError, match="immutable"), connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE provenance_datasetrow SET label='x' WHERE id=%s", [rows[0].pk]
                )
    finally:
        _migrate(_latest_targets())
