#!/usr/bin/env python
"""Kanban benchmark: open a board and move a card with 100 / 10,000 / 100,000 open deals,
through the full CRM stack, side by side with a floor, in one run.

Scenarios (tenant ``acme``, admin bearer token, the default 6-stage pipeline, 20 cards
per column):

* ``board open``: ``GET /api/v1/pipeline/boards/<id>`` -- every column's totals and
  first page, cards with tags, owner, company, contact and badges.
* ``move``: ``PUT /api/v1/pipeline/cards/<id>`` -- a card to the next stage, between two
  cards (stage history, audit, signals, live events), alternating back and forth.

Floors, run in alternating batches with the full stack so machine noise hits both alike:

* ``board open`` / hand-written: the SQL a bare app would send for the same answer --
  the stages, one GROUP BY for the totals, one query for the first page of every column
  (a UNION ALL of one ``ORDER BY position LIMIT 21`` per stage), the tags of those cards -- on a
  raw DB-API cursor, rows fetched, no HTTP, no ORM, no JSON.
* ``board open`` / same SQL: the very statements the full stack sent for one request
  (recorded once), replayed on a raw cursor: the difference to the full stack is the cost
  of the layers (routing, auth, ORM, marshmallow, JSON) alone.
* ``move`` / hand-written: UPDATE the deal, INSERT the stage change and the audit row,
  in one transaction.

Time is the server time per request (the WSGI call, body read to the end), p50 and p99
over the timed requests; queries are SQL statements per request, counted by wrapping
peewee's ``execute_sql``.

    .venv/bin/python bench/bench_kanban.py --sizes 100 10000                 # SQLite
    .venv/bin/python bench/bench_kanban.py --sizes 100 10000 100000 --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --report bench/results/kanban.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

PER_COLUMN = 20
OPEN_STAGES = 4  # Lead, Qualified, Proposal, Negotiation


# --------------------------------------------------------------------------- the instance


class Instance:
    """A CRM with tenant acme (kanban on) and ``n`` open deals, on SQLite or a fresh
    PostgreSQL schema."""

    def __init__(self, n: int, pg_url: str | None):
        from crmcore import auth, db
        from crmcore.testing import CrmEnv, _pg_admin

        self.db, self.n, self.schema, self.pg_url = db, n, None, pg_url
        self.tmp = tempfile.TemporaryDirectory(prefix="kanban-bench-")
        if pg_url:
            self.schema = f"kb_{uuid.uuid4().hex[:10]}"
            _pg_admin(pg_url, f'CREATE SCHEMA "{self.schema}"')
            url = f"{pg_url}{'&' if '?' in pg_url else '?'}search_path={self.schema}"
        else:
            url = f"sqlite:///{Path(self.tmp.name) / 'crm.db'}"
        self.env = CrmEnv(Path(self.tmp.name), url)
        self.env.write_tenant("acme", plugins=["kanban"])
        self.app = self.env.create_app()
        with db.database.connection_context():
            tenant = self.env.tenant("acme")
            self.tenant_id = tenant.id
            self.user = auth.create_user(tenant, "bench@acme.test", "bench-secret", role="admin", name="Bench Admin")
            self.token = auth.create_token(tenant, "admin", name="bench", user=self.user)[1]
        self.client = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        self.seed()

    def seed(self) -> None:
        """``n`` open deals spread over the open stages, a tenth tagged, each with an owner,
        a company and a contact; bulk inserts (seeding is not what is measured)."""
        import peewee

        from crmcore.api.pipelines import stages_of
        from crmcore.db import tenant_context
        from crmcore.entities.models import Company, Contact, Deal, Tag, Tagging
        from crmcore.entities.service import ensure_default_pipeline

        rng = random.Random(5)
        tenant = self.env.tenant("acme")
        with self.db.database.connection_context(), tenant_context(tenant), self.db.database.atomic():
            pipeline = ensure_default_pipeline(tenant)
            self.pipeline_id = pipeline.id
            self.stages = stages_of([pipeline.id])[pipeline.id]
            companies = [Company.create(name=f"Company {i}").id for i in range(50)]
            contacts = [Contact.create(first_name="Pat", last_name=f"Contact {i}").id for i in range(50)]
            tag = Tag.create(name="hot")
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None).replace(microsecond=0)
            rows = []
            for i in range(self.n):
                stage = self.stages[i % OPEN_STAGES]
                rows.append(
                    {
                        "tenant": self.tenant_id, "title": f"Deal {i}", "value": Decimal(rng.randint(1, 500) * 100), "currency": "EUR",
                        "probability": stage.probability, "pipeline": pipeline.id, "stage": stage.id, "position": float(i // OPEN_STAGES + 1),
                        "stage_entered_at": now - dt.timedelta(days=rng.randint(0, 40)), "owner": self.user.id,
                        "company": rng.choice(companies), "contact": rng.choice(contacts), "created_at": now, "updated_at": now, "custom": "{}",
                    }
                )
            for batch in peewee.chunked(rows, 500):
                Deal.insert_many(batch).execute()
            ids = [i for (i,) in Deal.select(Deal.id).tuples()]
            taggings = [{"tenant": self.tenant_id, "tag": tag.id, "entity": "deal", "entity_id": i} for i in ids[::10]]
            for batch in peewee.chunked(taggings, 500):
                Tagging.insert_many(batch).execute()
            # The card that moves: top of the first column, between the first two of the second.
            self.mover = Deal.select(Deal.id).where(Deal.stage == self.stages[0].id).order_by(Deal.position).first().id
            second = list(Deal.select(Deal.id).where(Deal.stage == self.stages[1].id).order_by(Deal.position).limit(2))
            first = list(Deal.select(Deal.id).where((Deal.stage == self.stages[0].id) & (Deal.id != self.mover)).order_by(Deal.position).limit(1))
            self.targets = [(self.stages[1].id, second[0].id), (self.stages[0].id, first[0].id)]
        if self.pg_url:
            # What autovacuum would have done by now on a live database: statistics, and the
            # visibility map that lets PostgreSQL answer from an index alone.
            conn, _ = self.raw()
            conn.cursor().execute("VACUUM ANALYZE")
            conn.close()

    def close(self) -> None:
        from crmcore.testing import _pg_admin

        self.env.close()
        if self.schema:
            _pg_admin(self.pg_url, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.tmp.cleanup()

    # -- the full stack ------------------------------------------------------------

    def board(self) -> None:
        response = self.client.get(f"/api/v1/pipeline/boards/{self.pipeline_id}?limit={PER_COLUMN}", headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        response.get_data()

    def move(self, i: int) -> None:
        stage_id, after = self.targets[i % 2]
        response = self.client.put(f"/api/v1/pipeline/cards/{self.mover}", json={"stage_id": stage_id, "after_id": after}, headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        response.get_data()

    # -- floors ----------------------------------------------------------------------

    def raw(self) -> Any:
        """A DB-API connection of its own (not peewee's)."""
        if self.pg_url:
            import psycopg2

            conn = psycopg2.connect(self.pg_url, options=f"-c search_path={self.schema}")
            conn.autocommit = True
            return conn, "%s"
        import sqlite3

        conn = sqlite3.connect(self.env.database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn, "?"

    def floor_board(self, conn: Any, p: str) -> None:
        cur = conn.cursor()
        cur.execute(f'SELECT id, name, "order", probability, colour, is_won, is_lost, expected_days FROM crm_stage WHERE tenant_id = {p} AND pipeline_id = {p} ORDER BY "order", id', (self.tenant_id, self.pipeline_id))
        cur.fetchall()
        cur.execute(f"SELECT stage_id, COUNT(id), SUM(value), SUM(value * probability / 100.0) FROM crm_deal WHERE tenant_id = {p} AND pipeline_id = {p} GROUP BY stage_id", (self.tenant_id, self.pipeline_id))
        cur.fetchall()
        # The first page of every column: one ORDER BY ... LIMIT per stage, glued with UNION ALL.
        pages = " UNION ALL ".join(
            f"SELECT id FROM (SELECT id FROM crm_deal WHERE tenant_id = {p} AND pipeline_id = {p} AND stage_id = {p} ORDER BY position, id LIMIT {p}) AS c{i}" for i in range(len(self.stages))
        )
        params: list[Any] = []
        for stage in self.stages:
            params += [self.tenant_id, self.pipeline_id, stage.id, PER_COLUMN + 1]
        cur.execute(
            "SELECT id, title, value, currency, probability, stage_id, position, version, owner_id, company_id, contact_id, stage_entered_at "
            f"FROM crm_deal WHERE id IN ({pages}) ORDER BY stage_id, position, id",
            params,
        )
        ids = [row[0] for row in cur.fetchall()]
        marks = ",".join([p] * len(ids))
        cur.execute(f"SELECT t.entity_id, g.name FROM crm_tagging t JOIN crm_tag g ON g.id = t.tag_id WHERE t.tenant_id = {p} AND t.entity = 'deal' AND t.entity_id IN ({marks})", (self.tenant_id, *ids))
        cur.fetchall()

    def floor_move(self, conn: Any, p: str, i: int) -> None:
        stage_id, _after = self.targets[i % 2]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        cur = conn.cursor()
        cur.execute("BEGIN")
        cur.execute(f"UPDATE crm_deal SET stage_id = {p}, position = position + 0.5, version = version + 1, updated_at = {p}, stage_entered_at = {p} WHERE tenant_id = {p} AND id = {p}", (stage_id, now, now, self.tenant_id, self.mover))
        cur.execute(f"INSERT INTO crm_deal_stage_change (tenant_id, deal_id, from_stage_id, to_stage_id, changed_by_id, changed_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p})", (self.tenant_id, self.mover, stage_id, stage_id, self.user.id, now))
        cur.execute(f"INSERT INTO crm_audit (tenant_id, entity, entity_id, action, actor_user_id, changes, at) VALUES ({p}, 'deal', {p}, 'stage_change', {p}, '{{}}', {p})", (self.tenant_id, self.mover, self.user.id, now))
        cur.execute("COMMIT")


# --------------------------------------------------------------------------- measuring


def count_statements(db: Any, call: Callable[[], None]) -> tuple[int, list[tuple[str, Any]]]:
    database = db.database.obj
    seen: list[tuple[str, Any]] = []
    original = database.execute_sql

    def execute_sql(sql, params=None, *args, **kwargs):
        seen.append((sql, params))
        return original(sql, params, *args, **kwargs)

    database.execute_sql = execute_sql
    try:
        call()
    finally:
        del database.execute_sql
    return len(seen), seen


def replay(conn: Any, statements: list[tuple[str, Any]]) -> None:
    cur = conn.cursor()
    for sql, params in statements:
        cur.execute(sql, params or ())
        if cur.description is not None:
            cur.fetchall()


def timed(calls: dict[str, Callable[[int], None]], requests: int, batch: int = 10) -> dict[str, list[float]]:
    """Alternating batches of each call; milliseconds per call."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for name, call in calls.items():  # warm up
        for i in range(3):
            call(i)
    done = 0
    while done < requests:
        for name, call in calls.items():
            for i in range(batch):
                start = time.perf_counter()
                call(done + i)
                out[name].append((time.perf_counter() - start) * 1000)
        done += batch
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(n: int, pg_url: str | None, requests: int) -> list[dict[str, Any]]:
    backend = "postgres" if pg_url else "sqlite"
    print(f"[{backend} n={n}] seeding ...", flush=True)
    inst = Instance(n, pg_url)
    rows: list[dict[str, Any]] = []
    try:
        conn, p = inst.raw()
        board_queries, statements = count_statements(inst.db, inst.board)
        move_queries, _ = count_statements(inst.db, lambda: inst.move(0))
        inst.move(1)  # back where it started
        same_sql = [(s, a) for s, a in statements if not s.strip().upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]
        print(f"[{backend} n={n}] timing ...", flush=True)
        board_times = timed(
            {"full": lambda i: inst.board(), "floor: hand-written": lambda i: inst.floor_board(conn, p), "floor: same SQL": lambda i: replay(conn, same_sql)},
            requests,
        )
        move_times = timed({"full": inst.move, "floor: hand-written": lambda i: inst.floor_move(conn, p, i)}, requests)
        conn.close()
        for scenario, times, queries in (("board open", board_times, {"full": board_queries, "floor: hand-written": 4, "floor: same SQL": len(same_sql)}), ("move", move_times, {"full": move_queries, "floor: hand-written": 5})):
            for stack, values in times.items():
                rows.append(
                    {"backend": backend, "deals": n, "scenario": scenario, "stack": stack, "queries": queries[stack], "p50_ms": round(statistics.median(values), 2), "p99_ms": round(pct(values, 0.99), 2), "requests": len(values)}
                )
                print(f"  {scenario:10} {stack:20} queries={queries[stack]:3} p50={rows[-1]['p50_ms']:8.2f} ms p99={rows[-1]['p99_ms']:8.2f} ms", flush=True)
    finally:
        inst.close()
    return rows


def report(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    # A run on one backend keeps the other backend's rows of the previous report.
    previous = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else []
    ran = {r["backend"] for r in rows}
    rows = [r for r in previous if r["backend"] not in ran] + rows
    lines = [
        "# Kanban benchmark: board open and card move",
        "",
        (
            f"`bench/bench_kanban.py --sizes {' '.join(map(str, args.sizes))}{' --postgres ...' if args.postgres else ''} --requests {args.requests}` (latest run), "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, {platform.machine()}, 2 cores shared with other work."
        ),
        "",
        (
            "Server time per request (the WSGI call for the full stack; the raw cursor calls for the floors), "
            "milliseconds; queries = SQL statements per request. The board answers 6 columns with their totals and "
            f"the first {PER_COLUMN} cards of each; the deals are all open, spread over the 4 open stages."
        ),
        "",
        "| backend | open deals | scenario | stack | queries | p50 ms | p99 ms | full / floor (p50) |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        full = next(r for r in rows if r["backend"] == row["backend"] and r["deals"] == row["deals"] and r["scenario"] == row["scenario"] and r["stack"] == "full")
        ratio = "" if row["stack"] == "full" else f"{full['p50_ms'] / row['p50_ms']:.1f}×" if row["p50_ms"] else ""
        lines.append(f"| {row['backend']} | {row['deals']:,} | {row['scenario']} | {row['stack']} | {row['queries']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {ratio} |")
    old = path.read_text() if path.exists() else ""
    marker = "<!-- analysis: kept when the report is regenerated -->"
    analysis = old[old.index(marker):] if marker in old else marker + "\n\n## Reading\n\n(to be written)\n"
    path.write_text("\n".join(lines) + "\n\n" + analysis)
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10000])
    parser.add_argument("--postgres", default=None, help="also run on PostgreSQL at this URL (a schema is created and dropped)")
    parser.add_argument("--postgres-only", action="store_true", help="skip SQLite (the report keeps its SQLite rows)")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per stack and scenario")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for url in ([] if args.postgres_only else [None]) + ([args.postgres] if args.postgres else []):
        for n in args.sizes:
            rows += run(n, url, args.requests)
    if args.report:
        report(rows, args.report, args)


if __name__ == "__main__":
    main()
