"""pytest fixtures for the CRM and for plugin authors (registered as the ``crm`` pytest plugin).

On a real database: a SQLite file per test by default; with ``CRM_TEST_DATABASE_URL``
set to a PostgreSQL URL, a fresh schema per test in that database (dropped afterwards).

Fixtures:

* ``crm_env`` -- a temporary instance: config dir, database, helpers to write tenants.
* ``app`` -- the app for ``crm_env`` with its migrations applied (tenant ``acme`` on
  host ``acme.test`` unless the test wrote its own tenants first).
* ``client`` -- a Flask test client for ``acme``; ``crm_env.client(slug)`` for others.
* ``tenant_factory`` -- ``tenant_factory("beta", plugins=[...], settings={...})``.
* ``register_plugin`` -- register a tiny plugin object for one test (Datasette style).
* ``captured_signals`` -- ``with captured_signals("entity_created") as sent: ...``.
"""

from __future__ import annotations

import contextlib
import os
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


class CrmEnv:
    """A throw-away CRM instance: config files, a database, and ways to use them."""

    def __init__(self, root: Path, database_url: str, redis_url: str = ""):
        self.root = root
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
        from crmcore.migrations import migrate as run_migrations

        app = create_app(self.config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")})
        self.apps.append(app)
        if migrate:
            with app.app_context():
                run_migrations(app.extensions["crm"].host, report=lambda m: None)
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
        schema = f"t_{uuid.uuid4().hex[:12]}"
        _pg_admin(base, f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in base else "?"
        try:
            yield f"{base}{sep}search_path={schema}"
        finally:
            _pg_admin(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        yield f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture
def crm_env(tmp_path: Path, crm_database_url: str) -> Iterator[CrmEnv]:
    env = CrmEnv(tmp_path, crm_database_url)
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
