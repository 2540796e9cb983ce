"""The PostgreSQL pool hands out a recently returned connection without a round trip, and
still finds a connection the server closed while it sat idle (crmcore.db.CheckedPool)."""

from __future__ import annotations

import time

import psycopg2
import pytest

from crmcore import db


@pytest.fixture
def pool(crm_database_url):
    if not crm_database_url.startswith("postgres"):
        pytest.skip("the pool is PostgreSQL's (CRM_TEST_DATABASE_URL)")
    database = db.make_database(crm_database_url)
    assert isinstance(database, db.CheckedPool)
    yield database, crm_database_url
    database.close_all()


def _last_query_of(url: str, pid: int) -> str:
    """What the server says backend ``pid`` ran last (pg_stat_activity, from another connection)."""
    plain = url.split("?")[0]
    with psycopg2.connect(plain) as watcher, watcher.cursor() as cur:
        cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
        return cur.fetchone()[0]


def _checkout(database) -> tuple[object, int]:
    database.connect()
    conn = database.connection()
    pid = conn.info.backend_pid
    return conn, pid


def test_a_connection_back_from_a_request_is_reused_without_select_1(pool):
    database, url = pool
    conn, pid = _checkout(database)
    database.execute_sql("SELECT 'marker-of-the-last-request'")
    database.close()  # back to the pool

    again, same_pid = _checkout(database)
    assert again is conn and same_pid == pid
    assert "marker-of-the-last-request" in _last_query_of(url, pid)  # no SELECT 1 in between
    database.close()


def test_a_connection_idle_past_the_window_is_checked_and_replaced_when_dead(pool, monkeypatch):
    database, url = pool
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    conn, pid = _checkout(database)
    database.close()
    with psycopg2.connect(url.split("?")[0]) as admin, admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)

    fresh, fresh_pid = _checkout(database)
    assert fresh_pid != pid  # the dead one was found and dropped, not handed to a request
    assert database.execute_sql("SELECT 1 + 1").fetchone()[0] == 2
    database.close()


def test_a_connection_idle_past_the_window_is_pinged(pool, monkeypatch):
    database, url = pool
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    conn, pid = _checkout(database)
    database.execute_sql("SELECT 'marker-before-the-pause'")
    database.close()
    time.sleep(0.2)

    again, same_pid = _checkout(database)
    assert same_pid == pid
    assert _last_query_of(url, pid) == "SELECT 1"  # peewee's check, as before
    database.close()
