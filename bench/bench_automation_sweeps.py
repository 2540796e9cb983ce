#!/usr/bin/env python
"""Automation sweeps, side by side in one run: a time trigger over many deals against a
hand-written SQL of the same condition, and many waiting runs resumed.

1. ``--deals`` deals (100,000 by default), 1% due ("3 days before the expected close
   date" is today). A ``date_reached`` rule with conditions on the deal's own columns
   and on its company (``value >= 5000``, ``priority != low``, ``company.industry =
   SaaS``). Timed, alternating, ``--repeat`` times each: the sweep's query that finds
   the due, matching, not yet fired deals (built from the rule: ``time_triggers``'
   ``_due_query`` with ``sql_conditions``), and the same query written by hand as SQL
   text. Bar (issue 17): within 2x. Then one whole sweep: its statements are counted
   (a constant number, plus the runs it starts), and it is timed.
2. ``--waiting`` runs (10,000 by default) waiting, all due: one ``wake_due`` sweep
   claims them and queues their next step. Bar: all resumed within a minute of their
   wake-up time (the sweep runs every minute, so the sweep itself must take well under
   one).

    .venv/bin/python bench/bench_automation_sweeps.py --deals 2000 --waiting 200   # quick
    .venv/bin/python bench/bench_automation_sweeps.py
    .venv/bin/python bench/bench_automation_sweeps.py --database-url postgresql://postgres@127.0.0.1:5432/<yours>
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CONDITIONS = {"all": [{"field": "value", "op": "gte", "value": 5000}, {"field": "priority", "op": "ne", "value": "low"},
                      {"field": "company.industry", "op": "eq", "value": "SaaS"}]}
HAND_SQL = """
SELECT d.id, CAST(d.expected_close_date AS TEXT) FROM crm_deal d
WHERE d.tenant_id = {p} AND d.expected_close_date <= {p} AND d.expected_close_date > {p}
  AND d.value >= {p} AND d.priority <> {p}
  AND EXISTS (SELECT 1 FROM crm_company c WHERE c.id = d.company_id AND c.industry = {p})
  AND NOT EXISTS (SELECT 1 FROM automation_fired f WHERE f.rule_id = {p} AND f.record_id = d.id
                  AND f.occurrence = CAST(d.expected_close_date AS TEXT))
ORDER BY d.id LIMIT 500
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)

    from crm_plugins.automation import rules, runs, time_triggers
    from crm_plugins.automation.models import AutomationRun
    from crmcore import db, sdk
    from crmcore.sdk import Company, Deal, Pipeline, Stage, utcnow
    from crmcore.testing import CrmEnv

    root = Path(tempfile.mkdtemp(prefix="bench-automation-sweeps-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    env = CrmEnv(root, url)
    env.write_instance(api_rate_per_minute=0)
    env.write_tenant("acme", plugins=["automation"], settings={"automation": {"max_rules": 1000}})
    app = env.create_app()
    random.seed(17)
    out: list[str] = [f"database: {'postgresql' if url.startswith('postgres') else 'sqlite'}; {args.deals} deals; {args.waiting} waiting runs"]
    with app.app_context(), db.connection(), db.tenant_context(env.tenant("acme")) as _:
        tenant = sdk.current_tenant()
        pipeline = Pipeline.select().first()
        stage = Stage.select().where(Stage.pipeline == pipeline.id).first()
        saas = Company.create(name="Cloudy", industry="SaaS")
        shop = Company.create(name="Shop", industry="Retail")
        today = utcnow().date()
        due_day = today + dt.timedelta(days=3)
        started = time.perf_counter()
        for chunk in range(0, args.deals, 5000):
            rows = []
            for i in range(chunk, min(chunk + 5000, args.deals)):
                rows.append({"tenant": tenant.id, "title": f"Deal {i}", "value": random.randint(0, 10_000), "pipeline": pipeline.id, "stage": stage.id,
                             "priority": random.choice(["low", "medium", "high"]), "company": random.choice([saas.id, shop.id, None]),
                             "expected_close_date": due_day if i % 100 == 0 else today + dt.timedelta(days=random.randint(-400, 400) or 9)})
            with db.atomic():
                Deal.insert_many(rows).execute()
        out.append(f"inserted in {time.perf_counter() - started:.1f} s")
        rule = rules.save(tenant, {"name": "Closing soon", "entity": "deal", "status": "active", "conditions": CONDITIONS,
                                   "trigger": {"type": "date_reached", "options": {"field": "expected_close_date", "offset_days": -3}},
                                   "steps": [{"action": "add_tag", "params": {"tag": "closing"}}]})
        settings = sdk.settings(tenant, "automation")
        now = utcnow()
        due = now - dt.timedelta(days=-3)
        since = due - dt.timedelta(hours=settings["time_window_hours"])
        p = db.database.param
        hand_params = [tenant.id, due.date(), since.date(), 5000, "low", "SaaS", rule.id]
        hand_sql = HAND_SQL.format(p=p)
        ours_ms: list[float] = []
        hand_ms: list[float] = []
        ours_rows = hand_rows = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            ours_rows = list(time_triggers._due_query(rule, now, settings))
            ours_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            hand_rows = list(db.database.execute_sql(hand_sql, hand_params).fetchall())
            hand_ms.append((time.perf_counter() - started) * 1000)
        assert sorted(r[0] for r in ours_rows) == sorted(r[0] for r in hand_rows), (len(ours_rows), len(hand_rows))
        ours, hand = statistics.median(ours_ms), statistics.median(hand_ms)
        out.append(f"due query: {len(ours_rows)} deals due and matching (of {args.deals // 100} due)")
        out.append(f"  sweep's query  p50 {ours:8.2f} ms   hand-written SQL p50 {hand:8.2f} ms   ratio {ours / hand:.2f} (bar: 2.0)")

        statements: list[str] = []
        original = db.database.obj.execute_sql

        def counting(sql: str, *a: object, **k: object) -> object:
            statements.append(sql)
            return original(sql, *a, **k)

        db.database.obj.execute_sql = counting
        try:
            started = time.perf_counter()
            fired = time_triggers.sweep(tenant)
            sweep_s = time.perf_counter() - started
        finally:
            del db.database.obj.execute_sql
        finding = [s for s in statements if "automation_fired" in s or ('"automation_rule"' in s and "automation_run" not in s)]
        out.append(f"whole sweep: {fired} runs started in {sweep_s * 1000:.0f} ms, {len(statements)} statements: "
                   f"{len(finding)} finding and claiming (whatever the number of deals), the rest starting the runs "
                   f"({(len(statements) - len(finding)) / max(fired, 1):.1f} per run, savepoints included)")

        # 2. waiting runs resumed
        waiting_rule = rules.save(tenant, {"name": "Wait then tag", "entity": "deal", "status": "active", "conditions": {},
                                           "trigger": {"type": "record_created"},
                                           "steps": [{"action": "wait", "params": {"days": 1}}, {"action": "add_tag", "params": {"tag": "woke"}}]})
        ids = [i for (i,) in Deal.select(Deal.id).order_by(Deal.id).limit(args.waiting).tuples()]
        wake_at = utcnow() - dt.timedelta(seconds=1)
        for chunk in range(0, len(ids), 5000):
            with db.atomic():
                AutomationRun.insert_many([{"tenant": tenant.id, "rule": waiting_rule.id, "version": waiting_rule.version, "entity": "deal",
                                            "record_id": rid, "trigger": "record_created", "status": "waiting", "step": 1, "tries": 1,
                                            "wake_at": wake_at} for rid in ids[chunk:chunk + 5000]]).execute()
        started = time.perf_counter()
        resumed = runs.wake_due(tenant)
        wake_s = time.perf_counter() - started
        late = (utcnow() - wake_at).total_seconds()
        left = AutomationRun.select().where(AutomationRun.status == "waiting").count()
        out.append(f"wake_due: {resumed} of {len(ids)} waiting runs resumed (next step queued) in {wake_s:.2f} s, "
                   f"{left} still waiting; the last one {late:.1f} s after its wake-up time (bar: 60 s, sweep every 60 s)")
    env.close() if hasattr(env, "close") else None
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    os.environ.pop("CRM_CONFIG", None)
    raise SystemExit(main())
