"""create_app(): config -> database -> plugins -> blueprints -> signals -> realtime.

Per-app state lives in ``app.extensions["crm"]`` (a :class:`CRM`), reached from plugin
code with :func:`crm_state`. Nothing is read from the config at import time.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import flask
import peewee
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException, NotFound

from crmcore import (
    api_docs,
    auth,
    db,
    permissions,
    ratelimit,
    request_guard,
    security_headers,
    signals,
)
from crmcore.config import Config, ConfigError, ConfigStore, Problem, TenantConfig, load_instance
from crmcore.contrib import TaskHandler
from crmcore.db import Tenant, tenant_context
from crmcore.entities import context as domain_context
from crmcore.entities.errors import DomainError
from crmcore.plugins import PluginError, PluginHost
from crmcore.realtime import Hub, create_hub
from crmcore.signals import connect_receiver, signal

log = logging.getLogger("crmcore")

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class CRM:
    """Everything one CRM app owns: configuration, plugins, hub, handlers."""

    def __init__(self, app: Flask, config_store: ConfigStore, host: PluginHost, hub: Hub):
        self.app = app
        self.config_store = config_store
        self.host = host
        self.hub = hub
        #: this app's database: what ``db.database`` resolves to in its app context
        self.database: Any = None
        self.task_handlers: dict[str, TaskHandler] = {}
        self.task_plugins: dict[str, str] = {}
        self.blueprint_plugins: dict[str, str] = {}
        self.public_blueprints: set[str] = set()
        self.api_blueprints: set[str] = set()
        self.receivers: list[tuple[str, Any]] = []
        #: permission -> roles: what the built-in and other plugins declare (crm_permissions)
        self.permissions: dict[str, tuple[str, ...]] = {}
        #: (endpoint, method) -> the permission each API operation declares (or PUBLIC)
        self.operation_permissions: dict[tuple[str, str], str] = {}
        #: (plugin, rule) of who may listen to which live topics (crm_live_topic_rules)
        self.live_topic_rules: list[tuple[str, Any]] = []
        self.wake = threading.Event()
        self._tenants: dict[str, Tenant] = {}
        self._tenants_generation = -1
        self._background: list[Any] = []
        self._last_config = config_store.current
        config_store.on_reload(self._on_reload)

    # -- configuration and tenants --------------------------------------------------

    @property
    def config(self) -> Config:
        return self.config_store.current

    def _on_reload(self, new: Config) -> None:
        """Forget cached tenant rows; announce tenants whose plugins or settings changed."""
        previous, self._last_config = self._last_config, new
        self._tenants.clear()
        changed = [
            (slug, tc, previous.tenants.get(slug))
            for slug, tc in new.tenants.items()
            if previous.tenants.get(slug) is None
            or (tc.plugins, tc.settings) != (previous.tenants[slug].plugins, previous.tenants[slug].settings)
        ]
        if not changed:
            return
        with db.connection():
            for slug, tc, old in changed:
                tenant = self.tenant(slug)
                signal("tenant_config_changed").send(tenant, plugins=tc.plugins, previous=old.plugins if old else frozenset())

    def tenant(self, slug: str) -> Tenant | None:
        """The Tenant row of a configured tenant (created on first use), or None."""
        tenant_config = self.config.tenants.get(slug)
        if tenant_config is None:
            return None
        tenant = self._tenants.get(slug)
        if tenant is None:
            tenant, created = Tenant.get_or_create(slug=slug, defaults={"name": tenant_config.name})
            if created:
                signals.send("tenant_created", tenant)
            elif tenant.name != tenant_config.name:
                tenant.name = tenant_config.name
                tenant.save()
            # A row created inside a transaction may yet be rolled back: cache it only
            # once it is surely committed.
            if not db.database.in_transaction():
                self._tenants[slug] = tenant
        return tenant

    def tenant_by_id(self, tenant_id: int | None) -> Tenant | None:
        """The tenant with this id if it is still configured, else None."""
        for tenant in list(self._tenants.values()):  # a reload may clear it meanwhile
            if tenant.id == tenant_id:
                return tenant
        row = Tenant.get_or_none(Tenant.id == tenant_id) if tenant_id is not None else None
        return self.tenant(row.slug) if row is not None else None

    def tenant_config(self, tenant: Tenant | str) -> TenantConfig | None:
        slug = tenant if isinstance(tenant, str) else tenant.slug
        return self.config.tenants.get(slug)

    def enabled(self, tenant: Tenant | str | None) -> frozenset[str]:
        """The plugins on for ``tenant`` (the always-on core included)."""
        always = {n for n, i in self.host.infos.items() if i.always_on}
        tc = self.tenant_config(tenant) if tenant is not None else None
        return frozenset(always | (set(tc.plugins) if tc else set()))

    def is_enabled(self, tenant: Tenant | str | None, plugin: str) -> bool:
        info = self.host.infos.get(plugin)
        if info is not None and info.always_on:
            return True
        return plugin in self.enabled(tenant)

    def settings(self, tenant: Tenant | str, plugin: str) -> Mapping[str, Any]:
        """The plugin's validated settings for the tenant (defaults filled in)."""
        tc = self.tenant_config(tenant)
        if tc is not None and plugin in tc.settings:
            return tc.settings[plugin]
        return self.host.infos[plugin].defaults

    def hook(self, tenant: Tenant | str | None, hook_name: str) -> Any:
        """The subset hook caller for the tenant: only its enabled plugins answer."""
        return self.host.hook_for(self.enabled(tenant), hook_name)

    def call(self, tenant: Tenant | str | None, hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a runtime hook for the tenant's plugins, each contained (see PluginHost)."""
        return self.host.call_contained(self.enabled(tenant), hook_name, **kwargs)

    def call_first(self, tenant: Tenant | str | None, hook_name: str, /, **kwargs: Any) -> tuple[str, Any] | None:
        """The first answer, as (plugin, result), of a runtime (``firstresult``) hook for
        the tenant's plugins, contained: a raising plugin lets the next one answer."""
        return self.host.call_first(self.enabled(tenant), hook_name, **kwargs)

    # -- background work ----------------------------------------------------------

    def notify_worker(self) -> None:
        self.wake.set()

    def start_background(self, workers: int = 1, scheduler: bool = True) -> None:
        """Start task workers (threads) and the scheduler in this process."""
        from crmcore.jobs import Scheduler
        from crmcore.tasks import Worker

        for _ in range(workers):
            worker = Worker(self)
            thread = threading.Thread(target=worker.run_forever, name=f"crm-worker-{worker.id}", daemon=True)
            thread.start()
            self._background.append(worker)
        if scheduler:
            sched = Scheduler(self, holder=f"{os.getpid()}:{secrets.token_hex(4)}")
            sched.start()
            self._background.append(sched)

    def shutdown(self, grace: float = 20.0) -> None:
        """Stop background work, disconnect receivers, close the hub (tests, exit).

        Workers finish the task in hand first, for up to ``grace`` seconds in all; a task
        still running after that dies with the process and is retried once its lease expires."""
        for item in self._background:
            if hasattr(item, "stop"):
                item.stop()
            else:
                item.shutdown()
        deadline = time.monotonic() + grace
        for item in self._background:
            if hasattr(item, "join") and not item.join(max(0.0, deadline - time.monotonic())):
                log.warning("worker %s still busy after %.0fs; leaving its task to be retried", item.id, grace)
        self._background.clear()
        for name, receiver in self.receivers:
            signal(name).disconnect(receiver)
        self.receivers.clear()
        self.hub.close()


def crm_state() -> CRM:
    """The CRM of the current Flask app."""
    return flask.current_app.extensions["crm"]


# ---------------------------------------------------------------------------------


def _secret_key(instance_dir: Path, configured: str | None) -> str:
    """The configured secret key, else one generated once into the instance folder."""
    if configured:
        return configured
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def create_app(config_dir: str | Path | None = None, *, env: Mapping[str, str] | None = None, host: PluginHost | None = None) -> Flask:
    """Build the CRM app from a config directory (default: $CRM_CONFIG_DIR or ./config)."""
    env = os.environ if env is None else env
    config_dir = Path(config_dir or env.get("CRM_CONFIG_DIR") or "config").resolve()
    problems: list[Problem] = []
    instance = load_instance(config_dir, env, problems)
    if instance is None or problems:
        raise ConfigError(problems)

    if host is None:
        host = PluginHost()
        host.discover(instance.plugins_dir)
    store = ConfigStore(config_dir, host.infos, env)

    package_dir = Path(__file__).parent
    app = Flask("crmcore", instance_path=str(instance.instance_dir), template_folder=str(package_dir / "templates"), static_folder=str(package_dir / "static"), static_url_path="/static/crm")
    app.config.update(
        SECRET_KEY=_secret_key(instance.instance_dir, instance.secret_key),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=int(instance.session_hours * 3600),
        API_TITLE="CRM API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        JSON_SORT_KEYS=False,
    )
    request_guard.install(app)  # before any route: it replaces the <int:> converter
    timeouts = instance.database
    database = db.init_database(instance.database_url, instance.instance_dir, lock_timeout=timeouts["lock_timeout_seconds"], busy_timeout=timeouts["busy_timeout_seconds"], statement_timeout=timeouts["statement_timeout_seconds"])
    crm = CRM(app, store, host, create_hub(instance.redis_url))
    crm.database = database
    app.extensions["crm"] = crm

    _register_contributions(app, crm)
    _install_request_handling(app, crm)
    ratelimit.install(app)  # after the request's credentials are resolved
    security_headers.install(app)
    from crmcore import realtime_ws

    realtime_ws.init_app(app)
    host.call_startup("crm_startup", app=app)
    return app


def _register_contributions(app: Flask, crm: CRM) -> None:
    host = crm.host
    for plugin, models in host.call_startup("crm_models"):
        for model in models:
            if model._meta.database is not db.database:
                raise PluginError(f"plugin {plugin!r}: model {model.__name__} must subclass crmcore.db.BaseModel or TenantModel")

    # Before the API blueprints: the OpenAPI document names each operation's roles.
    crm.permissions = permissions.collect_matrix(host)
    crm.live_topic_rules = [(plugin, rule) for plugin, rules in host.call_startup("crm_live_topic_rules") for rule in rules]
    api = api_docs.LazyDocApi(app, spec_kwargs={"marshmallow_plugin": MarshmallowPlugin(schema_name_resolver=_schema_name), "info": {"description": "The CRM REST API. Authenticate with `Authorization: Bearer <token>` (`crm tokens create`)."}})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    app.extensions["crm_api"] = api
    api_docs.init_app(app, api)  # spec completion (401/403/404, error schema) and /api/v1/docs
    for plugin, blueprints in host.call_startup("crm_api_blueprints"):
        for bp in blueprints:
            _claim_blueprint(crm, plugin, bp.name)
            crm.api_blueprints.add(bp.name)
            api.register_blueprint(bp, url_prefix="/api/v1" + (bp.url_prefix or ""))
    for plugin, blueprints in host.call_startup("crm_web_blueprints"):
        for bp in blueprints:
            _claim_blueprint(crm, plugin, bp.name)
            if getattr(bp, "crm_public", False):
                crm.public_blueprints.add(bp.name)
            app.register_blueprint(bp)
    crm.operation_permissions = permissions.check_api_operations(app, crm)  # deny by default

    for plugin, handlers in host.call_startup("crm_task_handlers"):
        for handler in handlers:
            if handler.kind in crm.task_handlers:
                raise PluginError(f"task kind {handler.kind!r} declared by {crm.task_plugins[handler.kind]!r} and {plugin!r}")
            crm.task_handlers[handler.kind] = handler
            crm.task_plugins[handler.kind] = plugin

    def is_enabled(tenant: Tenant, plugin: str) -> bool:
        # Another app in the same process (tests) must not run this app's receivers.
        if flask.has_app_context() and flask.current_app._get_current_object() is not app:
            return False
        return crm.is_enabled(tenant, plugin)

    for plugin, receivers in host.call_startup("crm_signal_receivers"):
        for rec in receivers:
            receiver = connect_receiver(plugin, rec.signal, rec.func, is_enabled, in_transaction=rec.in_transaction)
            crm.receivers.append((receiver.crm_signal, receiver))


def _schema_name(schema: Any) -> str | None:
    """OpenAPI component names: ``LeadSchema`` -> ``Lead``, its partial form ``LeadPatch``
    (apispec would otherwise warn and number them); only/exclude variants stay inline."""
    resolved = resolve_schema_cls(schema)
    cls = resolved[0] if isinstance(resolved, list) else resolved
    name = cls.__name__.removesuffix("Schema") or cls.__name__
    if isinstance(schema, Schema):
        if schema.only or schema.exclude:
            return None
        if schema.partial:
            name += "Patch"
    return name


def _claim_blueprint(crm: CRM, plugin: str, name: str) -> None:
    if name in crm.blueprint_plugins:
        raise PluginError(f"blueprint name {name!r} used by plugins {crm.blueprint_plugins[name]!r} and {plugin!r}")
    crm.blueprint_plugins[name] = plugin


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _install_request_handling(app: Flask, crm: CRM) -> None:
    @app.before_request
    def _resolve_request() -> Any:
        db.database.connect(reuse_if_open=True)
        crm.config_store.maybe_reload()
        g.user = g.token = None
        g.role = None
        g.tenant = None
        tenant = None
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            token = auth.token_from_secret(header[7:].strip())
            if token is None:
                return _error(401, "invalid or revoked API token")
            tenant = crm.tenant_by_id(token.tenant_id)
            if tenant is None:
                return _error(401, "the token's tenant no longer exists")
            g.token, g.role = token, token.role
        elif flask.session.get("uid"):
            tenant = crm.tenant_by_id(flask.session.get("tid"))
            if tenant is not None:
                from crmcore.models import User

                with tenant_context(tenant):
                    user = User.get_or_none((User.id == flask.session["uid"]) & (User.active == True))  # noqa: E712
                if user is not None:
                    g.user, g.role = user, user.role
                else:
                    flask.session.clear()
                    tenant = None
        if tenant is None:
            tc = crm.config.tenant_for_host(request.host)
            tenant = crm.tenant(tc.slug) if tc is not None else None
        g.tenant = tenant
        g._tenant_token = db._current_tenant.set(tenant)
        # The domain's Context for this request (crmcore.entities.context), built once.
        g._context_token = domain_context.set_current(domain_context.Context(tenant=tenant, user=g.user, token=g.token, role=g.role, settings=crm.settings, plugins=crm))

        bp_names = request.blueprints
        top = bp_names[-1] if bp_names else None
        plugin = crm.blueprint_plugins.get(top) if top else None
        if plugin is not None:
            if tenant is None or not crm.is_enabled(tenant, plugin):
                raise NotFound()
            refused = permissions.refusal(crm) if top in crm.api_blueprints else None
            if refused is not None:
                return _error(*refused)
            if top not in crm.api_blueprints and top not in crm.public_blueprints and g.user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if request.method not in SAFE_METHODS and g.user is not None and g.token is None:
            sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
            if not auth.csrf_valid(sent):
                return _error(400, "the form expired or did not come from this site (CSRF check failed); reload the page and try again")
        return None

    @app.teardown_request
    def _end_request(exc: BaseException | None) -> None:
        context_token = g.pop("_context_token", None)
        if context_token is not None:
            domain_context.reset(context_token)
        token = g.pop("_tenant_token", None)
        if token is not None:
            db._current_tenant.reset(token)
        if not db.database.is_closed():
            db.database.close()

    @app.template_filter("urlencode_args")
    def _urlencode_args(args: Any, **changes: Any) -> str:
        """The current query string with some parameters replaced (None removes one)."""
        from urllib.parse import urlencode

        items = [(k, v) for k, v in (args.items(multi=True) if hasattr(args, "items") else args) if k not in changes]
        items += [(k, v) for k, v in changes.items() if v is not None]
        return urlencode(items)

    @app.context_processor
    def _template_context() -> dict[str, Any]:
        tenant = g.get("tenant")
        user = g.get("user")
        context: dict[str, Any] = {"tenant": tenant, "user": user, "csrf_token": auth.csrf_token, "nav_items": nav_items(crm, tenant, user)}
        if tenant is not None:
            for plugin, extra in crm.call(tenant, "crm_template_context", tenant=tenant, user=user):
                for key, value in extra.items():
                    if key in context:
                        log.warning("plugin %r: template variable %r is already set; ignored", plugin, key)
                        continue
                    context[key] = value
        return context

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Any:
        # Validation raised by code below the request parsing (a service, a custom field).
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return jsonify({"code": 422, "status": "Unprocessable Entity", "message": "invalid input", "errors": {"json": messages}}), 422

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> Any:
        # A domain refusal nobody caught: answered as the API's abort() would be
        # (crmcore.api.common.http_error: 404/422/409/412/403), by the same handler.
        from crmcore.api.common import http_error

        return app.handle_http_exception(http_error(exc))

    def _database_busy(exc: Exception) -> Any:
        # A lock or statement timeout ran out (crmcore.db.is_busy_error): the request
        # can be retried as it is, so 503 + Retry-After rather than a generic 500.
        if not db.is_busy_error(exc):
            raise exc  # any other database error: Flask's usual 500, logged
        log.warning("database busy, answered 503: %s %s: %s", request.method, request.path, exc)
        waited = crm.config.instance.database["lock_timeout_seconds" if db.is_postgres() else "busy_timeout_seconds"]
        retry_after = max(1, math.ceil(waited))
        body, code = _error(503, "the database is busy (a lock or statement timeout ran out); try again in a few seconds")
        response = flask.make_response(body, code)
        response.headers["Retry-After"] = str(retry_after)
        return response

    app.register_error_handler(peewee.OperationalError, _database_busy)
    try:  # the driver's own errors, should one escape peewee's wrapping
        import psycopg2
    except ImportError:  # pragma: no cover - SQLite-only installs
        pass
    else:
        app.register_error_handler(psycopg2.OperationalError, _database_busy)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if wants_json():
            body: dict[str, Any] = {"code": exc.code, "status": exc.name, "message": exc.description}
            data = getattr(exc, "data", None)
            if isinstance(data, dict):
                # flask-smorest: validation errors come as data["messages"]; abort(...,
                # message=..., errors=..., existing=..., plugin=...) as data's other keys.
                if "messages" in data:
                    body["errors"] = data["messages"]
                for key in ("message", "errors", "existing", "field", "plugin"):
                    if key in data:
                        body[key] = data[key]
            return jsonify(body), exc.code
        return render_template("crm/error.html", error=exc), exc.code


def _error(code: int, message: str) -> Any:
    from werkzeug.exceptions import default_exceptions

    exc = default_exceptions[code](message)
    if wants_json() or code == 401:
        return jsonify({"code": code, "status": exc.name, "message": message}), code
    return render_template("crm/error.html", error=exc), code


def nav_items(crm: CRM, tenant: Tenant | None, user: Any) -> list[Any]:
    """Navigation from the tenant's plugins, filtered by role, in explicit order."""
    if tenant is None or user is None:
        return []
    items = []
    for plugin, contributed in crm.call(tenant, "crm_nav_items", tenant=tenant, user=user):
        for item in contributed:
            if item.endpoint not in crm.app.view_functions:
                # A dead link would break every page (url_for raises): leave it out.
                log.warning("plugin %r: nav item %r names unknown endpoint %r", plugin, item.label, item.endpoint)
                continue
            if not item.roles or user.role in item.roles:
                items.append(item)
    return sorted(items, key=lambda i: (i.order, i.label))
