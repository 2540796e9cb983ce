#!/usr/bin/env python
"""Automation benchmark: what active rules cost the write path, side by side in one run.

A temporary instance (SQLite by default, ``--database-url`` for PostgreSQL) with three
tenants: ``off`` (plugin off), ``miss`` (plugin on, ``--rules`` active rules on "a lead
is created" whose condition never holds) and ``hit`` (the same rules plus one that
matches: its run and first step task are written by the receiver; the steps themselves
run later in the worker, not timed here). ``POST /api/v1/leads`` through the app's test
client, the tenants in turn for ``--requests`` rounds; p50/p90 per tenant and the p50
ratio against ``off`` (the issue's bar: at most 1.3x).

    .venv/bin/python bench/bench_automation.py
    .venv/bin/python bench/bench_automation.py --database-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)

    from crmcore import auth, db
    from crmcore.testing import CrmEnv

    root = Path(tempfile.mkdtemp(prefix="bench-automation-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    env = CrmEnv(root, url)
    env.write_instance(api_rate_per_minute=0)
    for slug, plugins in (("off", []), ("miss", ["automation"]), ("hit", ["automation"])):
        env.write_tenant(slug, plugins=plugins, settings={"automation": {"max_rules": 1000}})
    app = env.create_app()
    tokens = {}
    with app.app_context(), db.database.connection_context():
        for slug in ("off", "miss", "hit"):
            tenant = env.tenant(slug)
            user = auth.create_user(tenant, f"bench-{uuid.uuid4().hex[:6]}@{slug}.test", "bench-password", role="admin")
            tokens[slug] = auth.create_token(tenant, "admin", name="bench", user=user)[1]
    client = {slug: env.client(slug) for slug in tokens}

    def call(slug: str, method: str, path: str, json: dict) -> float:
        start = time.perf_counter()
        response = client[slug].open(f"/api/v1{path}", method=method, json=json, headers={"Authorization": f"Bearer {tokens[slug]}"})
        elapsed = time.perf_counter() - start
        assert response.status_code < 300, response.get_data(as_text=True)
        return elapsed

    never = {"name": "never", "entity": "lead", "trigger": {"type": "record_created"}, "status": "active",
             "conditions": {"all": [{"field": "source", "op": "eq", "value": "never-this"}]},
             "steps": [{"action": "add_tag", "params": {"tag": "x"}}]}
    for slug in ("miss", "hit"):
        for i in range(args.rules):
            call(slug, "POST", "/automation/rules", dict(never, name=f"rule {i}"))
    call("hit", "POST", "/automation/rules", dict(never, name="matching", conditions={}))
    for slug in tokens:  # warm up
        for i in range(10):
            call(slug, "POST", "/leads", {"name": f"warm {i}"})
    # statements per create (deterministic, unlike the timings on a shared machine)
    statements: dict[str, int] = {}
    with app.app_context():
        database = db.database.obj
        original = database.execute_sql
        for slug in tokens:
            seen: list[str] = []

            def counting(sql: str, *a: object, _seen: list[str] = seen, **k: object) -> object:
                _seen.append(sql)
                return original(sql, *a, **k)

            database.execute_sql = counting
            try:
                call(slug, "POST", "/leads", {"name": f"counted {slug}"})
            finally:
                del database.execute_sql
            statements[slug] = len(seen)
    times: dict[str, list[float]] = {slug: [] for slug in tokens}
    for i in range(args.requests):
        for slug in tokens:
            times[slug].append(call(slug, "POST", "/leads", {"name": f"Lead {i}", "source": "api"}))
    env.close()

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))] * 1000

    off = statistics.median(times["off"])
    print(f"database: {'postgresql' if url.startswith('postgres') else 'sqlite'}; {args.rules} active rules; {args.requests} creates per tenant")
    print(f"{'tenant':<8}{'p50 ms':>10}{'p90 ms':>10}{'p50 ratio':>12}{'statements':>12}")
    for slug, label in (("off", "off"), ("miss", "miss"), ("hit", "hit")):
        print(f"{label:<8}{pct(times[slug], 0.5):>10.2f}{pct(times[slug], 0.9):>10.2f}{statistics.median(times[slug]) / off:>12.2f}{statements[slug]:>12}")
    return 0


if __name__ == "__main__":
    os.environ.pop("CRM_CONFIG", None)
    raise SystemExit(main())
