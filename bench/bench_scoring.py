#!/usr/bin/env python
"""Scoring benchmark: rescoring every lead of a tenant through the scoring plugin, side by
side with a floor that does the same arithmetic in one SQL statement.

Data (built once per backend and size, cached like bench/datagen.py's): tenant ``acme``
with ``size`` leads (statuses, values, last contacts, BANT fields as datagen spreads
them), a deal for 30% of them (random stage probability and value) and 0-4 activities
(calls, e-mails in and out, chats over the last 60 days) for 60%, made through the real
migrations with the scoring plugin on.

Scenarios, each in alternating rounds (full, floor, full, floor ...):

* ``first score``: no stored scores; every lead gets a new row (full stack: plus a
  history row and a ``lead_score_changed`` signal per lead, as in production).
* ``rescore, unchanged``: scores are stored and nothing changed (the nightly job's usual
  case): the full stack compares and rewrites nothing but ``computed_at``.
* ``rescore, weight changed``: a different engagement weight each round, so the score of
  every lead with engagement points (about a third) changes and its row is rewritten
  (plus history and signals).

The full stack is ``engine.rescore(tenant)``: for a tenant without a trained model (as
here) the facts and every factor's points in one SQL statement (plugins/scoring/bulk.py),
compact factors, history rows and an upsert of the rows that differ. The floor is one ``INSERT ... SELECT
... ON CONFLICT DO UPDATE`` computing the same score and grade (base, value and contact
bonuses, company size, BANT, engagement with caps, recency decay) into a bare table, with
no explanations, history or signals. Scores of both are compared lead by lead. (The
generated leads have no contacts, so the job-title seniority rule, a regular expression
in the full stack, gives 0 in both.)

    .venv/bin/python bench/bench_scoring.py --sizes 1000                 # smoke
    .venv/bin/python bench/bench_scoring.py --sizes 100000 --report bench/results/scoring.md --json bench/results/scoring.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import gc
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

DEFAULT_CACHE = Path(os.environ.get("CRM_BENCH_CACHE", Path.home() / ".cache" / "crm-bench"))
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/crm_bench"
DATA_VERSION = 1


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- data


def write_config(config_dir: Path, database_url: str) -> None:
    (config_dir / "tenants").mkdir(parents=True, exist_ok=True)
    (config_dir / "crm.toml").write_text(tomli_w.dumps({"database_url": database_url, "redis_url": "", "secret_key": "bench-scoring", "instance_dir": str(config_dir / "instance")}))
    (config_dir / "tenants" / "acme.toml").write_text(tomli_w.dumps({"name": "Acme Ltd", "hostnames": ["acme.test"], "plugins": ["scoring"]}))


def make_app(config_dir: Path) -> Any:
    from crmcore.app import create_app
    from crmcore.migrations import migrate

    app = create_app(config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})
    with app.app_context():
        migrate(app.extensions["crm"].host, report=lambda m: None)
    return app


def close_app(app: Any) -> None:
    from crmcore import db

    app.extensions["crm"].shutdown()
    if db.database.obj is not None:
        if hasattr(db.database.obj, "close_all"):
            db.database.obj.close_all()
        elif not db.database.is_closed():
            db.database.close()


def build(size: int, now: dt.datetime) -> dict[str, int]:
    """Fill the current tenant with leads, deals and activities (bulk inserts)."""
    from datagen import STATUSES, _weighted

    from crmcore import db
    from crmcore.entities import service
    from crmcore.entities.models import Activity, Deal, Lead, Stage

    rng = random.Random(20261201)
    tenant = db.current_tenant()
    statuses = _weighted(rng, STATUSES)
    pipeline = service.ensure_default_pipeline(tenant)
    stages = list(Stage.select().where(Stage.pipeline == pipeline.id))
    counts = {"leads": 0, "deals": 0, "activities": 0}
    chunk = 500
    with db.atomic():
        rows = []
        for i in range(size):
            bant = rng.random() < 0.25
            rows.append({
                "tenant": tenant.id, "name": f"Lead {i}", "status": statuses[rng.randrange(100)],
                "estimated_value": decimal.Decimal(rng.randrange(5000, 9000000)) / 100 if rng.random() < 0.6 else None,
                "last_contact_at": now - dt.timedelta(seconds=rng.randrange(0, 40 * 86400)) if rng.random() < 0.5 else None,
                "budget": "10-50k" if bant else None, "need": "A pipeline view" if bant else None,
                "authority": "decision maker" if bant and rng.random() < 0.5 else None,
                "created_at": now - dt.timedelta(days=rng.randrange(0, 900)), "updated_at": now,
            })
            if len(rows) == chunk:
                Lead.insert_many(rows).execute()
                counts["leads"] += len(rows)
                rows = []
        if rows:
            Lead.insert_many(rows).execute()
            counts["leads"] += len(rows)
        ids = [i for (i,) in Lead.select(Lead.id).tuples()]
        deals, acts = [], []
        for lid in ids:
            if rng.random() < 0.3:
                stage = stages[rng.randrange(len(stages))]
                deals.append({"tenant": tenant.id, "title": f"Deal {lid}", "value": decimal.Decimal(rng.randrange(100000, 12000000)) / 100, "probability": stage.probability, "pipeline": pipeline.id, "stage": stage.id, "lead": lid})
            if rng.random() < 0.6:
                for _ in range(rng.randint(0, 4)):
                    kind = ("call", "email", "email", "chat", "meeting")[rng.randrange(5)]
                    acts.append({"tenant": tenant.id, "lead": lid, "kind": kind, "direction": ("in", "out")[rng.randrange(2)], "subject": "x", "occurred_at": now - dt.timedelta(seconds=rng.randrange(0, 60 * 86400))})
        for start in range(0, len(deals), chunk):
            Deal.insert_many(deals[start : start + chunk]).execute()
        for start in range(0, len(acts), chunk):
            Activity.insert_many(acts[start : start + chunk]).execute()
        counts["deals"], counts["activities"] = len(deals), len(acts)
    return counts


def prepare(backend: str, size: int, args: argparse.Namespace, now: dt.datetime) -> tuple[Any, dict[str, int], float | None]:
    """The app on the cached data for (backend, size), built now if missing."""
    from crmcore import db

    if backend == "sqlite":
        path = args.cache_dir / f"scoring-sqlite-{size}" / "crm.db"
        url = f"sqlite:///{path}"
    else:
        from datagen import _pg_connect, ensure_pg_database

        ensure_pg_database(args.pg_url)
        schema = f"bench_scoring_{size}"
        conn = _pg_connect(args.pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.close()
        url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}search_path={schema}"
    config_dir = Path(tempfile.mkdtemp(prefix=f"bench-scoring-{backend}-"))
    write_config(config_dir, url)
    meta_key = json.dumps({"version": DATA_VERSION, "size": size})
    app = make_app(config_dir)
    built = None
    with app.app_context(), db.connection():
        db.database.execute_sql("CREATE TABLE IF NOT EXISTS bench_scoring_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        row = db.database.execute_sql("SELECT v FROM bench_scoring_meta WHERE k = 'ready'").fetchone()
        tenant = app.extensions["crm"].tenant("acme")
        if args.rebuild or row is None or json.loads(row[0]).get("key") != meta_key:
            log(f"  building {size:,} leads with deals and activities ...")
            started = time.perf_counter()
            with db.tenant_context(tenant):
                from crm_plugins.scoring.models import LeadScore, ScoreHistory
                from crmcore.entities.models import Activity, Deal, Lead

                for model in (ScoreHistory, LeadScore, Activity, Deal, Lead):
                    model.delete().execute()
                counts = build(size, now)
            built = time.perf_counter() - started
            db.database.execute_sql("DELETE FROM bench_scoring_meta")
            db.database.execute_sql("INSERT INTO bench_scoring_meta (k, v) VALUES ('ready', %s)" % ("?" if backend == "sqlite" else "%s"), (json.dumps({"key": meta_key, "counts": counts}),))
            if backend == "postgres":
                db.database.execute_sql("ANALYZE")
        else:
            counts = json.loads(row[0])["counts"]
    return app, counts, built


# --------------------------------------------------------------------------- the floor


def floor_sql(backend: str) -> str:
    """The whole default rule set as one statement (the defaults of ScoringSettings)."""
    least, greatest = ("MIN", "MAX") if backend == "sqlite" else ("LEAST", "GREATEST")
    days = "CAST(julianday(:now) - julianday(a.last) AS INTEGER)" if backend == "sqlite" else "CAST(FLOOR(EXTRACT(EPOCH FROM (CAST(:now AS timestamp) - a.last)) / 86400) AS INTEGER)"
    filled = lambda col: f"(CASE WHEN TRIM(COALESCE(l.{col}, '')) <> '' THEN 1 ELSE 0 END)"
    sql = f"""
WITH d AS (
  SELECT lead_id, MAX(probability) AS prob, MAX(value) AS value FROM crm_deal
  WHERE tenant_id = :tenant AND lead_id IS NOT NULL GROUP BY lead_id),
a AS (
  SELECT lead_id,
    SUM(CASE WHEN occurred_at >= :since THEN 1 ELSE 0 END) AS n,
    SUM(CASE WHEN occurred_at >= :since AND direction = 'in' THEN 1 ELSE 0 END) AS n_in,
    SUM(CASE WHEN occurred_at >= :since AND (kind = 'chat' OR channel = 'chat') THEN 1 ELSE 0 END) AS n_chat,
    MAX(occurred_at) AS last
  FROM crm_activity WHERE tenant_id = :tenant AND lead_id IS NOT NULL GROUP BY lead_id),
f AS (
  SELECT l.id,
    COALESCE(d.prob, CASE l.status WHEN 'new' THEN 10 WHEN 'contacted' THEN 20 WHEN 'qualified' THEN 40 WHEN 'converted' THEN 60 ELSE 0 END) AS prob,
    {greatest}(COALESCE(d.value, 0), COALESCE(l.estimated_value, 0)) AS value,
    l.last_contact_at,
    {filled('budget')} + {filled('authority')} + {filled('need')} + {filled('timeline')} AS bant,
    COALESCE(a.n, 0) AS n, COALESCE(a.n_in, 0) AS n_in, COALESCE(a.n_chat, 0) AS n_chat,
    CASE WHEN a.last IS NULL THEN NULL ELSE {days} END AS days,
    c.size
  FROM crm_lead l
  LEFT JOIN d ON d.lead_id = l.id LEFT JOIN a ON a.lead_id = l.id LEFT JOIN crm_company c ON c.id = l.company_id
  WHERE l.tenant_id = :tenant),
s AS (
  SELECT id, ROUND({least}(100, {greatest}(0,
      prob
    + CASE WHEN value > 50000 THEN 10 WHEN value > 25000 THEN 5 ELSE 0 END
    + CASE WHEN last_contact_at >= :contact_since THEN 5 ELSE 0 END
    + CASE size WHEN '11-50' THEN 2 WHEN '51-200' THEN 4 WHEN '201-500' THEN 6 WHEN '501-1000' THEN 7 WHEN '1000+' THEN 8 WHEN '1001-5000' THEN 8 WHEN '5001-10000' THEN 8 WHEN '10001+' THEN 8 ELSE 0 END
    + bant * 2.5
    + {least}(10, n * 1.0) + {least}(10, n_in * 2.0) + {least}(5, n_chat * 1.0)
    + CASE WHEN days IS NULL THEN 0 WHEN days <= 3 THEN 10 WHEN days >= 30 THEN 0 ELSE ROUND(CAST(10.0 * (30 - days) / 27 AS NUMERIC), 2) END
  )), 1) AS score FROM f)
INSERT INTO bench_floor_score (lead_id, score, grade)
SELECT id, score, CASE WHEN score >= 80 THEN 'A' WHEN score >= 60 THEN 'B' WHEN score >= 40 THEN 'C' ELSE 'D' END FROM s WHERE true
ON CONFLICT (lead_id) DO UPDATE SET score = excluded.score, grade = excluded.grade
"""
    if backend == "sqlite":
        # SQLite accepts a WITH before INSERT only as part of the INSERT's SELECT.
        head, _, tail = sql.partition("INSERT INTO bench_floor_score (lead_id, score, grade)\n")
        sql = "INSERT INTO bench_floor_score (lead_id, score, grade)\n" + head.strip() + "\n" + tail
    return sql


def bind(sql: str, params: dict[str, Any], backend: str) -> tuple[str, list[Any]]:
    import re

    values: list[Any] = []

    def repl(m: Any) -> str:
        values.append(params[m.group(1)])
        return "?" if backend == "sqlite" else "%s"

    return re.sub(r"(?<!:):(\w+)", repl, sql), values


# --------------------------------------------------------------------------- the run


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __enter__(self) -> Counter:
        from crmcore import db

        self.database = db.database.obj
        original = self.database.execute_sql

        def execute_sql(sql: str, params: Any = None, *a: Any, **kw: Any) -> Any:
            self.n += 1
            return original(sql, params, *a, **kw)

        self.database.execute_sql = execute_sql
        return self

    def __exit__(self, *exc: object) -> None:
        del self.database.execute_sql


def run_one(backend: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    from crm_plugins.scoring import engine
    from crm_plugins.scoring.models import LeadScore, ScoreHistory, ScoringOverride
    from crmcore import db
    from crmcore.db import utcnow

    now = utcnow()
    log(f"[{backend} {size:,}] preparing")
    app, counts, built = prepare(backend, size, args, now)
    out: dict[str, Any] = {"backend": backend, "size": size, "counts": counts, "built_seconds": built, "scenarios": {}}
    try:
        with app.app_context(), db.connection():
            tenant = app.extensions["crm"].tenant("acme")
            db.database.execute_sql("DROP TABLE IF EXISTS bench_floor_score")
            db.database.execute_sql("CREATE TABLE bench_floor_score (lead_id INTEGER PRIMARY KEY, score REAL NOT NULL, grade CHAR(1) NOT NULL)")
            sql, values = bind(floor_sql(backend), {"tenant": tenant.id, "now": now, "since": now - dt.timedelta(days=30), "contact_since": now - dt.timedelta(days=7)}, backend)

            def floor() -> int:
                with db.database.atomic():
                    db.database.execute_sql(sql, values)
                return 1

            def clear_full() -> None:
                with db.tenant_context(tenant), db.database.atomic():
                    ScoreHistory.delete().execute()
                    LeadScore.delete().execute()

            def clear_floor() -> None:
                db.database.execute_sql("DELETE FROM bench_floor_score")

            def set_weight(w: float) -> None:
                with db.tenant_context(tenant), db.database.atomic():
                    ScoringOverride.delete().execute()
                    if w != 1.0:
                        ScoringOverride.create(values={"weights": {"engagement": w}})

            def full() -> int:
                with db.tenant_context(tenant), Counter() as c:
                    engine.rescore(tenant, now=now)
                return c.n

            scenarios = {
                "first score": (lambda i: (set_weight(1.0), clear_full()), lambda i: clear_floor()),
                "rescore, unchanged": (lambda i: None, lambda i: None),
                "rescore, weight changed": (lambda i: set_weight(1.0 + 0.25 * ((i % 2) + 1)), lambda i: clear_floor()),
            }
            # Warm up both (and leave stored scores for "unchanged").
            set_weight(1.0)
            full()
            floor()
            for name, (prep_full, prep_floor) in scenarios.items():
                times = {"full": [], "floor": []}
                statements = {"full": 0, "floor": 1}
                for i in range(args.rounds):
                    prep_full(i)
                    gc.collect()
                    t = time.perf_counter()
                    statements["full"] = full()
                    times["full"].append(time.perf_counter() - t)
                    prep_floor(i)
                    gc.collect()
                    t = time.perf_counter()
                    floor()
                    times["floor"].append(time.perf_counter() - t)
                med = {k: statistics.median(v) for k, v in times.items()}
                out["scenarios"][name] = {"full_s": med["full"], "floor_s": med["floor"], "ratio": med["full"] / med["floor"], "statements_full": statements["full"], "rounds": times}
                log(f"  {name:<22} full {med['full']:.3f}s  floor {med['floor']:.3f}s  ratio {med['full'] / med['floor']:.2f}  statements {statements['full']}")
            # Same scores? (defaults on both sides)
            set_weight(1.0)
            full()
            floor()
            with db.tenant_context(tenant):
                ours = dict(LeadScore.select(LeadScore.lead, LeadScore.score).tuples())
            theirs = dict(db.database.execute_sql("SELECT lead_id, score FROM bench_floor_score").fetchall())
            differ = [lid for lid, s in ours.items() if abs(float(theirs.get(lid, -1)) - s) > 0.051]
            out["agreement"] = {"leads": len(ours), "differ": len(differ), "examples": differ[:5]}
            log(f"  scores agree for {len(ours) - len(differ):,} of {len(ours):,} leads")
            db.database.execute_sql("DROP TABLE bench_floor_score")
    finally:
        close_app(app)
    return out


def render(results: list[dict[str, Any]], command: str, started: dt.datetime) -> str:
    lines = [
        "# Scoring benchmark: rescoring every lead, full stack against a one-statement floor",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, shared with other jobs), with `{command}`.",
        "",
        "Full stack: `engine.rescore(tenant)` (the plugin's settings and overrides, seniority and other plugins' factors, the facts and every factor's points in one SQL statement into a temporary table, compact factors per lead, the changed leads, their history rows, an upsert of the rows that differ, `computed_at` of the others, `lead_score_changed` signals after commit). Floor: one `INSERT ... SELECT ... ON CONFLICT DO UPDATE` with the same arithmetic, into a bare table, no explanations, history or signals. Medians of alternating rounds; the target is a ratio of at most 3.",
        "",
        "| backend | leads | deals | activities | scenario | full (s) | floor (s) | full / floor | statements (full) | leads/s (full) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r["counts"]
        for name, s in r["scenarios"].items():
            lines.append(f"| {r['backend']} | {c['leads']:,} | {c['deals']:,} | {c['activities']:,} | {name} | {s['full_s']:.3f} | {s['floor_s']:.3f} | {s['ratio']:.2f} | {s['statements_full']} | {c['leads'] / s['full_s']:,.0f} |")
    lines += ["", "Agreement (both with the default settings):", ""]
    for r in results:
        a = r["agreement"]
        lines.append(f"- {r['backend']} {r['size']:,}: {a['leads'] - a['differ']:,} of {a['leads']:,} leads have the same score in both" + (f" (differing: {a['examples']})" if a["differ"] else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgres"), default=["sqlite"])
    parser.add_argument("--pg-url", default=os.environ.get("CRM_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    results = [run_one(b, s, args) for b in args.backends for s in args.sizes]
    command = "bench/bench_scoring.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render(results, command, started)
    print(report)
    if args.report:
        args.report.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    shutil  # noqa: B018 - kept for cache clean-up helpers
    raise SystemExit(main())
