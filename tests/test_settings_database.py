"""SQLite configured the same however it is named (issue 13, finding 9): the WAL,
IMMEDIATE-transaction and busy-timeout options apply to ``DATABASE_URL=sqlite:///...`` as
they do to the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

from config.settings import SQLITE_OPTIONS, database_config


@pytest.mark.parametrize("url", ["", "sqlite:///{path}"])
def test_every_sqlite_database_gets_the_concurrency_options(tmp_path, url, django_db_blocker):
    path = tmp_path / "named.sqlite3"
    config = database_config(url.format(path=path), sqlite_path=path, var_dir=tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["OPTIONS"] == SQLITE_OPTIONS
    assert config["TEST"]["NAME"] == str(tmp_path / "test_concord.sqlite3")
    # and a connection opened with it really is in WAL mode with a busy timeout
    handler = ConnectionHandler({"default": config})
    connection = handler["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] == 30000
        assert connection.transaction_mode == "IMMEDIATE"
    finally:
        connection.close()
    assert Path(path).exists()


def test_options_given_in_the_url_win(tmp_path):
    config = database_config(
        f"sqlite:///{tmp_path / 'x.sqlite3'}?timeout=5", sqlite_path=tmp_path, var_dir=tmp_path
    )
    assert config["OPTIONS"]["timeout"] == 5
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_postgresql_is_left_as_parsed(tmp_path):
    config = database_config(
        "postgres://concord:secret@db.example:5432/concord", sqlite_path=tmp_path, var_dir=tmp_path
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert "OPTIONS" not in config and config["CONN_MAX_AGE"] == 60
