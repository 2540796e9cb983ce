"""pytest fixtures for the CRM and for plugin authors (registered as the ``crm`` pytest plugin).

On a real database: a SQLite file per test by default; with ``CRM_TEST_DATABASE_URL``
set to a PostgreSQL URL, a fresh database per test on that server (dropped afterwards).
Migrations run once per test session: the first app of a session migrates its empty
database, which is then kept as the template every later test's database is copied from
(a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL). A test whose app
declares other migrations (a plugin registered by the test) gets a template of its own.

Fixtures:

* ``crm_env`` -- a temporary instance: config dir, database, helpers to write tenants.
* ``app`` -- the app for ``crm_env`` with its migrations applied (tenant ``acme`` on
  host ``acme.test`` unless the test wrote its own tenants first).
* ``client`` -- a Flask test client for ``acme``; ``crm_env.client(slug)`` for others.
* ``tenant_factory`` -- ``tenant_factory("beta", plugins=[...], settings={...})``.
* ``register_plugin`` -- register a tiny plugin object for one test (Datasette style).
* ``captured_signals`` -- ``with captured_signals("entity_created") as sent: ...``.

Helpers: ``Api(env, slug, token)`` (calls /api/v1 as one token), ``in_tenant(env, slug)``
(a context with the tenant current), ``drain_tasks(env)`` (runs the task queue dry),
``serving(app)`` (the app on a loopback port, for a browser).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import tomli_w

from crmcore import auth, db
from crmcore.signals import signal


def _pg_admin(url: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


# --------------------------------------------------------------------------- templates


def _pg_database_url(base: str, name: str) -> str:
    """``base`` (a PostgreSQL URL) pointed at database ``name``, its query kept."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name))


class _Templates:
    """Migrated template databases of this test process, one per set of declared
    migrations; dropped when the process ends."""

    def __init__(self) -> None:
        self.by_fingerprint: dict[tuple[tuple[str, str], ...], str] = {}
        self.folder: Path | None = None
        self.pg_base = ""
        atexit.register(self.drop_all)

    def get(self, fingerprint: tuple[tuple[str, str], ...]) -> str | None:
        return self.by_fingerprint.get(fingerprint)

    def keep(self, fingerprint: tuple[tuple[str, str], ...], database_url: str, app: Any) -> None:
        """Keep the freshly migrated database of ``database_url`` as the template."""
        _close_app_database(app)
        if database_url.startswith("postgres"):
            name = f"crm_tpl_{uuid.uuid4().hex[:12]}"
            self.pg_base = _admin_url(database_url)
            _pg_admin(self.pg_base, f'CREATE DATABASE "{name}" TEMPLATE "{_pg_name(database_url)}"')
            self.by_fingerprint[fingerprint] = name
        else:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="crm-templates-"))
            target = self.folder / f"{len(self.by_fingerprint)}.db"
            source = sqlite3.connect(_sqlite_path(database_url))
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)  # consistent whatever is still in the WAL
            finally:
                copy.close()
                source.close()
            self.by_fingerprint[fingerprint] = str(target)

    def copy_into(self, template: str, database_url: str) -> None:
        if database_url.startswith("postgres"):
            name = _pg_name(database_url)
            admin = _admin_url(database_url)
            _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg_admin(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            shutil.copyfile(template, _sqlite_path(database_url))

    def drop_all(self) -> None:
        for template in self.by_fingerprint.values():
            if self.pg_base and not template.endswith(".db"):
                with contextlib.suppress(Exception):
                    _pg_admin(self.pg_base, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.by_fingerprint.clear()


_templates = _Templates()


def _sqlite_path(database_url: str) -> str:
    return database_url.removeprefix("sqlite:///").split("?", 1)[0]


def _pg_name(database_url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(database_url).path.lstrip("/")


def _admin_url(database_url: str) -> str:
    """The server's maintenance database ``postgres``: CREATE/DROP DATABASE run there."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(database_url)._replace(path="/postgres", query=""))


def _close_app_database(app: Any) -> None:
    database = app.extensions["crm"].database
    if hasattr(database, "close_all"):
        database.close_all()
    elif not database.is_closed():
        database.close()


def _is_fresh(database_url: str) -> bool:
    """An empty per-test database this module made (never someone else's database)."""
    if database_url.startswith("postgres"):
        return _pg_name(database_url) in _fresh_pg_databases
    path = _sqlite_path(database_url)
    return bool(path) and path != ":memory:" and not os.path.exists(path)


#: Per-test PostgreSQL databases made by ``crm_database_url`` that nothing has used yet.
_fresh_pg_databases: set[str] = set()


class CrmEnv:
    """A throw-away CRM instance: config files, a database, and ways to use them."""

    def __init__(self, root: Path, database_url: str, redis_url: str = "", use_templates: bool = False):
        self.root = root
        #: Copy the session's migrated template into a fresh database instead of
        #: migrating it (the ``crm_env`` fixture's databases).
        self.use_templates = use_templates
        self.config_dir = root / "config"
        (self.config_dir / "tenants").mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.instance: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": "test-secret-" + uuid.uuid4().hex,
            "tasks": {"backoff_seconds": 0.05, "lease_seconds": 30.0, "poll_seconds": 0.05},
            # Off: a test's API calls (a fuzz run: thousands a minute) are not throttled;
            # a test of the limit sets it with write_instance(api_rate_per_minute=...).
            "api_rate_per_minute": 0,
        }
        self.write_instance()
        self.apps: list[Any] = []

    def write_instance(self, **changes: Any) -> Path:
        self.instance.update(changes)
        path = self.config_dir / "crm.toml"
        path.write_text(tomli_w.dumps(self.instance))
        return path

    def write_tenant(self, slug: str, name: str | None = None, hostnames: list[str] | None = None, plugins: list[str] | tuple[str, ...] = (), settings: dict[str, Any] | None = None, **extra: Any) -> Path:
        body: dict[str, Any] = {"name": name or slug.title(), "hostnames": hostnames if hostnames is not None else [f"{slug}.test"], "plugins": list(plugins), **extra}
        if settings:
            body["settings"] = settings
        path = self.config_dir / "tenants" / f"{slug}.toml"
        path.write_text(tomli_w.dumps(body))
        # Make sure a reload notices the change even within one mtime tick.
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        return path

    def create_app(self, migrate: bool = True) -> Any:
        from crmcore.app import create_app
        from crmcore.migrations import declared
        from crmcore.migrations import migrate as run_migrations

        app = create_app(self.config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})
        first = not self.apps
        self.apps.append(app)
        if migrate:
            host = app.extensions["crm"].host
            fresh = first and self.use_templates and _is_fresh(self.database_url)
            fingerprint = tuple((plugin, m.name) for plugin, m in declared(host)) if fresh else ()
            template = _templates.get(fingerprint) if fresh else None
            if template is not None:
                _templates.copy_into(template, self.database_url)
            with app.app_context():
                ran = run_migrations(host, report=lambda m: None)
            if fresh and template is None and ran:
                _templates.keep(fingerprint, self.database_url, app)
        if self.database_url.startswith("postgres"):
            _fresh_pg_databases.discard(_pg_name(self.database_url))
        return app

    @property
    def app(self) -> Any:
        return self.apps[-1]

    @property
    def crm(self) -> Any:
        return self.app.extensions["crm"]

    def reload(self) -> None:
        self.crm.config_store.reload()

    def tenant(self, slug: str) -> Any:
        # In the app's context: each app has its own database (crmcore.db).
        with self.app.app_context(), db.database.connection_context():
            return self.crm.tenant(slug)

    def client(self, slug: str = "acme") -> Any:
        """A test client whose requests go to ``<slug>.test`` (the tenant's hostname)."""
        from flask.testing import FlaskClient

        class TenantClient(FlaskClient):
            def open(self, *args: Any, **kwargs: Any) -> Any:
                if not (args and not isinstance(args[0], str)):
                    kwargs.setdefault("base_url", f"http://{slug}.test")
                return super().open(*args, **kwargs)

            def session_transaction(self, *args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("base_url", f"http://{slug}.test")
                return super().session_transaction(*args, **kwargs)

        return TenantClient(self.app, self.app.response_class, use_cookies=True)

    def token(self, slug: str = "acme", role: str = "admin") -> str:
        with self.app.app_context(), db.database.connection_context():
            return auth.create_token(self.tenant(slug), role, name="test")[1]

    def login(self, client: Any, slug: str = "acme", role: str = "admin", email: str | None = None, password: str = "secret-pw") -> Any:
        """Create a user and sign ``client`` in as that user; returns the user."""
        email = email or f"{role}-{uuid.uuid4().hex[:6]}@{slug}.test"
        with self.app.app_context(), db.database.connection_context():
            user = auth.create_user(self.tenant(slug), email, password, role=role)
        client.get("/login")
        with client.session_transaction() as sess:
            csrf = sess["csrf"]
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    def csrf(self, client: Any) -> str:
        with client.session_transaction() as sess:
            return sess.setdefault("csrf", uuid.uuid4().hex)

    def close(self) -> None:
        for app in self.apps:
            app.extensions["crm"].shutdown()
        for app in self.apps:  # each app has its own database (crmcore.db)
            database = app.extensions["crm"].database
            if hasattr(database, "close_all"):
                database.close_all()
            elif not database.is_closed():
                database.close()


@pytest.fixture
def crm_database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh database for one test: SQLite file, or a PostgreSQL schema."""
    base = os.environ.get("CRM_TEST_DATABASE_URL", "")
    if base.startswith("postgres"):
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = _admin_url(base)
        _pg_admin(admin, f'CREATE DATABASE "{name}"')
        _fresh_pg_databases.add(name)
        url = _pg_database_url(base, name)
        sep = "&" if "?" in url else "?"
        try:
            yield f"{url}{sep}search_path=public"
        finally:
            _fresh_pg_databases.discard(name)
            _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture
def crm_env(tmp_path: Path, crm_database_url: str) -> Iterator[CrmEnv]:
    env = CrmEnv(tmp_path, crm_database_url, use_templates=True)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def app(crm_env: CrmEnv) -> Any:
    if not any((crm_env.config_dir / "tenants").glob("*.toml")):
        crm_env.write_tenant("acme", name="Acme Ltd")
    return crm_env.create_app()


@pytest.fixture
def client(app: Any, crm_env: CrmEnv) -> Any:
    return crm_env.client("acme")


@pytest.fixture
def tenant_factory(app: Any, crm_env: CrmEnv) -> Any:
    def make(slug: str, **kwargs: Any) -> Any:
        crm_env.write_tenant(slug, **kwargs)
        crm_env.reload()
        return crm_env.tenant(slug)

    return make


@pytest.fixture
def register_plugin(app: Any) -> Iterator[Any]:
    """``register_plugin(obj, name="x", always_on=True)``: a plugin object with
    ``@hookimpl`` methods, registered for this test only."""
    from crmcore.plugins import PluginInfo

    host = app.extensions["crm"].host
    added: list[str] = []

    def register(obj: Any, name: str, always_on: bool = True) -> Any:
        host.pm.register(obj, name=name)
        host.infos[name] = PluginInfo(name, "0", "", (), None, name, "test", hooks_module=obj, always_on=always_on)
        host._subset_cache.clear()
        added.append(name)
        return obj

    try:
        yield register
    finally:
        for name in added:
            host.unregister(name)


@pytest.fixture
def captured_signals() -> Any:
    @contextlib.contextmanager
    def capture(*names: str) -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
        sent: list[tuple[str, Any, dict[str, Any]]] = []
        receivers = []
        for name in names:
            def receiver(sender: Any, _name: str = name, **data: Any) -> None:
                sent.append((_name, sender, data))

            signal(name).connect(receiver, weak=False)
            receivers.append((name, receiver))
        try:
            yield sent
        finally:
            for name, receiver in receivers:
                signal(name).disconnect(receiver)

    return capture


# --------------------------------------------------------------------------- helpers


class Api:
    """Calls ``/api/v1`` of one tenant with one bearer token: ``api("POST", "/leads",
    {...})`` returns the JSON answer, asserting a status below 400 (or ``status=``)."""

    def __init__(self, env: CrmEnv, slug: str, token: str):
        self.client, self.token = env.client(slug), token

    def __call__(self, method: str, url: str, json: Any = None, status: int | None = None) -> Any:
        response = self.client.open(f"/api/v1{url}", method=method, json=json, headers={"Authorization": f"Bearer {self.token}"})
        if status is None:
            assert response.status_code < 400, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        else:
            assert response.status_code == status, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        return response.get_json(silent=True)


@contextlib.contextmanager
def in_tenant(env: CrmEnv, slug: str = "acme") -> Iterator[Any]:
    """The app's context, a database connection and ``slug`` as the current tenant
    (for setting up records and asserting on them in a test)."""
    tenant = env.tenant(slug)
    with env.app.app_context(), db.connection(), db.tenant_context(tenant):
        yield tenant


def drain_tasks(env: CrmEnv, timeout: float = 10.0) -> int:
    """Run the task queue in this thread until no task is queued or running (waiting
    for ones due soon); returns how many ran. Fails after ``timeout`` seconds."""
    import time

    from crmcore.models import Task
    from crmcore.tasks import Worker

    worker = Worker(env.crm, worker_id="test-worker")
    ran = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.database.connection_context():
            task = worker.run_one()
            if task is not None:
                ran += 1
                continue
            if not Task.select().where(Task.status.in_(["queued", "running"])).exists():
                return ran
        time.sleep(0.02)
    raise AssertionError("tasks still queued after the timeout")


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port (werkzeug, threaded, requests not logged)
    for a browser or a WebSocket client; yields its base URL, e.g. ``http://127.0.0.1:41234``."""
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any) -> None:
            pass

    http = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=10)
        http.server_close()


# --------------------------------------------------------------------------- browser tests

#: Flags for headless Chromium in a container: no sandbox (root), no GPU, nothing that
#: reaches out to the network (only loopback may be reached here).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """Debian's chromium (``/usr/bin/chromium``), or the binary ``CRM_CHROMIUM`` names."""
    return os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")


@contextlib.contextmanager
def chromium_browser(expect_timeout_ms: int = 5000) -> Iterator[Any]:
    """Headless Chromium driven by Playwright, for a plugin's browser tests.

    Launches the installed binary (``executable_path``): a browser is never downloaded.
    Without the playwright package or the binary the calling test is skipped, or fails
    under ``CI=true`` (where .ci/run installs chromium). Use it in a module- or
    package-scoped fixture, ended before another starts: Playwright's sync API allows one
    running instance per thread::

        @pytest.fixture(scope="module")
        def browser():
            with chromium_browser() as chromium:
                yield chromium
    """

    def unavailable(reason: str) -> None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the browser tests must run; .ci/run installs chromium)", pytrace=False)
        pytest.skip(reason)

    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("browser tests need the playwright package: pip install -e '.[test]'")
    binary = chromium_path()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        unavailable(f"browser tests need Debian's chromium at {binary} (apt-get install chromium, or set CRM_CHROMIUM)")
    expect.set_options(timeout=expect_timeout_ms)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
