#!/usr/bin/env python
"""Global search benchmark: ``/app/search/suggest?q=...`` (the header box as one types)
and ``/app/search/?q=...`` (the results page) on a tenant with ``size`` leads and as many
contacts, a tenth as many companies and deals, through the full stack (Flask test
client, signed in, real database). Reports p50/p99 latency and the SQL statements per
request (one LIKE query with a LIMIT per kind: constant whatever the size).

The search is a substring match (``ILIKE '%q%'``, the list pages' own search), so each
kind is a scan of the tenant's rows: this shows what that costs as the data grows.

    .venv/bin/python bench/bench_search.py --sizes 1000 10000 100000     # SQLite
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WORDS = ["globex", "initech", "umbrella", "hooli", "stark", "wayne", "acme", "cyberdyne", "tyrell", "wonka", "soylent", "vandelay"]
QUERIES = ["glob", "hooli", "zzz-nothing", "ada", "wayne ent", "@example"]


def seed(env, size: int) -> None:
    from crmcore import db
    from crmcore.entities.models import Company, Contact, Deal, Lead, Pipeline, Stage
    from crmcore.models import utcnow

    rng = random.Random(7)
    tenant = env.tenant("acme")
    with env.app.app_context(), db.database.connection_context(), db.tenant_context(tenant):
        now = utcnow()
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        stage = Stage.select().where(Stage.pipeline == pipeline.id).first()
        with db.database.atomic():
            Company.insert_many([{"tenant": tenant.id, "name": f"{rng.choice(WORDS).title()} {i}", "domain": f"c{i}.example", "created_at": now, "updated_at": now} for i in range(size // 10)]).execute()
            for start in range(0, size, 5000):
                n = min(5000, size - start)
                Lead.insert_many([{"tenant": tenant.id, "name": f"{rng.choice(['Ada', 'Grace', 'Alan', 'Linus'])} {rng.choice(WORDS).title()} {start + i}", "email": f"l{start + i}@{rng.choice(WORDS)}.example", "created_at": now, "updated_at": now} for i in range(n)]).execute()
                Contact.insert_many([{"tenant": tenant.id, "first_name": rng.choice(["Ada", "Hank", "Bill"]), "last_name": f"{rng.choice(WORDS).title()}{start + i}", "email": f"c{start + i}@{rng.choice(WORDS)}.example", "created_at": now, "updated_at": now} for i in range(n)]).execute()
            Deal.insert_many([{"tenant": tenant.id, "title": f"{rng.choice(WORDS).title()} deal {i}", "value": 100, "pipeline": pipeline.id, "stage": stage.id, "created_at": now, "updated_at": now, "stage_entered_at": now} for i in range(size // 10)]).execute()


def measure(client, db_obj, url: str, rounds: int) -> tuple[float, float, int]:
    statements: list[str] = []
    original = db_obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    times = []
    for i in range(rounds):
        start = time.perf_counter()
        if i == rounds - 1:
            db_obj.execute_sql = counting
        response = client.get(url)
        if i == rounds - 1:
            del db_obj.execute_sql
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)], len(statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from crmcore import db
    from crmcore.testing import CrmEnv

    print("| backend | size | request | p50 ms | p99 ms | statements |\n|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="crm-bench-search-") as tmp:
            env = CrmEnv(Path(tmp), f"sqlite:///{tmp}/bench.db")
            env.write_tenant("acme", name="Acme Ltd")
            env.create_app()
            seed(env, size)
            client = env.client("acme")
            env.login(client, "acme", "manager")
            with env.app.app_context():
                db_obj = db.database.obj
                for query in QUERIES:
                    for path in ("/app/search/suggest", "/app/search/"):
                        p50, p99, count = measure(client, db_obj, f"{path}?q={query}", args.rounds)
                        print(f"| sqlite | {size:,} | {path}?q={query} | {p50:.1f} | {p99:.1f} | {count} |", flush=True)


if __name__ == "__main__":
    main()
