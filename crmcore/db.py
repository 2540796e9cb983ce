"""Database: one peewee database per app, tenant scoping, and after-commit hooks.

* ``database`` is the proxy every model binds to (an :class:`AppDatabaseProxy`). Each
  app has its own database (``init_database`` builds it from a URL: SQLite, the embedded
  default, a file in the instance folder, WAL, foreign keys, busy timeout; or pooled
  PostgreSQL), and the proxy resolves, at each use, to the database of the current
  Flask app (its ``app.extensions["crm"].database``); outside any app context (worker
  threads, the command line, scripts) to the one bound with :func:`using`, else the most
  recently initialised one. So two apps in one process (tests, embedding) never share one.
* :class:`TenantModel` is the base of every tenant-owned table: its ``select``, ``update``
  and ``delete`` are filtered by the current tenant, and new rows get the current tenant,
  so forgetting a filter cannot leak another tenant's rows. Without a current tenant
  those queries raise :class:`NoTenantError` instead of silently reading everything.
* :func:`atomic` is ``database.atomic()`` plus :func:`on_commit` callbacks, which is how
  signals are sent after the transaction commits (and never when it rolls back). On
  SQLite every transaction takes the write lock up front (``BEGIN IMMEDIATE``), so
  concurrent writers queue under the busy timeout instead of failing.
* Every wait is bounded (lock, busy and statement timeouts from crm.toml's
  ``[database]``); :func:`is_busy_error` recognises the errors they raise.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlparse

import peewee
import psycopg2.extensions
from playhouse.pool import PooledPostgresqlDatabase

try:  # Flask's own app-context variable: one lookup per use instead of current_app's proxy
    from flask.globals import _cv_app as _flask_app_context
except ImportError:  # pragma: no cover - a Flask without it: no per-app resolution
    _flask_app_context = contextvars.ContextVar("crm_no_app_context", default=None)

#: A database bound for this context outside any app context (see :func:`using`).
_bound: contextvars.ContextVar["peewee.Database | None"] = contextvars.ContextVar("crm_bound_database", default=None)


class AppDatabaseProxy(peewee.DatabaseProxy):
    """A :class:`peewee.DatabaseProxy` whose ``obj`` is the current app's database.

    Resolved at each use: the database of the Flask app whose context is current
    (``app.extensions["crm"].database``); outside any app context, the one bound with
    :func:`using`, else the most recently initialised one (``initialize``)."""

    __slots__ = ("_latest",)

    def __init__(self) -> None:
        object.__setattr__(self, "_latest", None)
        super().__init__()

    @property  # type: ignore[override]
    def obj(self) -> peewee.Database | None:
        ctx = _flask_app_context.get(None)
        if ctx is not None:
            app_database = getattr(ctx.app.extensions.get("crm"), "database", None)
            if app_database is not None:
                return app_database
        bound = _bound.get()
        return bound if bound is not None else self._latest

    @obj.setter
    def obj(self, value: peewee.Database | None) -> None:
        object.__setattr__(self, "_latest", value)

    def __setattr__(self, attr: str, value: Any) -> None:
        # peewee's Proxy only allows its own slots, checked against the class's __slots__;
        # ``obj`` (the property above) is among them.
        if attr not in ("obj", "_callbacks", "_Model", "_latest"):
            raise AttributeError("Cannot set attribute on proxy.")
        object.__setattr__(self, attr, value)


database = AppDatabaseProxy()


class NoTenantError(RuntimeError):
    """A tenant-scoped query ran with no current tenant (a bug in the caller)."""


def utcnow() -> dt.datetime:
    """Naive UTC now: how every timestamp is stored (both backends compare them alike)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# --------------------------------------------------------------------------- connection


#: Defaults of crm.toml's [database] section (crmcore.config.DatabaseSettingsSchema).
LOCK_TIMEOUT_SECONDS = 5.0
BUSY_TIMEOUT_SECONDS = 10.0
STATEMENT_TIMEOUT_SECONDS = 30.0


#: A pooled connection returned this recently is handed out again without a round trip.
PING_AFTER_IDLE_SECONDS = 1.0


class CheckedPool(PooledPostgresqlDatabase):
    """peewee's PostgreSQL pool, without a ``SELECT 1`` for every request.

    peewee checks each connection it hands out with a round trip. Here a connection that
    came back to the pool less than ``PING_AFTER_IDLE_SECONDS`` ago, idle and open, is
    handed out as it is (a busy pool's connections are milliseconds old); one idle for
    longer is checked as before, so a database restart during a quiet spell costs no
    request. (HikariCP does the same, with a 500 ms window.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def _is_closed(self, conn: Any) -> bool:
        returned = self._returned_at.pop(conn, None)
        if conn.closed:
            return True
        fresh = returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS
        if fresh and conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            return False
        return super()._is_closed(conn)

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if not close_conn and not conn.closed:
            self._returned_at[conn] = time.monotonic()


def make_database(url: str, instance_dir: Path | str | None = None, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS, busy_timeout: float = BUSY_TIMEOUT_SECONDS, statement_timeout: float = STATEMENT_TIMEOUT_SECONDS) -> peewee.Database:
    """Build a peewee database from a URL: ``sqlite:///crm.db`` or ``postgresql://...``.

    A relative SQLite path is relative to the instance folder. ``?search_path=s`` on a
    PostgreSQL URL selects a schema (the test suite gives each test its own).

    Every wait is bounded (seconds): ``lock_timeout`` for a lock on PostgreSQL,
    ``busy_timeout`` for SQLite's write lock, ``statement_timeout`` for one statement
    (PostgreSQL only).
    When one runs out the statement fails with an error :func:`is_busy_error` recognises
    (the web app answers 503 with Retry-After).

    On SQLite every transaction begins ``IMMEDIATE``: it takes the database's write lock
    up front, waiting its turn under the busy timeout. A deferred transaction that reads
    (say, the duplicate-email check) then writes asks for the lock only at the write, and
    SQLite refuses that upgrade at once with "database is locked" whenever another writer
    holds it, without ever applying the busy timeout. Reads outside a transaction (every
    plain GET) take no write lock and, under WAL, never wait for a writer.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        raw = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if raw in ("", ":memory:"):
            path = ":memory:"
        else:
            p = Path(raw)
            if not p.is_absolute():
                p = Path(instance_dir or ".") / p
            p.parent.mkdir(parents=True, exist_ok=True)
            path = str(p)
        return peewee.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": max(1, int(busy_timeout * 1000)),
                "synchronous": "normal",
            },
            lock_type="IMMEDIATE",
        )
    if parsed.scheme in ("postgres", "postgresql"):
        params = dict(parse_qsl(parsed.query))
        kwargs: dict[str, Any] = {
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
        }
        # Session settings for every pooled connection, after any the URL's own options set.
        options = [params.pop("options", "")]
        search_path = params.pop("search_path", None)
        if search_path:
            options.append(f"-c search_path={search_path}")
        options.append(f"-c lock_timeout={max(1, int(lock_timeout * 1000))}")
        options.append(f"-c statement_timeout={max(1, int(statement_timeout * 1000))}")
        kwargs["options"] = " ".join(o for o in options if o)
        kwargs.update(params)
        return CheckedPool(
            parsed.path.lstrip("/"),
            max_connections=int(kwargs.pop("max_connections", 32)),
            stale_timeout=300,
            timeout=10,
            **{k: v for k, v in kwargs.items() if v is not None},
        )
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///... or postgresql://...")


def init_database(url: str, instance_dir: Path | str | None = None, **timeouts: float) -> peewee.Database:
    """Build the database for ``url`` and return it; it is also what the proxy resolves to
    outside any app context until another is initialised. The caller (``create_app``)
    keeps it as its app's database; an app made before keeps its own (not closed here).
    ``timeouts``: ``lock_timeout``, ``busy_timeout``, ``statement_timeout`` of :func:`make_database`."""
    db = make_database(url, instance_dir, **timeouts)
    database.initialize(db)
    return db


@contextmanager
def using(db: peewee.Database) -> Iterator[peewee.Database]:
    """Make ``db`` the database of the block in this context when no app context is
    current (threads of an app that run outside its app context: a worker's loop, the
    scheduler's lease). Inside an app context the app's own database is used."""
    token = _bound.set(db)
    try:
        yield db
    finally:
        _bound.reset(token)


@contextmanager
def connection() -> Iterator[None]:
    """An open connection for the block; closed afterwards only if this opened it
    (peewee's connection_context() would also close a connection the caller holds)."""
    opened = database.is_closed()
    if opened:
        database.connect()
    try:
        yield
    finally:
        if opened and not database.is_closed():
            database.close()


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


#: SQLite's messages for a lock it waited for in vain (the busy timeout ran out).
_SQLITE_BUSY_MESSAGES = ("database is locked", "database table is locked", "database schema is locked")
#: PostgreSQL's SQLSTATEs for a wait or a run that was cut short, or a transaction it
#: chose to abort for another's sake: worth retrying as they are.
_PG_BUSY_CODES = {
    "55P03",  # lock_not_available: lock_timeout ran out (or NOWAIT)
    "57014",  # query_canceled: statement_timeout ran out
    "40P01",  # deadlock_detected
    "40001",  # serialization_failure
}


def is_busy_error(exc: BaseException) -> bool:
    """Whether ``exc`` (a peewee error, or the driver's own) says the database was too
    busy: a lock not granted within the lock (busy) timeout, a statement past the
    statement timeout, a deadlock. Such a request can be retried unchanged; any other
    database error (a missing table, bad SQL) cannot, and is not one of these."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        err = pending.pop()
        if err is None or any(err is s for s in seen) or len(seen) > 8:
            continue
        seen.append(err)
        if getattr(err, "pgcode", None) in _PG_BUSY_CODES:
            return True
        if "OperationalError" in {c.__name__ for c in type(err).__mro__} and str(err).lower().startswith(_SQLITE_BUSY_MESSAGES):
            return True
        pending.extend((getattr(err, "orig", None), err.__cause__, err.__context__))
    return False


@contextmanager
def no_timeouts() -> Iterator[None]:
    """Lift PostgreSQL's lock and statement timeouts on this connection for the block
    (migrations: an index on a big table, a wait for another ``crm migrate``). The
    connection must stay open for the whole block; the settings are restored after."""
    if not is_postgres():
        yield
        return
    database.execute_sql("SET lock_timeout = 0")
    database.execute_sql("SET statement_timeout = 0")
    try:
        yield
    finally:
        # RESET returns to the connection's own defaults (the options it was opened with).
        database.execute_sql("RESET lock_timeout")
        database.execute_sql("RESET statement_timeout")


# --------------------------------------------------------------------------- transactions

_local = threading.local()


@contextmanager
def atomic() -> Iterator[Any]:
    """A transaction (or savepoint when nested) whose :func:`on_commit` callbacks run
    after the outermost transaction commits, and are dropped if it rolls back."""
    stack: list[list[Callable[[], Any]]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    stack.append([])
    try:
        with database.atomic() as txn:
            yield txn
    except BaseException:
        stack.pop()
        raise
    callbacks = stack.pop()
    if stack:  # a savepoint: its callbacks wait for the outer transaction
        stack[-1].extend(callbacks)
        return
    for callback in callbacks:
        callback()


def on_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` after the current :func:`atomic` block commits (now if none)."""
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].append(callback)
    else:
        callback()


# --------------------------------------------------------------------------- tenancy

_current_tenant: contextvars.ContextVar["Tenant | None"] = contextvars.ContextVar(
    "crm_current_tenant", default=None
)


def current_tenant() -> "Tenant | None":
    """The tenant of the current request, job or task, or None."""
    return _current_tenant.get()


def require_tenant_id() -> int:
    tenant = _current_tenant.get()
    if tenant is None:
        raise NoTenantError(
            "tenant-scoped query without a current tenant; wrap it in tenant_context(tenant)"
        )
    return tenant.id


@contextmanager
def tenant_context(tenant: "Tenant | None") -> Iterator["Tenant | None"]:
    """Make ``tenant`` the current tenant inside the block."""
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


class IdField(peewee.AutoField):
    """An auto-increment primary key that is never reused.

    SQLite's plain INTEGER PRIMARY KEY hands the id of a deleted newest row to the next
    insert; ids are in audit trails, ETags ("id-version") and URLs, so a reused id would
    mix two records' histories. AUTOINCREMENT forbids reuse; PostgreSQL sequences never
    reuse anyway.
    """

    def ddl(self, ctx: Any) -> Any:
        node = super().ddl(ctx)
        if isinstance(database.obj, peewee.SqliteDatabase):
            node = peewee.NodeList((node, peewee.SQL("AUTOINCREMENT")))
        return node


class BaseModel(peewee.Model):
    """Base of every model: bound to the shared database proxy."""

    id = IdField()

    class Meta:
        database = database
        legacy_table_names = False


class Tenant(BaseModel):
    """A company using this CRM instance. Its configuration lives in config/tenants/<slug>.toml;
    this row gives it a stable id for foreign keys."""

    slug = peewee.CharField(max_length=64, unique=True)
    name = peewee.CharField(max_length=200)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_tenants"

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"


class TenantModel(BaseModel):
    """Base of tenant-owned models: every normal query is scoped to the current tenant."""

    tenant = peewee.ForeignKeyField(
        Tenant, on_delete="CASCADE", index=True, default=require_tenant_id, backref="+"
    )

    @classmethod
    def select(cls, *fields: Any) -> peewee.ModelSelect:
        return super().select(*fields).where(cls.tenant == require_tenant_id())

    @classmethod
    def update(cls, __data: Any = None, **update: Any) -> peewee.ModelUpdate:
        return super().update(__data, **update).where(cls.tenant == require_tenant_id())

    @classmethod
    def delete(cls) -> peewee.ModelDelete:
        return super().delete().where(cls.tenant == require_tenant_id())

    @classmethod
    def select_all_tenants(cls, *fields: Any) -> peewee.ModelSelect:
        """An unscoped select, for cross-tenant maintenance code only (say why at the call)."""
        return super().select(*fields)

    @classmethod
    def update_all_tenants(cls, __data: Any = None, **update: Any) -> peewee.ModelUpdate:
        """An unscoped update, for cross-tenant maintenance code only (say why at the call)."""
        return super().update(__data, **update)
