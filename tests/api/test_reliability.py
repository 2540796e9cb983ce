"""Reliability under concurrent writers and held locks (issue 19), on the real database.

* SQLite: write transactions take the write lock up front (``BEGIN IMMEDIATE``) and wait
  their turn (busy timeout), so concurrent writers never get "database is locked"; reads
  never wait for a writer.
* A PATCH without If-Match is "last writer wins" even under concurrency; with a stale
  If-Match it is still 412.
* A lock or statement timeout answers 503 with Retry-After and a JSON message.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from urllib.parse import urlparse

import pytest

from crmcore import db
from tests.api.conftest import Api

WRITERS = 8


def _is_sqlite(env) -> bool:
    return env.database_url.startswith("sqlite")


def _run_threads(count: int, target) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads started together; the exceptions raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


# --------------------------------------------------------------------------- concurrent writers


def test_concurrent_writers_all_succeed(api_env):
    """8 writers creating leads with emails and tags, and moving deals, at once: every
    request succeeds and every create is stored (on SQLite this failed with 500
    "database is locked" before write transactions took the lock up front)."""
    clients = [Api(api_env, "acme", "admin") for _ in range(WRITERS)]
    pipeline = next(p for p in clients[0].get("/api/v1/pipelines").json["items"] if p["is_default"])
    stage_ids = [s["id"] for s in pipeline["stages"] if not s["is_lost"]]
    deals = [clients[0].post("/api/v1/deals", json={"title": f"deal {i}"}).json["id"] for i in range(WRITERS)]
    per_writer = 12
    failures: list[str] = []

    def write(i: int) -> None:
        api = clients[i]
        for n in range(per_writer):
            created = api.post("/api/v1/leads", json={"name": f"w{i} n{n}", "email": f"w{i}.n{n}@example.com", "tags": [f"w{i}", "load"]})
            if created.status_code != 201:
                failures.append(f"create {created.status_code}: {created.get_data(as_text=True)[:200]}")
            moved = api.patch(f"/api/v1/deals/{deals[i]}", json={"stage_id": stage_ids[n % len(stage_ids)]})
            if moved.status_code != 200:
                failures.append(f"move {moved.status_code}: {moved.get_data(as_text=True)[:200]}")

    assert _run_threads(WRITERS, write) == []
    assert failures == []
    listed = clients[0].get("/api/v1/leads?tag=load&limit=200").json["items"]
    assert len(listed) == WRITERS * per_writer
    assert {lead["email"] for lead in listed} == {f"w{i}.n{n}@example.com" for i in range(WRITERS) for n in range(per_writer)}


def test_a_read_does_not_wait_for_a_writer(api_env):
    """A read-only request takes no write lock: it answers while another connection
    holds SQLite's write lock (a writer in another process)."""
    if not _is_sqlite(api_env):
        pytest.skip("SQLite's database-wide write lock")
    api = Api(api_env, "acme", "admin")
    lead = api.post("/api/v1/leads", json={"name": "Ada"}).json
    holder = sqlite3.connect(urlparse(api_env.database_url).path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert api.get("/api/v1/leads").status_code == 200
        assert api.get(f"/api/v1/leads/{lead['id']}").status_code == 200
        assert time.monotonic() - started < 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --------------------------------------------------------------------------- last writer wins


def test_concurrent_patches_without_if_match_all_succeed(api_env):
    """Without If-Match the last writer wins: no 412 however the writes interleave, and
    each write counts (the version moves once per change)."""
    clients = [Api(api_env, "acme", "admin") for _ in range(WRITERS)]
    lead = clients[0].post("/api/v1/leads", json={"name": "Shared"}).json
    statuses: list[int] = []
    rounds = 5

    def write(i: int) -> None:
        for n in range(rounds):
            response = clients[i].patch(f"/api/v1/leads/{lead['id']}", json={"need": f"writer {i} round {n}"})
            statuses.append(response.status_code)

    assert _run_threads(WRITERS, write) == []
    assert statuses == [200] * (WRITERS * rounds)
    final = clients[0].get(f"/api/v1/leads/{lead['id']}")
    assert final.json["need"].startswith("writer ")
    assert final.headers["ETag"] == f'"{lead["id"]}-{1 + WRITERS * rounds}"'


def test_a_stale_if_match_is_still_refused(api_env):
    api = Api(api_env, "acme", "admin")
    created = api.post("/api/v1/leads", json={"name": "Ada"})
    etag = created.headers["ETag"]
    assert api.patch(f"/api/v1/leads/{created.json['id']}", json={"need": "first"}, headers={"If-Match": etag}).status_code == 200
    stale = api.patch(f"/api/v1/leads/{created.json['id']}", json={"need": "second"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert api.get(f"/api/v1/leads/{created.json['id']}").json["need"] == "first"


def test_concurrent_patches_with_if_match_let_one_win(api_env):
    """With the same If-Match, concurrent writers cannot both win: one 200, the rest 412."""
    clients = [Api(api_env, "acme", "admin") for _ in range(WRITERS)]
    created = clients[0].post("/api/v1/leads", json={"name": "Contested"})
    etag, lead_id = created.headers["ETag"], created.json["id"]
    statuses: list[int] = []

    def write(i: int) -> None:
        statuses.append(clients[i].patch(f"/api/v1/leads/{lead_id}", json={"need": f"writer {i}"}, headers={"If-Match": etag}).status_code)

    assert _run_threads(WRITERS, write) == []
    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    assert clients[0].get(f"/api/v1/leads/{lead_id}").headers["ETag"] == f'"{lead_id}-2"'


# --------------------------------------------------------------------------- lock timeouts


@pytest.fixture
def short_timeouts(crm_env):
    """acme, with 0.5 s lock and busy timeouts and a 2 s statement timeout."""
    crm_env.write_instance(database={"lock_timeout_seconds": 0.5, "busy_timeout_seconds": 0.5, "statement_timeout_seconds": 2.0})
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.create_app()
    return crm_env


class _Holder:
    """Another connection that holds a lock on the database for the length of a block."""

    def __init__(self, env):
        self.env = env
        self.conn = None

    def lock_lead(self, lead_id: int) -> None:
        if _is_sqlite(self.env):
            # SQLite locks the whole database: an open write transaction blocks every writer.
            self.conn = sqlite3.connect(urlparse(self.env.database_url).path, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE crm_lead SET need = 'held' WHERE id = ?", (lead_id,))
        else:
            import psycopg2

            base, _, query = self.env.database_url.partition("?")
            schema = dict(p.split("=", 1) for p in query.split("&"))["search_path"]
            self.conn = psycopg2.connect(base, options=f"-c search_path={schema}")
            self.conn.cursor().execute("SELECT id FROM crm_lead WHERE id = %s FOR UPDATE", (lead_id,))

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback() if not _is_sqlite(self.env) else self.conn.execute("ROLLBACK")
            self.conn.close()


def test_a_held_lock_answers_503_with_retry_after(short_timeouts):
    api = Api(short_timeouts, "acme", "admin")
    lead = api.post("/api/v1/leads", json={"name": "Ada"}).json
    holder = _Holder(short_timeouts)
    try:
        holder.lock_lead(lead["id"])
        started = time.monotonic()
        response = api.patch(f"/api/v1/leads/{lead['id']}", json={"need": "mine"})
        waited = time.monotonic() - started
    finally:
        holder.release()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert 0.4 < waited < 3
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json
    assert body["code"] == 503 and "busy" in body["message"] and "try again" in body["message"]
    # Once the lock is gone the same write goes through.
    assert api.patch(f"/api/v1/leads/{lead['id']}", json={"need": "mine"}).status_code == 200


def test_a_statement_timeout_answers_503(short_timeouts):
    """PostgreSQL cancels a statement that runs past statement_timeout_seconds."""
    if _is_sqlite(short_timeouts):
        pytest.skip("PostgreSQL's statement_timeout")
    app = short_timeouts.app

    @app.get("/slow-for-test")
    def slow():
        db.database.execute_sql("SELECT pg_sleep(5)")
        return "done"

    started = time.monotonic()
    response = short_timeouts.client("acme").get("/slow-for-test", headers={"Accept": "application/json"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert time.monotonic() - started < 4


def test_other_database_errors_are_not_turned_into_503(short_timeouts):
    app = short_timeouts.app
    app.testing = False  # a 500 answered, not raised into the test

    @app.get("/broken-for-test")
    def broken():
        db.database.execute_sql("SELECT * FROM no_such_table_here")
        return "never"

    response = short_timeouts.client("acme").get("/broken-for-test", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
