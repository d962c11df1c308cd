"""The system check refuses an OpenLineage target without the client installed."""

from django.core import checks

from provenance import lineage
from provenance.checks import lineage_client_installed


def test_a_lineage_target_without_the_client_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENLINEAGE_FILE", str(tmp_path / "lineage.jsonl"))
    monkeypatch.setattr(lineage.importlib.util, "find_spec", lambda name: None)
    [error] = lineage_client_installed()
    assert error.id == "provenance.E001" and error.level == checks.ERROR


def test_a_lineage_target_with_the_client_passes(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENLINEAGE_FILE", str(tmp_path / "lineage.jsonl"))
    assert lineage.client_is_installed()  # openlineage-python is a dev dependency
    assert lineage_client_installed() == []


def test_no_lineage_target_needs_no_client(monkeypatch):
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_FILE", raising=False)
    monkeypatch.setattr(lineage.importlib.util, "find_spec", lambda name: None)
    assert lineage_client_installed() == []


def test_the_check_is_registered():
    assert lineage_client_installed in checks.registry.registry.get_checks()
