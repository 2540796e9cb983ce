#!/usr/bin/env python
"""Insights benchmark, run by hand: each scenario side by side with its floor, in
alternating rounds (full, floor, full, floor ...), best and median reported.

Data (built in a fresh temporary database each run): tenant ``acme`` with the insights
plugin on, ``size`` open deals across the default pipeline's open stages (entered 0-60
days ago, close dates +-30 days, a contact for half), 2 activities per deal on average
with texts drawn from a mix of English business sentences (positive, negative, polite,
"no problems" negations) and some German and French ones, and an open task for 40%, value lowered on 10% and the close date pushed back twice on 5% (audit log entries).

Scenarios:

* ``sentiment backfill``: ``interactions.backfill(tenant, inline=True)`` over every
  activity (read the texts in batches, score each with the weak-spot handling and the
  language check, insert the rows) against the floor: ``vaderSentiment``'s
  ``polarity_scores`` alone over the same texts, already in memory. Target: at least 0.7x.
* ``risk, first`` / ``risk, unchanged``: ``risk.recompute(tenant)`` with no stored risk
  (every row written) and again with nothing changed, against the floor: one hand-written
  ``INSERT ... SELECT`` computing the same eight factors' points per open deal into a bare
  table (no reasons, no remedies, no signals). Target: within 3x.

    .venv/bin/python bench/bench_insights.py --size 2000                  # smoke
    .venv/bin/python bench/bench_insights.py --size 100000 --rounds 3 --report bench/results/insights.md
    .venv/bin/python bench/bench_insights.py --size 20000 --pg-url postgresql://postgres@127.0.0.1:5432/crm_bench

On PostgreSQL the data goes in a schema of its own (``bench_insights_<pid>``), dropped at
the end. The CPU column is this process's time: on SQLite it includes the database's
work, on PostgreSQL not (the server's is not counted).
"""

from __future__ import annotations

import argparse
import datetime as dt
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

SENTENCES = [
    "Great call, they loved the demo and want a proposal by Friday.",
    "Customer is angry about the billing error and threatens to cancel.",
    "No problems with the rollout so far, the team is happy.",
    "We have no complaints about the service.",
    "Kindly send the signed contract and the updated quote.",
    "Please find attached the invoice. Kind regards",
    "Follow-up on pricing, they need approval from finance first.",
    "Very disappointed with the slow delivery, this is unacceptable.",
    "Meeting moved to next week, no issues.",
    "They are considering a competitor because our price is too high.",
    "Excellent feedback on the pilot, expansion likely next quarter.",
    "Left a voicemail, no answer yet.",
    "Wir sind mit dem Angebot leider nicht zufrieden und warten auf Antwort.",
    "Nous sommes très contents du service et de la réactivité de l'équipe.",
]


def log(msg: str) -> None:
    print(msg, flush=True)


def make_app(config_dir: Path, url: str) -> Any:
    from crmcore.app import create_app
    from crmcore.migrations import migrate

    (config_dir / "tenants").mkdir(parents=True, exist_ok=True)
    (config_dir / "crm.toml").write_text(tomli_w.dumps({"database_url": url, "redis_url": "", "secret_key": "bench-insights", "instance_dir": str(config_dir / "instance")}))
    (config_dir / "tenants" / "acme.toml").write_text(tomli_w.dumps({"name": "Acme Ltd", "hostnames": ["acme.test"], "plugins": ["insights"]}))
    app = create_app(config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})
    with app.app_context():
        migrate(app.extensions["crm"].host, report=lambda m: None)
    return app


def build(size: int, now: dt.datetime) -> dict[str, int]:
    from crmcore import sdk
    from crmcore.sdk import Activity, AuditEntry, Contact, Deal, Stage, Task

    rng = random.Random(20261203)
    tenant = sdk.current_tenant()
    from crmcore.entities import service

    pipeline = service.ensure_default_pipeline(tenant)
    stages = [s for s in Stage.select().where(Stage.pipeline == pipeline.id) if not (s.is_won or s.is_lost)]
    with sdk.atomic():
        Contact.insert_many([{"tenant": tenant.id, "first_name": "C", "last_name": str(i)} for i in range(500)]).execute()
        contacts = [i for (i,) in Contact.select(Contact.id).tuples()]
        rows = []
        for i in range(size):
            stage = stages[rng.randrange(len(stages))]
            rows.append({
                "tenant": tenant.id, "title": f"Deal {i}", "value": 1000, "pipeline": pipeline.id, "stage": stage.id,
                "stage_entered_at": now - dt.timedelta(days=rng.uniform(0, 60)), "created_at": now - dt.timedelta(days=rng.uniform(60, 90)),
                "expected_close_date": (now + dt.timedelta(days=rng.randint(-30, 30))).date(), "contact": contacts[rng.randrange(500)] if rng.random() < 0.5 else None,
            })
            if len(rows) == 1000:
                Deal.insert_many(rows).execute()
                rows = []
        if rows:
            Deal.insert_many(rows).execute()
        deals = [i for (i,) in Deal.select(Deal.id).tuples()]
        acts, tasks = [], []
        for deal in deals:
            for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
                acts.append({"tenant": tenant.id, "kind": "call", "subject": "", "content": SENTENCES[rng.randrange(len(SENTENCES))], "deal": deal, "contact": contacts[rng.randrange(500)], "occurred_at": now - dt.timedelta(days=rng.uniform(0, 60))})
            if rng.random() < 0.4:
                tasks.append({"tenant": tenant.id, "title": "Next step", "deal": deal, "status": "open"})
        for start in range(0, len(acts), 1000):
            Activity.insert_many(acts[start:start + 1000]).execute()
        for start in range(0, len(tasks), 1000):
            Task.insert_many(tasks[start:start + 1000]).execute()
        # change history (the audit log): a value lowered on 10% of deals, the close date
        # pushed back twice on 5%
        audit = []
        for deal in deals:
            if rng.random() < 0.1:
                audit.append({"tenant": tenant.id, "entity": "deal", "entity_id": deal, "action": "update", "changes": {"value": ["1500.00", "1000.00"]}, "at": now - dt.timedelta(days=rng.uniform(0, 60))})
            if rng.random() < 0.05:
                for n in (1, 2):
                    close = [(now + dt.timedelta(days=k)).date().isoformat() for k in (n * 10 - 10, n * 10)]
                    audit.append({"tenant": tenant.id, "entity": "deal", "entity_id": deal, "action": "update", "changes": {"expected_close_date": close}, "at": now - dt.timedelta(days=rng.uniform(0, 60))})
        for start in range(0, len(audit), 1000):
            AuditEntry.insert_many(audit[start:start + 1000]).execute()
    return {"deals": len(deals), "activities": len(acts), "tasks": len(tasks), "audit entries": len(audit)}


def floor_risk_sql(postgres: bool) -> str:
    """The eight factors' default points in one INSERT ... SELECT (no reasons)."""
    p = "%s" if postgres else "?"
    # whole days, as the plugin counts them (timedelta.days)
    days = (lambda a, b: f"FLOOR(EXTRACT(EPOCH FROM ({a} - {b})) / 86400)") if postgres else (lambda a, b: f"CAST(julianday({a}) - julianday({b}) AS INTEGER)")
    now = f"CAST({p} AS TIMESTAMP)" if postgres else p
    today = f"CAST({p} AS DATE)" if postgres else f"date({p})"
    pct = "%%" if postgres else "%"
    change = (lambda f, i: f"(changes::json -> '{f}' ->> {i})") if postgres else (lambda f, i: f"json_extract(changes, '$.{f}[{i}]')")
    old_value = f"CAST({change('value', 0)} AS {'NUMERIC' if postgres else 'REAL'})"
    new_close, old_close = change("expected_close_date", 1), change("expected_close_date", 0)
    return f"""
INSERT INTO bench_insights_risk (deal_id, points)
SELECT d.id,
  (CASE WHEN {days(now, 'd.stage_entered_at')} > COALESCE(s.expected_days, 21) THEN 2 ELSE 0 END)
+ (CASE WHEN {days(now, 'COALESCE(a.last_at, d.created_at)')} > 14 THEN 2 ELSE 0 END)
+ (CASE WHEN d.expected_close_date < {today} THEN 3 ELSE 0 END)
+ (CASE WHEN se.recent <= -0.05 OR (se.recent - se.previous <= -0.3 AND se.recent < 0.05) THEN 2 ELSE 0 END)
+ (CASE WHEN COALESCE(c.n, 0) <= 1 THEN 1 ELSE 0 END)
+ (CASE WHEN COALESCE(t.n, 0) = 0 THEN 1 ELSE 0 END)
+ (CASE WHEN h.top_value > d.value THEN 1 ELSE 0 END)
+ (CASE WHEN COALESCE(h.pushes, 0) >= 2 THEN 2 ELSE 0 END)
FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id
LEFT JOIN (SELECT deal_id, MAX(occurred_at) AS last_at FROM crm_activity WHERE tenant_id = {p} AND deal_id IS NOT NULL GROUP BY deal_id) a ON a.deal_id = d.id
LEFT JOIN (SELECT deal_id, COUNT(DISTINCT contact_id) AS n FROM (SELECT deal_id, contact_id FROM crm_activity WHERE tenant_id = {p} AND deal_id IS NOT NULL AND contact_id IS NOT NULL
           UNION SELECT id, contact_id FROM crm_deal WHERE tenant_id = {p} AND contact_id IS NOT NULL) x GROUP BY deal_id) c ON c.deal_id = d.id
LEFT JOIN (SELECT deal_id, COUNT(*) AS n FROM crm_task WHERE tenant_id = {p} AND status = 'open' AND deal_id IS NOT NULL GROUP BY deal_id) t ON t.deal_id = d.id
LEFT JOIN (SELECT deal_id, AVG(CASE WHEN occurred_at >= {p} THEN score END) AS recent,
                  AVG(CASE WHEN occurred_at < {p} AND occurred_at >= {p} THEN score END) AS previous
           FROM insights_sentiment WHERE tenant_id = {p} AND deal_id IS NOT NULL AND score IS NOT NULL GROUP BY deal_id) se ON se.deal_id = d.id
LEFT JOIN (SELECT entity_id AS deal_id, MAX({old_value}) AS top_value, SUM(CASE WHEN {new_close} > {old_close} THEN 1 ELSE 0 END) AS pushes
           FROM crm_audit WHERE tenant_id = {p} AND entity = 'deal' AND action = 'update' AND at >= {p}
           AND (changes LIKE '{pct}"value"{pct}' OR changes LIKE '{pct}"expected_close_date"{pct}') GROUP BY entity_id) h ON h.deal_id = d.id
WHERE d.tenant_id = {p} AND s.is_won = {p} AND s.is_lost = {p}
"""


def timed(func: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a loaded machine the CPU time is
    the steadier figure (on SQLite it includes the database's work, on PostgreSQL not)."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=20000, help="open deals (activities are about 2x)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default="", help="PostgreSQL URL (default: SQLite in a temporary folder)")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()

    from crmcore import db, sdk

    config_dir = Path(tempfile.mkdtemp(prefix="bench-insights-"))
    postgres = bool(args.pg_url)
    schema = f"bench_insights_{os.getpid()}"
    if postgres:  # a schema of its own in the benchmark database, dropped at the end
        sys.path.insert(0, str(HERE))
        from datagen import _pg_connect, ensure_pg_database

        ensure_pg_database(args.pg_url)
        conn = _pg_connect(args.pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        conn.close()
    url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}search_path={schema}" if postgres else f"sqlite:///{config_dir / 'crm.db'}"
    app = make_app(config_dir, url)
    now = sdk.utcnow()
    lines = [f"# insights benchmark ({'PostgreSQL' if postgres else 'SQLite'}, {args.size:,} deals, {platform.python_version()}, {os.cpu_count()} cores, {dt.date.today()})", ""]
    try:
        with app.app_context(), db.connection():
            tenant = app.extensions["crm"].tenant("acme")
            with db.tenant_context(tenant):
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                from crm_plugins.insights import interactions, risk
                from crm_plugins.insights.models import DealRisk, InteractionSentiment
                from crmcore.sdk import Activity

                for model in (DealRisk, InteractionSentiment):
                    model.delete().execute()
                started = time.perf_counter()
                counts = build(args.size, now)
                log(f"built {counts} in {time.perf_counter() - started:.1f} s")
                if postgres:
                    db.database.execute_sql("ANALYZE")  # as autovacuum would after a load
                texts = [t for (t,) in Activity.select(Activity.content).tuples()]
                vader = SentimentIntensityAnalyzer()  # the stock analyser, not the plugin's
                results: dict[str, dict[str, list[float]]] = {}

                def clear_sentiment() -> None:
                    InteractionSentiment.delete().execute()

                for _ in range(args.rounds):
                    clear_sentiment()
                    results.setdefault("sentiment backfill", {}).setdefault("full", []).append(timed(lambda: interactions.backfill(tenant, inline=True, batch=1000)))
                    results["sentiment backfill"].setdefault("floor", []).append(timed(lambda: [vader.polarity_scores(t)["compound"] for t in texts]))
                log(f"sentiment (wall, cpu): {results['sentiment backfill']}")

                db.database.execute_sql("DROP TABLE IF EXISTS bench_insights_risk")
                db.database.execute_sql("CREATE TABLE bench_insights_risk (deal_id INTEGER PRIMARY KEY, points REAL)")
                window = dt.timedelta(days=30)
                params = [now, tenant.id, tenant.id, tenant.id, tenant.id, now - window, now - window, now - 2 * window, tenant.id, tenant.id, now - dt.timedelta(days=90), tenant.id, False, False]
                if not postgres:
                    params = [v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v for v in params]
                sql = floor_risk_sql(postgres)

                def floor() -> None:
                    with db.atomic():
                        db.database.execute_sql("DELETE FROM bench_insights_risk")
                        db.database.execute_sql(sql, [params[0]] * 3 + params[1:])

                for _ in range(args.rounds):
                    DealRisk.delete().execute()
                    results.setdefault("risk, first", {}).setdefault("full", []).append(timed(lambda: risk.recompute(tenant)))
                    results["risk, first"].setdefault("floor", []).append(timed(floor))
                    results.setdefault("risk, unchanged", {}).setdefault("full", []).append(timed(lambda: risk.recompute(tenant)))
                    results["risk, unchanged"].setdefault("floor", []).append(timed(floor))
                full_points = dict(DealRisk.select(DealRisk.deal, DealRisk.points).tuples())
                floor_points = dict(db.database.execute_sql("SELECT deal_id, points FROM bench_insights_risk").fetchall())
                same = sum(1 for k, v in floor_points.items() if abs(full_points.get(k, -1) - v) < 1e-9)
                lines.append(f"Data: {counts}. Risk points equal in full stack and floor for {same:,} of {len(floor_points):,} deals.")
                lines += ["", "| scenario | full best (s) | full median | floor best (s) | floor median | floor/full (best wall) | full CPU best | floor CPU best | floor/full (CPU) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
                for name, r in results.items():
                    walls = {k: [w for w, _c in v] for k, v in r.items()}
                    cpus = {k: [c for _w, c in v] for k, v in r.items()}
                    fb, fm, lb, lm = min(walls["full"]), statistics.median(walls["full"]), min(walls["floor"]), statistics.median(walls["floor"])
                    fc, lc = min(cpus["full"]), min(cpus["floor"])
                    lines.append(f"| {name} | {fb:.2f} | {fm:.2f} | {lb:.2f} | {lm:.2f} | {lb / fb:.2f}x | {fc:.2f} | {lc:.2f} | {lc / fc:.2f}x |")
    finally:
        app.extensions["crm"].shutdown()
        if hasattr(db.database.obj, "close_all"):
            db.database.obj.close_all()
        shutil.rmtree(config_dir, ignore_errors=True)
        if postgres:
            conn = _pg_connect(args.pg_url)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
            conn.close()
    report = "\n".join(lines) + "\n"
    print(report)
    if args.report:
        args.report.write_text(report)


if __name__ == "__main__":
    main()
