#!/usr/bin/env python
"""Leads API benchmark: the full CRM stack against a bare Flask + peewee floor.

Scenarios (tenant ``acme``, admin bearer token, filter ``status=qualified``):

* ``list first``: ``GET /api/v1/leads?status=qualified&limit=50``
* ``list deep``: the same with a ``cursor`` 90% of the way down the filtered list
  (keyset pagination must keep it as cheap as the first page)
* ``create``: ``POST /api/v1/leads`` (a new lead with a unique e-mail each time), against
  the minimal floor (token lookup, insert the lead and an audit row)
* ``create, same SQL``: the same full-stack request against a floor that sends the very
  statements the full stack sends (custom-field definitions, duplicate check, savepoint,
  tag read-back), so the ratio shows the cost of the layers alone

Both apps are driven in-process through their WSGI callables (one environ built up front
per scenario, the body read to the end), in alternating batches within one run, so that
machine noise hits both alike. Throughput is requests / time spent inside the WSGI call.
SQL statements per request are counted by wrapping each peewee database's
``execute_sql``/``begin``/``commit``/``rollback``/``connect`` in a separate probe pass.

    .venv/bin/python bench/bench_api.py --sizes 1000                  # smoke, seconds
    .venv/bin/python bench/bench_api.py --sizes 10000 1000000 --report bench/results/leads.md

See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gc
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import datagen  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/crm_bench"
DEFAULT_CACHE = Path(os.environ.get("CRM_BENCH_CACHE", Path.home() / ".cache" / "crm-bench"))
SCENARIOS = ("list first", "list deep", "create", "create, same SQL")
STACKS = ("full", "floor")
DEEP_FRACTION = 0.9
ANALYSIS_MARKER = "<!-- analysis: kept when the report is regenerated -->"


# --------------------------------------------------------------------------- WSGI driving


class Request:
    """One prepared request: a base environ and a body factory (a new body per call)."""

    def __init__(self, app: Any, method: str, path: str, query: str, token: str, body: Callable[[int], bytes] | None = None):
        from werkzeug.test import EnvironBuilder

        builder = EnvironBuilder(path=path, query_string=query, method=method, base_url="http://acme.test", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, content_type="application/json" if body else None)
        self.environ = builder.get_environ()
        builder.close()
        self.app = app
        self.body = body
        self.n = 0

    def environ_for_next(self) -> dict[str, Any]:
        env = dict(self.environ)
        data = self.body(self.n) if self.body else b""
        self.n += 1
        env["wsgi.input"] = io.BytesIO(data)
        env["CONTENT_LENGTH"] = str(len(data))
        return env

    def call(self, env: dict[str, Any]) -> tuple[int, bytes]:
        status: list[str] = []

        def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(s)
            return lambda chunk: None

        result = self.app(env, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return int(status[0].split(" ", 1)[0]), body


def timed_batch(req: Request, n: int, expect: int) -> list[int]:
    """n requests; latency of each in ns (environ preparation outside the clock)."""
    out = []
    perf = time.perf_counter_ns
    for _ in range(n):
        env = req.environ_for_next()
        t0 = perf()
        code, body = req.call(env)
        out.append(perf() - t0)
        if code != expect:
            raise RuntimeError(f"{req.environ['REQUEST_METHOD']} {req.environ['PATH_INFO']}?{req.environ['QUERY_STRING']} -> {code}: {body[:500]!r}")
    return out


# --------------------------------------------------------------------------- statement log


class StatementLog:
    """Records what a peewee database sends: statements, transaction control, connects."""

    def __init__(self, database: Any):
        self.db = database
        self.entries: list[tuple[str, str, Any]] = []
        self._saved: dict[str, Any] = {}

    def install(self) -> "StatementLog":
        db = self.db

        def wrap(name: str, kind: str) -> None:
            original = getattr(db, name)
            self._saved[name] = original

            if name == "execute_sql":
                def wrapper(sql: str, params: Any = None, *a: Any, **k: Any) -> Any:
                    up = sql.lstrip().upper()
                    self.entries.append(("txn" if up.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")) else "query", sql, params))
                    return original(sql, params, *a, **k)
            elif name == "connect":
                def wrapper(*a: Any, **k: Any) -> Any:
                    if db.is_closed():
                        self.entries.append(("connect", "connect", None))
                    return original(*a, **k)
            else:
                def wrapper(*a: Any, **k: Any) -> Any:
                    self.entries.append((kind, name.upper(), None))
                    return original(*a, **k)

            setattr(db, name, wrapper)

        wrap("execute_sql", "query")
        for name in ("begin", "commit", "rollback"):
            wrap(name, "txn")
        wrap("connect", "connect")
        return self

    def remove(self) -> None:
        for name in self._saved:
            delattr(self.db, name)  # back to the class's method
        self._saved.clear()

    def take(self) -> list[tuple[str, str, Any]]:
        out, self.entries = self.entries, []
        return out


def describe(sql: str) -> str:
    """A statement in short: verb and tables (``SELECT crm_lead``)."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else sql
    if verb in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        tables = re.findall(r'(?:FROM|INTO|UPDATE|JOIN)\s+"(\w+)"', sql)
        return f"{verb} {'+'.join(dict.fromkeys(tables))}"
    return "SAVEPOINT" if verb == "SAVEPOINT" else ("RELEASE SAVEPOINT" if verb == "RELEASE" else sql)


def same_statements(a: list[str], b: list[str]) -> bool:
    """Equal statement lists, savepoint names aside."""
    mask = lambda xs: [re.sub(r'"s[0-9a-f]{32}"', '"s…"', x) for x in xs]  # noqa: E731
    return mask(a) == mask(b)


def summarize(entries: list[tuple[str, str, Any]]) -> dict[str, Any]:
    return {
        "queries": sum(1 for k, _, _ in entries if k == "query"),
        "txn": sum(1 for k, _, _ in entries if k == "txn"),
        "connects": sum(1 for k, _, _ in entries if k == "connect"),
        "statements": [s if k != "query" else " ".join(s.split()) for k, s, _ in entries],
    }


# --------------------------------------------------------------------------- one (backend, size)


def percentile(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return float("nan")
    k = max(0, min(len(sorted_ns) - 1, int(-(-p * len(sorted_ns) // 100)) - 1))
    return sorted_ns[k] / 1e6


def explain(backend: str, floor_db: Any, sql: str, params: Any) -> list[str]:
    if backend == "sqlite":
        rows = floor_db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return [r[-1] for r in rows]
    rows = floor_db.execute_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params).fetchall()
    return [r[0] for r in rows]


def apply_experiments(backend: str, args: argparse.Namespace, floor: Any) -> list[str]:
    """Changes tried in this process only, to size a recommendation (see README)."""
    applied = []
    if args.sqlite_pool and backend == "sqlite":
        # Both stacks keep their SQLite connections in a pool instead of opening one per
        # request (closing the last connection checkpoints and deletes the WAL).
        from playhouse.pool import PooledSqliteDatabase

        from crmcore import db

        for proxy in (db.database, floor.database):
            old = proxy.obj
            if not old.is_closed():
                old.close()
            proxy.initialize(PooledSqliteDatabase(old.database, pragmas=dict(old._pragmas), timeout=10, check_same_thread=False, max_connections=None, stale_timeout=300))
        applied.append("sqlite-pool")
    return applied


def _first_difference(full: Any, floor: Any, path: str = "") -> str:
    """Where two JSON values first differ, for the error message of the equality check."""
    if isinstance(full, dict) and isinstance(floor, dict):
        if list(full) != list(floor):
            return f"{path or '/'}: keys {list(full)} vs {list(floor)}"
        for key in full:
            if full[key] != floor[key]:
                return _first_difference(full[key], floor[key], f"{path}/{key}")
    if isinstance(full, list) and isinstance(floor, list) and len(full) == len(floor):
        for i, (a, b) in enumerate(zip(full, floor)):
            if a != b:
                return _first_difference(a, b, f"{path}/{i}")
    return f"{path or '/'}: {full!r:.200} vs {floor!r:.200}"


def run_one(backend: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    import floor

    from crmcore import auth, db
    from crmcore.api.common import _encode
    from crmcore.app import create_app
    from crmcore.migrations import migrate

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    log(f"[{backend} {size:,}] preparing data (cache: {args.cache_dir})")
    inst = datagen.prepare(backend, size, args.cache_dir, args.pg_url, work, rebuild=args.rebuild, log=log)
    log(f"[{backend} {size:,}] " + (f"built in {inst.built_seconds:.0f}s" if inst.built_seconds is not None else "reused cached database") + f": {inst.counts}")

    app = create_app(inst.config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})
    crm = app.extensions["crm"]
    with app.app_context():
        migrate(crm.host, report=lambda m: None)  # a no-op on the cached database
    with db.connection():
        acme = crm.tenant("acme")
        tokens = {stack: auth.create_token(acme, "admin", name=f"bench-{stack}")[1] for stack in STACKS}
    floor_app = floor.create_floor_app(inst.database_url)
    experiments = apply_experiments(backend, args, floor)
    full_db, floor_db = db.database.obj, floor.database.obj

    # The deep page: the cursor the API hands out after the row 90% down the list.
    with floor_db.connection_context():
        qualified = floor.Lead.select().where((floor.Lead.tenant == acme.id) & (floor.Lead.status == "qualified"))
        total_qualified = qualified.count()
        depth = max(50, int(total_qualified * DEEP_FRACTION))
        ordered = qualified.order_by(floor.Lead.created_at.desc(), floor.Lead.id.desc())
        # (not .get(): it resets the offset)
        row = list(ordered.offset(depth - 1).limit(1).dicts())[0]
        row50 = list(ordered.offset(49).limit(1).dicts())[0]
        max_lead_id = floor_db.execute_sql("SELECT max(id) FROM crm_lead").fetchone()[0]
    deep_cursor = _encode([row["created_at"], row["id"]])
    run_id = base64.b32encode(os.urandom(5)).decode().lower()

    def create_body(stack: str) -> Callable[[int], bytes]:
        def body(i: int) -> bytes:
            return json.dumps({
                "name": f"Bench Lead {i}",
                "email": f"bench-{run_id}-{stack}-{i}@bench.example.com",
                "phone": f"+4930{1000000 + i % 8999999}",
                "company_name": "Initech",
                "source": "form",
                "status": "new",
                "priority": "high",
                "estimated_value": "1200.00",
                "need": "Wants a demo.",
            }).encode()

        return body

    apps = {"full": app, "floor": floor_app}
    requests: dict[tuple[str, str], Request] = {}
    expect = {"list first": 200, "list deep": 200, "create": 201, "create, same SQL": 201}
    for stack in STACKS:
        requests[("list first", stack)] = Request(apps[stack], "GET", "/api/v1/leads", "status=qualified&limit=50", tokens[stack])
        requests[("list deep", stack)] = Request(apps[stack], "GET", "/api/v1/leads", f"status=qualified&limit=50&cursor={deep_cursor}", tokens[stack])
        requests[("create", stack)] = Request(apps[stack], "POST", "/api/v1/leads", "", tokens[stack], body=create_body(stack))
        floor_path = "/api/v1/leads-same-sql" if stack == "floor" else "/api/v1/leads"
        requests[("create, same SQL", stack)] = Request(apps[stack], "POST", floor_path, "", tokens[stack], body=create_body(stack + "-s"))

    result: dict[str, Any] = {"experiments": experiments, "backend": backend, "size": size, "counts": inst.counts, "built_seconds": inst.built_seconds, "qualified": total_qualified, "deep_depth": depth, "scenarios": {}}
    try:
        # 1. Same answers? (list: byte-identical JSON; create: same fields and values)
        checks: dict[str, Any] = {}
        for scenario in SCENARIOS:
            bodies, raw = {}, {}
            for stack in STACKS:
                req = requests[(scenario, stack)]
                code, body = req.call(req.environ_for_next())
                if code != expect[scenario]:
                    raise RuntimeError(f"{stack} {scenario}: HTTP {code}: {body[:500]!r}")
                bodies[stack], raw[stack] = json.loads(body), body
            if scenario.startswith("list"):
                same = raw["full"] == raw["floor"]  # byte for byte
                items = bodies["full"]["items"]
                checks[scenario] = {"same_json": same, "items": len(items), "tagged_items": sum(1 for i in items if i["tags"])}
                if scenario == "list first":
                    checks[scenario]["cursor_matches_api"] = bodies["full"]["next_cursor"] == _encode([row50["created_at"], row50["id"]])
                if not same:
                    raise RuntimeError(f"{scenario}: the floor's JSON differs from the full stack's (parsed equal: {bodies['full'] == bodies['floor']}): {_first_difference(bodies['full'], bodies['floor'])}")
            else:
                volatile = {"id", "email", "created_at", "updated_at"}
                a = {k: v for k, v in bodies["full"].items() if k not in volatile}
                b = {k: v for k, v in bodies["floor"].items() if k not in volatile}
                checks[scenario] = {"same_json": a == b and bodies["full"].keys() == bodies["floor"].keys()}
                if not checks[scenario]["same_json"]:
                    raise RuntimeError(f"create: JSON differs\nfull:  {bodies['full']}\nfloor: {bodies['floor']}")

        # 2. SQL statements per request (separate pass; the wrappers are removed before timing)
        logs = {"full": StatementLog(full_db).install(), "floor": StatementLog(floor_db).install()}
        try:
            for scenario in SCENARIOS:
                per_stack = {}
                for stack in STACKS:
                    req = requests[(scenario, stack)]
                    seen = []
                    for _ in range(args.probe):
                        logs[stack].take()
                        req.call(req.environ_for_next())
                        seen.append(logs[stack].take())
                    summaries = [summarize(s) for s in seen]
                    per_stack[stack] = {
                        "queries": sorted({s["queries"] for s in summaries}),
                        "txn": sorted({s["txn"] for s in summaries}),
                        "connects": sorted({s["connects"] for s in summaries}),
                        "statements": summaries[-1]["statements"],
                    }
                    if scenario.startswith("list") and stack == "full":
                        keyset = [(s, p) for k, s, p in seen[-1] if k == "query" and 'FROM "crm_lead"' in s]
                        if keyset:
                            with floor_db.connection_context():
                                per_stack["plan"] = explain(backend, floor_db, *keyset[0])
                            per_stack["keyset_sql"] = " ".join(keyset[0][0].split())
                if scenario != "create":
                    per_stack["same_sql"] = same_statements(per_stack["full"]["statements"], per_stack["floor"]["statements"])
                result["scenarios"].setdefault(scenario, {})["sql"] = per_stack
        finally:
            for log_ in logs.values():
                log_.remove()

        # 3. Timing: warm up, then alternate batches (order flipped every round).
        for scenario in SCENARIOS:
            for stack in STACKS:
                timed_batch(requests[(scenario, stack)], args.warmup, expect[scenario])
            lat: dict[str, list[int]] = {s: [] for s in STACKS}
            round_ratios = []
            for rnd in range(args.rounds):
                order = STACKS if rnd % 2 == 0 else STACKS[::-1]
                spent = {}
                for stack in order:
                    gc.collect()
                    batch = timed_batch(requests[(scenario, stack)], args.batch, expect[scenario])
                    lat[stack].extend(batch)
                    spent[stack] = sum(batch)
                round_ratios.append(spent["floor"] / spent["full"])  # = full rps / floor rps in this round
            stats = {}
            for stack in STACKS:
                ns = sorted(lat[stack])
                stats[stack] = {"n": len(ns), "rps": len(ns) / (sum(ns) / 1e9), "p50": percentile(ns, 50), "p99": percentile(ns, 99), "mean": sum(ns) / len(ns) / 1e6}
            stats["ratio"] = stats["full"]["rps"] / stats["floor"]["rps"]
            rr = sorted(round_ratios)
            stats["round_ratios"] = {"min": rr[0], "p25": rr[len(rr) // 4], "median": rr[len(rr) // 2], "p75": rr[(3 * len(rr)) // 4], "max": rr[-1]}
            result["scenarios"][scenario].update(stats=stats, check=checks[scenario])
            log(f"[{backend} {size:,}] {scenario:10s} full {stats['full']['rps']:7.0f}/s p50 {stats['full']['p50']:.2f} p99 {stats['full']['p99']:.2f} ms | floor {stats['floor']['rps']:7.0f}/s p50 {stats['floor']['p50']:.2f} p99 {stats['floor']['p99']:.2f} ms | ratio {stats['ratio']:.2f}")

        # 4. Optional profiles.
        if args.profile:
            result["profiles"] = profile_stacks(backend, size, requests, expect, args)
    finally:
        # Leave the cached database as it was: drop the leads (and audit rows) we created.
        with floor_db.connection_context():
            with floor_db.atomic():
                floor.AuditEntry.delete().where((floor.AuditEntry.entity == "lead") & (floor.AuditEntry.entity_id > max_lead_id)).execute()
                floor.Lead.delete().where(floor.Lead.id > max_lead_id).execute()
                floor.ApiToken.delete().where(floor.ApiToken.name.in_([f"bench-{s}" for s in STACKS])).execute()
        crm.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        for database in (full_db, floor_db):
            if hasattr(database, "close_all"):
                database.close_all()
            elif not database.is_closed():
                database.close()
    return result


def profile_stacks(backend: str, size: int, requests: dict[tuple[str, str], Request], expect: dict[str, int], args: argparse.Namespace) -> dict[str, str]:
    """Profile N requests per stack and scenario (pyinstrument when importable, else cProfile)."""
    out_dir = args.profile_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for scenario in SCENARIOS:
        for stack in STACKS:
            req = requests[(scenario, stack)]
            name = f"{backend}-{size}-{scenario.replace(',', '').replace(' ', '-')}-{stack}"
            try:
                from pyinstrument import Profiler
            except ImportError:
                Profiler = None
            if Profiler is not None:
                profiler = Profiler(interval=0.0001)
                profiler.start()
                timed_batch(req, args.profile, expect[scenario])
                profiler.stop()
                path = out_dir / f"{name}.txt"
                # Library frames shown (marshmallow, webargs, peewee are where the time goes),
                # lines under 2% of the total left out.
                text = profiler.output_text(unicode=True, color=False, show_all=True, time="percent_of_total")
                path.write_text("\n".join(line for line in text.splitlines() if not re.match(r"^[\s│├└─]*\d+(\.\d+)?% ", line) or float(re.search(r"(\d+(\.\d+)?)%", line).group(1)) >= 2.0) + "\n")
            else:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                timed_batch(req, args.profile, expect[scenario])
                prof.disable()
                path = out_dir / f"{name}.cprofile.txt"
                with path.open("w") as fh:
                    pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(60)
            written[f"{scenario} {stack}"] = str(path)
    return written


# --------------------------------------------------------------------------- report


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    import sqlite3

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "platform": platform.platform()}


def pg_version(url: str) -> str:
    try:
        conn = datagen._pg_connect(url.split("?")[0].rsplit("/", 1)[0] + "/postgres")
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        conn.close()
        return version
    except Exception as exc:  # noqa: BLE001
        return f"unavailable ({exc.__class__.__name__})"


def git_state() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
        return f"{rev}" + (f" + uncommitted changes in {len(dirty)} tracked files" if dirty else "")
    except OSError:
        return "?"


def render(results: list[dict[str, Any]], args: argparse.Namespace, command: str, started: dt.datetime, elapsed: float, load: tuple[str, str], code: str) -> str:
    m = machine()
    experiments = sorted({e for r in results for e in r.get("experiments", [])})
    lines = [
        "# Leads API: full stack vs floor" + (f" (experiments: {', '.join(experiments)})" if experiments else ""),
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} (run took {elapsed / 60:.1f} min); code: {code}",
        f"- Load average (1/5/15 min) at start: {load[0]}; at end: {load[1]} (other work shared the machine; the interleaving puts its noise on both stacks)",
        f"- Machine: {m['cpus']} cores ({m['cpu']}), {m['platform']}; Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {pg_version(args.pg_url)}",
        f"- Command: `{command}`",
        f"- Driver: in-process, each app's WSGI callable called directly (environ prepared outside the clock, body read to the end); "
        f"{args.rounds} rounds x {args.batch} requests per stack and scenario, batches alternating full/floor (order flipped each round), after {args.warmup} warm-up requests each.",
        "- rps = requests / time inside the WSGI call (one thread); p50/p99 per request, in ms. ratio = full rps / floor rps over the whole run (target >= 0.80); "
        "ratio per round = the same for each adjacent pair of batches (its spread shows the noise).",
        "- queries = SQL statements per request (data statements + transaction control), counted by wrapping peewee's execute_sql/begin/commit/rollback.",
        "",
        "| backend | leads | scenario | full rps | floor rps | ratio | ratio per round (p25-p75) | full p50 | full p99 | floor p50 | floor p99 | queries full | queries floor |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        for scenario in SCENARIOS:
            s = r["scenarios"][scenario]
            st, sql = s["stats"], s["sql"]

            def q(stack: str) -> str:
                d = sql[stack]
                fmt = lambda v: "/".join(map(str, v))  # noqa: E731
                return f"{fmt(d['queries'])} + {fmt(d['txn'])} txn"

            flag = "" if st["ratio"] >= 0.8 else " ⚠"
            rr = st["round_ratios"]
            lines.append(f"| {r['backend']} | {r['size']:,} | {scenario} | {st['full']['rps']:.0f} | {st['floor']['rps']:.0f} | **{st['ratio']:.2f}**{flag} | {rr['p25']:.2f}-{rr['p75']:.2f} | {st['full']['p50']:.2f} | {st['full']['p99']:.2f} | {st['floor']['p50']:.2f} | {st['floor']['p99']:.2f} | {q('full')} | {q('floor')} |")
    lines += ["", "## Checks", ""]
    for r in results:
        deep = r["scenarios"]["list deep"]
        first = r["scenarios"]["list first"]
        built = f"built in {r['built_seconds']:.0f}s" if r["built_seconds"] is not None else "cached"
        lines.append(
            f"- {r['backend']} {r['size']:,}: {r['counts']['leads']:,} lead rows in all ({built}), {r['qualified']:,} qualified in acme, deep page at row {r['deep_depth']:,}; "
            f"list JSON identical full/floor: {first['check']['same_json'] and deep['check']['same_json']}; "
            f"list SQL identical: {first['sql']['same_sql'] and deep['sql']['same_sql']}; "
            f"cursor format as the API's: {first['check'].get('cursor_matches_api')}; create JSON same fields/values: {r['scenarios']['create']['check']['same_json']}; "
            f"create same-SQL floor sends the full stack's statements: {r['scenarios']['create, same SQL']['sql']['same_sql']}"
        )
    lines += ["", "## Statements per request", ""]
    shown = set()
    for r in results:
        if r["backend"] in shown:
            continue
        shown.add(r["backend"])
        shape = lambda x: [[describe(t) for t in x["scenarios"][sc]["sql"][st]["statements"]] for sc in SCENARIOS for st in STACKS]  # noqa: E731
        sizes = [x for x in results if x["backend"] == r["backend"]]
        same = all(shape(x) == shape(r) for x in sizes)
        where = "the same at every size measured" if same else f"at {r['size']:,} leads (other sizes differ: see the JSON)"
        lines.append(f"{r['backend']} ({where}; `connect` = a connection taken for the request):")
        lines.append("")
        for scenario in SCENARIOS:
            sql = r["scenarios"][scenario]["sql"]
            for stack in STACKS:
                if stack == "floor" and sql.get("same_sql"):
                    lines.append(f"- {scenario}, floor: the same statements")
                    continue
                lines.append(f"- {scenario}, {stack}: " + ", ".join(f"`{describe(x)}`" for x in sql[stack]["statements"]))
        lines.append("")
    deep = results[0]["scenarios"]["list deep"]["sql"] if results else {}
    if deep.get("keyset_sql"):
        lines += ["The keyset query of a deep page (both stacks; raw statements of every request are in the --json output):", "", "```sql", deep["keyset_sql"], "```", ""]
    lines += ["## Query plans of the keyset query (full stack)", ""]
    for r in results:
        for scenario in ("list first", "list deep"):
            plan = r["scenarios"][scenario]["sql"].get("plan")
            if plan:
                lines.append(f"{r['backend']} {r['size']:,}, {scenario}:")
                lines.append("")
                lines.append("```")
                lines.extend(plan)
                lines.append("```")
                lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="leads in tenant acme (default: 10000 1000000)")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgres"), help="default: both (PostgreSQL skipped with a warning when --pg-url is unreachable)")
    parser.add_argument("--pg-url", default=os.environ.get("CRM_BENCH_PG_URL", DEFAULT_PG_URL), help="PostgreSQL database for the data (created if missing); one schema per size")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where SQLite databases are kept between runs (default ~/.cache/crm-bench or $CRM_BENCH_CACHE)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data even when cached")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per scenario (default 20; 3 when every size < 10000)")
    parser.add_argument("--batch", type=int, default=None, help="requests per stack per round (default 50; 30 when every size < 10000)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--probe", type=int, default=3, help="requests per stack and scenario in the statement-counting pass")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also profile N requests per stack and scenario (pyinstrument if importable, else cProfile)")
    parser.add_argument("--profile-dir", type=Path, default=HERE / "results" / "profiles")
    parser.add_argument("--report", type=Path, help="write the markdown report here (e.g. bench/results/leads.md)")
    parser.add_argument("--json", type=Path, help="write the raw results as JSON here")
    parser.add_argument("--sqlite-pool", action="store_true", help="experiment: pooled SQLite connections in both stacks")
    parser.add_argument("--prepare-only", action="store_true", help="build (or check) the cached databases and stop")
    parser.add_argument("--from-json", type=Path, help="no run: render the report from the raw results of an earlier --json")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--in-process", action="store_true", help="run every (backend, size) in this process instead of one subprocess each")
    args = parser.parse_args(argv)
    if args.backends is None:
        args.backends = ["sqlite", "postgres"]
        if not args.one and not args.from_json and pg_version(args.pg_url).startswith("unavailable"):
            print(f"PostgreSQL at {args.pg_url} is unreachable: SQLite only (pass --pg-url)", file=sys.stderr)
            args.backends = ["sqlite"]
    small = all(s < 10_000 for s in args.sizes)
    args.rounds = args.rounds or (3 if small else 20)
    args.batch = args.batch or (30 if small else 50)

    if args.one:
        backend, size = args.one[0], int(args.one[1])
        print(json.dumps(run_one(backend, size, args), default=str))
        return 0

    started, t0 = dt.datetime.now(), time.monotonic()
    load_start = loadavg()
    if args.prepare_only:
        for backend in args.backends:
            for size in args.sizes:
                work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
                t1 = time.monotonic()
                inst = datagen.prepare(backend, size, args.cache_dir, args.pg_url, work, rebuild=args.rebuild, log=print)
                shutil.rmtree(work, ignore_errors=True)
                state = f"built in {time.monotonic() - t1:.0f}s" if inst.built_seconds is not None else "cached"
                print(f"{backend} {size:,}: {state} {inst.counts}", flush=True)
        return 0
    results = []
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        meta = results[0].get("run", {}) if results else {}
        started = dt.datetime.fromisoformat(meta["started"]) if meta.get("started") else started
    for backend in ([] if args.from_json else args.backends):
        for size in args.sizes:
            if args.in_process:
                results.append(run_one(backend, size, args))
                continue
            # A fresh process per database: no state, garbage or caches carried over.
            child = [sys.executable, str(Path(__file__).resolve()), "--one", backend, str(size), "--pg-url", args.pg_url, "--cache-dir", str(args.cache_dir), "--rounds", str(args.rounds), "--batch", str(args.batch), "--warmup", str(args.warmup), "--probe", str(args.probe), "--profile", str(args.profile), "--profile-dir", str(args.profile_dir)] + [flag for flag, on in (("--rebuild", args.rebuild), ("--sqlite-pool", args.sqlite_pool)) if on]
            proc = subprocess.run(child, stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f"{backend} {size}: failed (exit {proc.returncode})", file=sys.stderr)
                return proc.returncode
            results.append(json.loads(proc.stdout))
    elapsed = time.monotonic() - t0
    command = "python bench/bench_api.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load, code = (load_start, loadavg()), git_state()
    if args.from_json and results and "run" in results[0]:
        run = results[0]["run"]
        command, elapsed, load, code = run["command"], run["elapsed"], tuple(run["load"]), run.get("code", "?")
        args.rounds, args.batch, args.warmup = run["rounds"], run["batch"], run["warmup"]
    elif results:
        results[0]["run"] = {"command": command, "elapsed": elapsed, "load": list(load), "started": started.isoformat(), "rounds": args.rounds, "batch": args.batch, "warmup": args.warmup, "code": code}
    text = render(results, args, command, started, elapsed, load, code)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        # Keep what a person wrote below the marker in an earlier report.
        tail = ""
        if args.report.exists() and ANALYSIS_MARKER in args.report.read_text():
            tail = args.report.read_text().split(ANALYSIS_MARKER, 1)[1]
        args.report.write_text(text + "\n" + ANALYSIS_MARKER + (tail or "\n"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
