"""Benchmark data: a CRM database made by the real migrations, filled in bulk.

Tenant ``acme`` gets exactly ``size`` leads; tenant ``beta`` gets ``size // 5`` more,
interleaved with acme's (every sixth row), so that tenant scoping has rows to skip.
Leads have a realistic spread of statuses, sources, priorities, owners (20 users, some
leads unassigned) and ``created_at`` over three years (mostly rising with the id, with
jitter and runs of identical timestamps, as imports make). About 45% of the leads carry
one or two of twelve tags.

The database is built once per (backend, size) and cached:

* SQLite: ``<cache-dir>/sqlite-<size>/crm.db``
* PostgreSQL: schema ``bench_<size>`` in the database of ``--pg-url`` (``crm_bench``)

A ``bench_meta`` table in the database records that the build finished (and with which
generator version), so an interrupted build is redone and a finished one is reused. On
reuse the real migrations are run on the cached database (new migrations apply, as they
would in production), and its schema (columns, indexes, AUTOINCREMENT) is compared with
the schema the migrations give an empty database: if they differ (a model changed without
a migration, say), the data is built again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import tomli_w

GENERATOR_VERSION = 1
SEED = 20240601
TENANTS = (("acme", "Acme Ltd"), ("beta", "Beta GmbH"))
USERS_PER_TENANT = 20
TAG_NAMES = ("vip", "newsletter", "trade-show", "webinar", "partner", "inbound", "outbound", "renewal", "churn-risk", "enterprise", "smb", "priority")

STATUSES = (("new", 30), ("contacted", 25), ("qualified", 20), ("unqualified", 15), ("converted", 10))
SOURCES = (("form", 30), ("email", 15), ("chat", 15), ("referral", 10), ("manual", 10), ("import", 10), ("api", 5), ("sms", 5))
PRIORITIES = (("low", 30), ("medium", 50), ("high", 20))
COMPANIES = ("Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne", "Soylent", "Acme Rockets", "Pied Piper", "Dunder Mifflin", "Gringotts")
FIRST = ("Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Klara", "Liam", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Sami", "Tara", "Yusuf")
LAST = ("Müller", "Schmidt", "Smith", "Garcia", "Rossi", "Dubois", "Nowak", "Jensen", "Silva", "Kowalski", "Brown", "Martin", "Weber", "Novak", "Larsen")
SPAN = dt.timedelta(days=3 * 365)

LEAD_COLUMNS = ("tenant_id", "created_at", "updated_at", "version", "custom", "name", "email", "phone", "company_name", "source", "status", "priority", "owner_id", "estimated_value", "last_contact_at", "budget", "authority", "need", "timeline", "converted_at", "contact_id", "company_id")


@dataclass
class Instance:
    """A built benchmark database and a config directory pointing at it."""

    backend: str
    size: int
    database_url: str
    config_dir: Path
    built_seconds: float | None  # None: reused from the cache
    counts: dict[str, int]


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> list[str]:
    """A 100-slot lookup list for fast weighted choice."""
    out: list[str] = []
    for value, weight in table:
        out.extend([value] * weight)
    return out


def lead_rows(size: int, tenant_ids: dict[str, int], owners: dict[str, list[int]], now: dt.datetime) -> Iterator[tuple[Any, ...]]:
    """size acme leads and size // 5 beta leads, interleaved 5:1, in LEAD_COLUMNS order."""
    rng = random.Random(SEED)
    statuses, sources, priorities = _weighted(rng, STATUSES), _weighted(rng, SOURCES), _weighted(rng, PRIORITIES)
    beta_count = size // 5
    total = size + beta_count
    start = now - SPAN - dt.timedelta(days=1)
    step = SPAN / max(total, 1)
    counters = {"acme": 0, "beta": 0}
    previous_created = start
    for i in range(total):
        slug = "beta" if (i % 6 == 5 and counters["beta"] < beta_count) else "acme"
        if slug == "acme" and counters["acme"] >= size:
            slug = "beta"
        n = counters[slug]
        counters[slug] += 1
        r = rng.random()
        if r < 0.05:
            created = previous_created  # an import: same timestamp as the row before
        else:
            created = start + step * i + dt.timedelta(seconds=rng.uniform(-172800, 172800))
            created = created.replace(microsecond=rng.randrange(0, 1_000_000, 1000) if r < 0.7 else 0)
        previous_created = created
        updated = created + dt.timedelta(seconds=rng.randrange(0, 30 * 86400))
        status = statuses[rng.randrange(100)]
        first, last = FIRST[rng.randrange(len(FIRST))], LAST[rng.randrange(len(LAST))]
        company = COMPANIES[rng.randrange(len(COMPANIES))] if rng.random() < 0.8 else None
        email = f"{first.lower()}.{n}@{slug}-lead.example" if rng.random() < 0.9 else None
        phone = f"+49301{rng.randrange(1000000, 9999999)}" if rng.random() < 0.6 else None
        owner = owners[slug][rng.randrange(USERS_PER_TENANT)] if rng.random() < 0.85 else None
        value = decimal.Decimal(rng.randrange(5000, 5000000)) / 100 if rng.random() < 0.6 else None
        last_contact = updated if rng.random() < 0.5 else None
        bant = rng.random() < 0.25
        custom = json.dumps({"segment": rng.choice(("smb", "mid", "enterprise"))}, sort_keys=True) if rng.random() < 0.1 else "{}"
        yield (
            tenant_ids[slug],
            created,
            updated,
            1 + (rng.random() < 0.3) + (rng.random() < 0.1),
            custom,
            f"{first} {last}",
            email,
            phone,
            company,
            sources[rng.randrange(100)],
            status,
            priorities[rng.randrange(100)],
            owner,
            value,
            last_contact,
            "10-50k" if bant else None,
            "decision maker" if bant and rng.random() < 0.5 else None,
            "Wants to replace spreadsheets and get a pipeline view." if bant else None,
            "this quarter" if bant and rng.random() < 0.5 else None,
            updated if status == "converted" else None,
            None,
            None,
        )


# --------------------------------------------------------------------------- backends


def _pg_connect(url: str):
    import psycopg2

    p = urlparse(url)
    return psycopg2.connect(dbname=p.path.lstrip("/"), host=p.hostname or "127.0.0.1", port=p.port or 5432, user=p.username, password=p.password)


def ensure_pg_database(pg_url: str) -> None:
    """Create the benchmark database (``crm_bench``) when it does not exist."""
    import psycopg2

    p = urlparse(pg_url)
    name = p.path.lstrip("/")
    admin = psycopg2.connect(dbname="postgres", host=p.hostname or "127.0.0.1", port=p.port or 5432, user=p.username, password=p.password)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()


def _meta_ready(backend: str, location: Any) -> dict[str, Any] | None:
    """The bench_meta 'ready' record, if the database was built completely."""
    try:
        if backend == "sqlite":
            import sqlite3

            if not Path(location).exists():
                return None
            conn = sqlite3.connect(location)
            try:
                row = conn.execute("SELECT value FROM bench_meta WHERE key = 'ready'").fetchone()
            finally:
                conn.close()
        else:
            url, schema = location
            conn = _pg_connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute(f'SELECT value FROM "{schema}".bench_meta WHERE key = %s', ("ready",))
                    row = cur.fetchone()
            finally:
                conn.close()
    except Exception:
        return None
    if row is None:
        return None
    meta = json.loads(row[0])
    return meta if meta.get("generator") == GENERATOR_VERSION else None


def write_config(config_dir: Path, database_url: str, instance_dir: Path) -> None:
    """crm.toml + two tenant files, as CrmEnv writes them."""
    (config_dir / "tenants").mkdir(parents=True, exist_ok=True)
    (config_dir / "crm.toml").write_text(tomli_w.dumps({
        "database_url": database_url,
        "redis_url": "",
        "secret_key": "bench-secret-not-for-production",
        "instance_dir": str(instance_dir),
        # counted on every request as in production, but high enough that the bench's
        # thousands of requests a minute are never refused
        "api_rate_per_minute": 1_000_000,
    }))
    for slug, name in TENANTS:
        (config_dir / "tenants" / f"{slug}.toml").write_text(tomli_w.dumps({"name": name, "hostnames": [f"{slug}.test"], "plugins": []}))


def prepare(backend: str, size: int, cache_dir: Path, pg_url: str, workdir: Path, rebuild: bool = False, log: Any = print) -> Instance:
    """The cached database for (backend, size), built now if missing; plus a config dir."""
    if backend == "sqlite":
        db_dir = cache_dir / f"sqlite-{size}"
        db_path = db_dir / "crm.db"
        database_url = f"sqlite:///{db_path}"
        location: Any = str(db_path)
    else:
        ensure_pg_database(pg_url)
        schema = f"bench_{size}"
        sep = "&" if "?" in pg_url else "?"
        database_url = f"{pg_url}{sep}search_path={schema}"
        location = (pg_url, schema)

    config_dir = workdir / f"config-{backend}-{size}"
    write_config(config_dir, database_url, workdir / f"instance-{backend}-{size}")
    meta = None if rebuild else _meta_ready(backend, location)
    if meta is not None and meta.get("size") == size:
        _migrate(config_dir)
        if schema_signature(backend, location) == reference_signature(backend, pg_url, workdir):
            return Instance(backend, size, database_url, config_dir, None, meta["counts"])
        log("  the cached database's schema differs from what the migrations create now: rebuilding")

    # Start from nothing: a fresh file / schema.
    if backend == "sqlite":
        shutil.rmtree(db_dir, ignore_errors=True)
        db_dir.mkdir(parents=True)
    else:
        conn = _pg_connect(pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cur.execute(f'CREATE SCHEMA "{schema}"')
        conn.close()
    started = time.perf_counter()
    counts = _build(backend, size, database_url, config_dir, location, log)
    elapsed = time.perf_counter() - started
    _write_meta(backend, location, {"generator": GENERATOR_VERSION, "size": size, "counts": counts, "built_seconds": round(elapsed, 1), "built_at": dt.datetime.now().isoformat(timespec="seconds")})
    return Instance(backend, size, database_url, config_dir, elapsed, counts)


def _write_meta(backend: str, location: Any, meta: dict[str, Any]) -> None:
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(location)
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR REPLACE INTO bench_meta VALUES ('ready', ?)", (json.dumps(meta),))
        conn.close()
    else:
        url, schema = location
        conn = _pg_connect(url)
        with conn, conn.cursor() as cur:
            cur.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".bench_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
            cur.execute(f'INSERT INTO "{schema}".bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', ("ready", json.dumps(meta)))
        conn.close()


def _app(config_dir: Path) -> Any:
    from crmcore.app import create_app

    return create_app(config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})


def _close_app(app: Any) -> None:
    from crmcore import db

    app.extensions["crm"].shutdown()
    if db.database.obj is not None:
        if hasattr(db.database.obj, "close_all"):
            db.database.obj.close_all()
        elif not db.database.is_closed():
            db.database.close()


def _migrate(config_dir: Path) -> None:
    """Apply the pending migrations (the real ones) to the config's database."""
    from crmcore.migrations import migrate

    app = _app(config_dir)
    try:
        with app.app_context():
            migrate(app.extensions["crm"].host, report=lambda m: None)
    finally:
        _close_app(app)


def schema_signature(backend: str, location: Any) -> list[Any]:
    """Columns, indexes and AUTOINCREMENT of the CRM tables (bench_meta aside)."""
    out: list[Any] = []
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(location)
        try:
            tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'bench_meta' ORDER BY name").fetchall()
            for name, sql in tables:
                cols = [tuple(r[1:]) for r in conn.execute(f'PRAGMA table_info("{name}")')]
                out.append(("table", name, sorted(map(str, cols)), "AUTOINCREMENT" in (sql or "").upper()))
                for idx in conn.execute(f'PRAGMA index_list("{name}")').fetchall():
                    idx_cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{idx[1]}")')]
                    out.append(("index", name, idx[1], idx[2], idx_cols))
        finally:
            conn.close()
        return sorted(map(str, out))
    url, schema = location
    conn = _pg_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name, data_type, is_nullable, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = %s AND table_name != 'bench_meta'", (schema,))
            out += [("column",) + tuple(r) for r in cur.fetchall()]
            cur.execute("SELECT tablename, indexname, replace(indexdef, %s, '') FROM pg_indexes WHERE schemaname = %s AND tablename != 'bench_meta'", (f"{schema}.", schema))
            out += [("index",) + tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
    return sorted(map(str, out))


def reference_signature(backend: str, pg_url: str, workdir: Path) -> list[Any]:
    """The schema the migrations give an empty database now."""
    ref_dir = workdir / f"reference-{backend}"
    if backend == "sqlite":
        path = ref_dir / "ref.db"
        ref_dir.mkdir(parents=True, exist_ok=True)
        write_config(ref_dir / "config", f"sqlite:///{path}", ref_dir / "instance")
        _migrate(ref_dir / "config")
        return schema_signature("sqlite", str(path))
    schema = f"bench_ref_{os.getpid()}"
    conn = _pg_connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in pg_url else "?"
        write_config(ref_dir / "config", f"{pg_url}{sep}search_path={schema}", ref_dir / "instance")
        _migrate(ref_dir / "config")
        return schema_signature("postgres", (pg_url, schema))
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def _build(backend: str, size: int, database_url: str, config_dir: Path, location: Any, log: Any) -> dict[str, int]:
    """Migrate with the real migrations, then bulk load users, tags, leads, taggings."""
    from crmcore import db
    from crmcore.entities.models import Tag
    from crmcore.migrations import migrate
    from crmcore.models import User

    app = _app(config_dir)
    crm = app.extensions["crm"]
    try:
        with app.app_context():
            migrate(crm.host, report=lambda m: None)
            with db.connection():
                tenants = {slug: crm.tenant(slug) for slug, _ in TENANTS}
                tenant_ids = {slug: t.id for slug, t in tenants.items()}
                owners: dict[str, list[int]] = {}
                tag_ids: dict[str, list[int]] = {}
                for slug, tenant in tenants.items():
                    with db.tenant_context(tenant), db.atomic():
                        User.insert_many([{"tenant": tenant.id, "email": f"agent{i}@{slug}.example", "name": f"Agent {i}", "role": "agent" if i else "manager"} for i in range(USERS_PER_TENANT)]).execute()
                        owners[slug] = [u.id for u in User.select(User.id).order_by(User.id)]
                        Tag.insert_many([{"tenant": tenant.id, "name": n} for n in TAG_NAMES]).execute()
                        tag_ids[slug] = [t.id for t in Tag.select(Tag.id).order_by(Tag.id)]
        now = db.utcnow()
        started = time.perf_counter()
        rows = lead_rows(size, tenant_ids, owners, now)
        if backend == "sqlite":
            _load_sqlite(location, rows, tenant_ids, tag_ids)
        else:
            _load_pg(location, rows, tenant_ids, tag_ids)
        log(f"  loaded {size + size // 5:,} leads in {time.perf_counter() - started:.1f}s")
        return _counts(backend, location)
    finally:
        _close_app(app)


TAGGING_SQL = """
INSERT INTO crm_tagging (tenant_id, tag_id, entity, entity_id)
SELECT tenant_id, CASE WHEN tenant_id = {acme} THEN {acme_tag0} ELSE {beta_tag0} END + {pick}, 'lead', id
FROM crm_lead WHERE {where}
"""


def _tagging_statements(tenant_ids: dict[str, int], tag_ids: dict[str, list[int]]) -> list[str]:
    """Taggings in SQL: a tag from the first six for every third lead, one from the last
    six for every fifth (so some leads have two; unique per lead and tag)."""
    fmt = {"acme": tenant_ids["acme"], "acme_tag0": tag_ids["acme"][0], "beta_tag0": tag_ids["beta"][0]}
    return [
        TAGGING_SQL.format(**fmt, pick="((id / 3) % 6)", where="id % 3 = 0"),
        TAGGING_SQL.format(**fmt, pick="(6 + (id / 5) % 6)", where="id % 5 = 0"),
    ]


def _load_sqlite(path: str, rows: Iterator[tuple[Any, ...]], tenant_ids: dict[str, int], tag_ids: dict[str, list[int]]) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = off")
    conn.execute("PRAGMA cache_size = -200000")
    insert = f"INSERT INTO crm_lead ({', '.join(LEAD_COLUMNS)}) VALUES ({', '.join('?' * len(LEAD_COLUMNS))})"

    def adapt(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # Store as peewee does: datetimes 'YYYY-MM-DD HH:MM:SS[.ffffff]', decimals as text.
        return tuple(str(v) if isinstance(v, (dt.datetime, decimal.Decimal)) else v for v in row)

    conn.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(adapt(row))
        if len(batch) >= 10000:
            conn.executemany(insert, batch)
            batch.clear()
    if batch:
        conn.executemany(insert, batch)
    for sql in _tagging_statements(tenant_ids, tag_ids):
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _load_pg(location: tuple[str, str], rows: Iterator[tuple[Any, ...]], tenant_ids: dict[str, int], tag_ids: dict[str, list[int]]) -> None:
    url, schema = location
    conn = _pg_connect(url)
    with conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{schema}"')
        buf = io.StringIO()
        n = 0

        def flush() -> None:
            buf.seek(0)
            cur.copy_expert(f"COPY crm_lead ({', '.join(LEAD_COLUMNS)}) FROM STDIN", buf)
            buf.seek(0)
            buf.truncate()

        for row in rows:
            buf.write("\t".join("\\N" if v is None else str(v) for v in row))
            buf.write("\n")
            n += 1
            if n % 50000 == 0:
                flush()
        flush()
        for sql in _tagging_statements(tenant_ids, tag_ids):
            cur.execute(sql)
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{schema}"')
        cur.execute("VACUUM ANALYZE crm_lead")
        cur.execute("VACUUM ANALYZE crm_tagging")
        cur.execute("ANALYZE")
    conn.close()


def _counts(backend: str, location: Any) -> dict[str, int]:
    sql = "SELECT (SELECT count(*) FROM crm_lead), (SELECT count(*) FROM crm_tagging), (SELECT count(*) FROM crm_users)"
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(location)
        leads, taggings, users = conn.execute(sql).fetchone()
        conn.close()
    else:
        url, schema = location
        conn = _pg_connect(url)
        with conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}"')
            cur.execute(sql)
            leads, taggings, users = cur.fetchone()
        conn.close()
    return {"leads": leads, "taggings": taggings, "users": users}
