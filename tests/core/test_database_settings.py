"""crm.toml's [database] (lock and statement timeouts), how the database applies them,
and which errors count as "busy" (answered 503 by the web app)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee
import pytest
import tomli_w

from crmcore import db
from crmcore.config import load_instance


def _load(tmp_path: Path, instance: dict, env: dict | None = None):
    (tmp_path / "crm.toml").write_text(tomli_w.dumps(instance))
    problems: list = []
    return load_instance(tmp_path, env or {}, problems), problems


def test_defaults(tmp_path):
    config, problems = _load(tmp_path, {})
    assert problems == []
    assert dict(config.database) == {"lock_timeout_seconds": 5.0, "busy_timeout_seconds": 10.0, "statement_timeout_seconds": 30.0}


def test_file_and_environment(tmp_path):
    config, problems = _load(tmp_path, {"database": {"lock_timeout_seconds": 2}}, {"CRM_DATABASE__STATEMENT_TIMEOUT_SECONDS": "12.5"})
    assert problems == []
    assert config.database["lock_timeout_seconds"] == 2.0
    assert config.database["statement_timeout_seconds"] == 12.5
    assert config.database_url == "sqlite:///crm.db"  # CRM_DATABASE_URL's key is another one


@pytest.mark.parametrize(
    "section, key",
    [
        ({"lock_timeout_seconds": 0}, "database.lock_timeout_seconds"),
        ({"statement_timeout_seconds": -1}, "database.statement_timeout_seconds"),
        ({"busy_timeout_seconds": 0}, "database.busy_timeout_seconds"),
        ({"lock_timeout_seconds": "soon"}, "database.lock_timeout_seconds"),
        ({"lock_timeout": 5}, "database.lock_timeout"),
    ],
)
def test_bad_values_are_refused_with_the_key(tmp_path, section, key):
    config, problems = _load(tmp_path, {"database": section})
    assert config is None
    assert [p.key for p in problems] == [key]


def test_sqlite_busy_timeout_and_immediate_transactions(tmp_path):
    database = db.make_database(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout=0.25)
    with database.connection_context():
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 250
        database.execute_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        # BEGIN IMMEDIATE: this transaction holds the write lock before it writes.
        with database.connection_context(), database.atomic(), pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_postgres_connections_carry_the_timeouts(crm_database_url):
    if not crm_database_url.startswith("postgres"):
        pytest.skip("PostgreSQL session settings")
    database = db.make_database(crm_database_url, lock_timeout=1.5, statement_timeout=7)
    try:
        with database.connection_context():
            assert database.execute_sql("SHOW lock_timeout").fetchone()[0] == "1500ms"
            assert database.execute_sql("SHOW statement_timeout").fetchone()[0] == "7s"
            with db.using(database):
                with db.no_timeouts():
                    assert database.execute_sql("SHOW lock_timeout").fetchone()[0] == "0"
                assert database.execute_sql("SHOW lock_timeout").fetchone()[0] == "1500ms"
            # the search_path of the URL is still applied
            assert database.execute_sql("SHOW search_path").fetchone()[0] == "public"
    finally:
        database.close_all()


def test_which_errors_are_busy():
    locked = peewee.OperationalError(sqlite3.OperationalError("database is locked"), "database is locked")
    assert db.is_busy_error(locked)
    assert not db.is_busy_error(peewee.OperationalError(sqlite3.OperationalError("no such table: x"), "no such table: x"))
    assert not db.is_busy_error(ValueError("database is locked"))

    class PgError(Exception):
        def __init__(self, code):
            super().__init__(code)
            self.pgcode = code

    for code in ("55P03", "57014", "40P01", "40001"):
        assert db.is_busy_error(peewee.OperationalError(PgError(code)))
    assert not db.is_busy_error(peewee.OperationalError(PgError("42P01")))  # undefined_table
