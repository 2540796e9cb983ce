#!/usr/bin/env python
"""Analytics benchmark: every metric of the analytics plugin on a generated tenant with N
deals and their stage history, side by side with a hand-written SQL query computing the
same figure, in one run, on SQLite and/or PostgreSQL.

Data (tenant ``acme``, the default 6-stage pipeline, 20 users): N deals created over two
years, each walking the stages forward from Lead with random skips, a reopened (gone back)
stage for about one deal in twelve, ending open (40%), won (25%) or lost (35%); a stage
change every 1-20 days (about 2.6 changes per deal); 5% in USD. N/4 leads over the same
two years, and N/4 activities on random leads 0-72 h after the lead's creation. Loaded in
bulk through raw DB-API cursors (generation is not what is measured), then ANALYZE.

Each metric is measured through the full stack (``GET /api/v1/analytics/<metric>`` with a
bearer token: routing, auth, the plugin's peewee queries, marshmallow, JSON) for the last
365 days in the tenant's time zone, currency EUR, the default pipeline; the floor is a
hand-written SQL statement for the same figures on a raw cursor, rows fetched. Batches
alternate between the two so machine noise hits both alike; the median of the runs is
reported. The dashboard (``GET /app/analytics/``, all nine metrics, summary and charts)
is measured next to the sum of the floors' medians.

    .venv/bin/python bench/bench_analytics.py --sizes 100000
    .venv/bin/python bench/bench_analytics.py --sizes 1000000 --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --report bench/results/analytics.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = dt.datetime(2026, 12, 1)
SPAN_DAYS = 730
USERS = 20
SOURCES = ("form", "email", "referral", "manual", "import", "api", "sms")
KINDS = ("call", "email", "meeting", "note")


class Instance:
    """A CRM with tenant acme (analytics on) and ``n`` deals with their stage history."""

    def __init__(self, n: int, pg_url: str | None, log: Callable[[str], None]):
        from crmcore import auth, db
        from crmcore.testing import CrmEnv, _pg_admin

        self.db, self.n, self.schema, self.pg_url, self.log = db, n, None, pg_url, log
        self.tmp = tempfile.TemporaryDirectory(prefix="analytics-bench-")
        if pg_url:
            self.schema = f"an_{uuid.uuid4().hex[:10]}"
            _pg_admin(pg_url, f'CREATE SCHEMA "{self.schema}"')
            url = f"{pg_url}{'&' if '?' in pg_url else '?'}search_path={self.schema}"
        else:
            url = f"sqlite:///{Path(self.tmp.name) / 'crm.db'}"
        self.env = CrmEnv(Path(self.tmp.name), url)
        self.env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "Europe/Berlin"}})
        self.app = self.env.create_app()
        with db.database.connection_context():
            tenant = self.env.tenant("acme")
            self.tenant_id = tenant.id
            self.users = [auth.create_user(tenant, f"rep{i}@acme.test", "bench-secret", role="admin", name=f"Rep {i:02d}").id for i in range(USERS)]
            from crmcore.entities.models import User

            with db.tenant_context(tenant):
                self.token = auth.create_token(tenant, "admin", name="bench", user=User.get_by_id(self.users[0]))[1]
        self.client = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        started = time.perf_counter()
        self.seed()
        log(f"  seeded {n:,} deals in {time.perf_counter() - started:.0f} s")

    def raw(self) -> tuple[Any, str]:
        if self.pg_url:
            import psycopg2

            conn = psycopg2.connect(self.pg_url, options=f"-c search_path={self.schema}")
            conn.autocommit = True
            return conn, "%s"
        import sqlite3

        conn = sqlite3.connect(self.env.database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn, "?"

    def seed(self) -> None:
        from crmcore.db import tenant_context
        from crmcore.entities.models import Stage
        from crmcore.entities.service import ensure_default_pipeline

        tenant = self.env.tenant("acme")
        with self.db.database.connection_context(), tenant_context(tenant):
            pipeline = ensure_default_pipeline(tenant)
            self.pipeline_id = pipeline.id
            self.stages = list(Stage.select().where(Stage.pipeline == pipeline.id).order_by(Stage.order, Stage.id))
        open_stages = [s for s in self.stages if not (s.is_won or s.is_lost)]
        won = next(s for s in self.stages if s.is_won)
        lost = next(s for s in self.stages if s.is_lost)
        rng = random.Random(20261203)
        deals, changes = [], []
        t, n = self.tenant_id, self.n
        for deal_id in range(1, n + 1):
            created = NOW - dt.timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
            path = [open_stages[0]]
            position = 0
            while True:
                position += rng.choice((1, 1, 1, 2))  # a skip now and then
                if rng.random() < 0.08 and position >= 2:
                    path.append(open_stages[position - 2])  # back a stage: reopened later
                    position -= 1
                if position >= len(open_stages) or rng.random() < 0.35:
                    break
                path.append(open_stages[position])
            end = rng.random()
            if end < 0.25:
                path.append(won)
            elif end < 0.60:
                path.append(lost)
            at = created
            for previous, stage in zip(path, path[1:]):
                step = dt.timedelta(seconds=rng.randrange(86400, 20 * 86400))
                at = at + step
                changes.append((t, deal_id, previous.id, stage.id, at, int(step.total_seconds())))
            final = path[-1]
            closed = at if (final.is_won or final.is_lost) else None
            deals.append((
                deal_id, t, created, created, 1, "{}", f"Deal {deal_id}", rng.randrange(1, 500) * 100, "USD" if rng.random() < 0.05 else "EUR",
                final.probability, self.pipeline_id, final.id, float(deal_id), at, rng.choice(self.users + [None]), "medium",
                rng.choice(SOURCES), "Price" if final.is_lost else None, closed, (created + dt.timedelta(days=rng.randrange(30, 150))).date(),
            ))
        leads, activities = [], []
        for lead_id in range(1, n // 4 + 1):
            created = NOW - dt.timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
            leads.append((lead_id, t, created, created, 1, "{}", f"Lead {lead_id}", rng.choice(SOURCES), rng.choice(("new", "contacted", "qualified", "unqualified", "converted")), "medium", rng.choice(self.users + [None])))
            if rng.random() < 0.7:
                activities.append((t, lead_id, created + dt.timedelta(seconds=rng.randrange(72 * 3600)), rng.choice(KINDS), rng.choice(self.users), "", "", created, created, 1))
        self.log(f"  generated {len(deals):,} deals, {len(changes):,} stage changes, {len(leads):,} leads, {len(activities):,} activities")
        deal_cols = "id, tenant_id, created_at, updated_at, version, custom, title, value, currency, probability, pipeline_id, stage_id, position, stage_entered_at, owner_id, priority, source, lost_reason, closed_at, expected_close_date"
        tables = [
            ("crm_deal", deal_cols, deals),
            ("crm_deal_stage_change", "tenant_id, deal_id, from_stage_id, to_stage_id, changed_at, seconds_in_previous", changes),
            ("crm_lead", "id, tenant_id, created_at, updated_at, version, custom, name, source, status, priority, owner_id", leads),
            ("crm_activity", "tenant_id, lead_id, occurred_at, kind, user_id, subject, content, created_at, updated_at, version", activities),
        ]
        conn, p = self.raw()
        for table, cols, rows in tables:
            if self.pg_url:
                buf = io.StringIO()
                for row in rows:
                    buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
                buf.seek(0)
                conn.cursor().copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)
            else:
                marks = ", ".join([p] * len(cols.split(",")))
                conn.execute("BEGIN")
                conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", [tuple(v.isoformat(" ") if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) else v for v in row) for row in rows])
                conn.execute("COMMIT")
        if self.pg_url:
            for table in ("crm_deal", "crm_lead"):
                conn.cursor().execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            conn.cursor().execute("VACUUM ANALYZE")
        else:
            conn.execute("ANALYZE")
        conn.close()

    def close(self) -> None:
        from crmcore.testing import _pg_admin

        self.env.close()
        if self.schema:
            _pg_admin(self.pg_url, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.tmp.cleanup()


def main() -> None:
    from bench.analytics_floors import floors, run_instance, write_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100000])
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: run there too")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs per metric and stack")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    results = []
    backends = ([] if args.no_sqlite else [None]) + ([args.postgres] if args.postgres else [])
    for n in args.sizes:
        for pg in backends:
            name = "postgresql" if pg else "sqlite"
            print(f"{name}, {n:,} deals", flush=True)
            instance = Instance(n, pg, lambda line: print(line, flush=True))
            try:
                results.append({"backend": name, "n": n, "rows": run_instance(instance, floors(instance), args.runs)})
            finally:
                instance.close()
    if args.report:
        write_report(results, args.report, f"{platform.python_version()}, {platform.machine()}, runs={args.runs}")


if __name__ == "__main__":
    main()
