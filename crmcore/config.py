"""Configuration: config/crm.toml for the instance, config/tenants/<slug>.toml per tenant.

The admin's surface. Values may be ``{ "$env" = "NAME" }`` to read a secret from the
environment; ``CRM_<KEY>`` environment variables override the instance file
(``CRM_TASKS__MAX_ATTEMPTS`` for a nested key). Every problem is reported with the file,
the key and the reason; :class:`ConfigStore` keeps the running configuration when a
reload finds a bad file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, validate

log = logging.getLogger("crmcore.config")

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# A bare host name as requests are matched (no scheme, no port, no path).
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists each file/key/reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


# --------------------------------------------------------------------------- schemas


class TaskSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = fields.Integer(load_default=5, validate=validate.Range(min=1, max=100))
    backoff_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0))
    backoff_max_seconds = fields.Float(load_default=3600.0, validate=validate.Range(min=0))
    #: A claimed task's lease; a worker renews it while a non-transactional handler runs,
    #: so this is how long a dead worker's task waits before another worker retries it.
    lease_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))
    poll_seconds = fields.Float(load_default=1.0, validate=validate.Range(min=0.01))


class DatabaseSettingsSchema(Schema):
    """``[database]``: how long a request may wait on the database before it gives up
    (and the client gets 503 with Retry-After instead of a thread held indefinitely)."""

    class Meta:
        unknown = RAISE

    # Waiting for a row or table lock: PostgreSQL's lock_timeout (rare: two writers on one row).
    lock_timeout_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0.01, max=3600))
    # Waiting for SQLite's one write lock, which every write transaction takes in turn: so
    # longer by default, the queue of writers is normal there.
    busy_timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.01, max=3600))
    # One statement's run time: PostgreSQL's statement_timeout (SQLite has none).
    statement_timeout_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0.01, max=86400))


class MailSettingsSchema(Schema):
    """``[mail]``: the instance's own SMTP server for system mail (invitations, password
    resets, digests: crmcore.system_mail), not the email plugin's customer mail. An
    empty ``host`` means system mail is off."""

    class Meta:
        unknown = RAISE

    host = fields.String(load_default="")
    port = fields.Integer(load_default=587, validate=validate.Range(min=1, max=65535))
    security = fields.String(load_default="starttls", validate=validate.OneOf(["none", "starttls", "tls"]))
    username = fields.String(load_default="")
    password = fields.String(load_default="")
    from_address = fields.Email(load_default="crm@localhost")
    from_name = fields.String(load_default="CRM", validate=validate.Length(max=200))
    timeout_seconds = fields.Float(load_default=20.0, validate=validate.Range(min=0.1, max=600))


class DefaultsSchema(Schema):
    class Meta:
        unknown = RAISE

    plugins = fields.List(fields.String(), load_default=list)


class InstanceSchema(Schema):
    """config/crm.toml."""

    class Meta:
        unknown = RAISE

    database_url = fields.String(
        load_default="sqlite:///crm.db",
        validate=validate.Regexp(r"^(sqlite|postgres|postgresql)://", error="unsupported database URL: use sqlite:///... or postgresql://user@host:5432/dbname"),
    )
    secret_key = fields.String(load_default=None, allow_none=True)
    redis_url = fields.String(load_default="")
    instance_dir = fields.String(load_default="instance")
    plugins_dir = fields.String(load_default="")
    default_tenant = fields.String(load_default="")
    #: the instance's address as people reach it (https://crm.example.com), for links in
    #: emails and other messages sent without a request (crmcore.sdk.external_url)
    base_url = fields.String(load_default="", validate=validate.Regexp(r"^(https?://[^/\s?#]+(/[^\s?#]*)?)?$", error="not an http(s) address without query: {input!r}"))
    session_hours = fields.Float(load_default=12.0, validate=validate.Range(min=0.01))
    #: requests a minute each API token may make (crmcore.ratelimit); 0: no limit
    api_rate_per_minute = fields.Integer(load_default=600, validate=validate.Range(min=0, max=1_000_000))
    tasks = fields.Nested(TaskSettingsSchema, load_default=lambda: TaskSettingsSchema().load({}))
    database = fields.Nested(DatabaseSettingsSchema, load_default=lambda: DatabaseSettingsSchema().load({}))
    defaults = fields.Nested(DefaultsSchema, load_default=lambda: DefaultsSchema().load({}))
    mail = fields.Nested(MailSettingsSchema, load_default=lambda: MailSettingsSchema().load({}))


class TenantSchema(Schema):
    """config/tenants/<slug>.toml (plugin settings are checked by each plugin's schema)."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    hostnames = fields.List(
        fields.String(validate=validate.Regexp(HOSTNAME_RE, error="not a bare hostname (no scheme, port or path): {input!r}")),
        load_default=list,
    )
    plugins = fields.List(fields.String(), load_default=list)
    settings = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)
    public_key = fields.String(load_default=None, allow_none=True)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TenantConfig:
    slug: str
    name: str
    hostnames: tuple[str, ...]
    plugins: frozenset[str]
    settings: Mapping[str, Mapping[str, Any]]
    path: Path
    public_key: str | None = None


@dataclass(frozen=True)
class InstanceConfig:
    database_url: str
    secret_key: str | None
    redis_url: str
    instance_dir: Path
    plugins_dir: Path | None
    default_tenant: str
    session_hours: float
    tasks: Mapping[str, Any]
    defaults: Mapping[str, Any]
    path: Path | None
    #: [database]: lock_timeout_seconds, busy_timeout_seconds, statement_timeout_seconds
    database: Mapping[str, Any] = field(default_factory=lambda: DatabaseSettingsSchema().load({}))
    api_rate_per_minute: int = 600
    #: [mail]: the SMTP server of system mail (crmcore.system_mail); host "" = off
    mail: Mapping[str, Any] = field(default_factory=lambda: MailSettingsSchema().load({}))
    base_url: str = ""


@dataclass(frozen=True)
class Config:
    config_dir: Path
    instance: InstanceConfig
    tenants: Mapping[str, TenantConfig]
    generation: int = 0
    hosts: Mapping[str, str] = field(default_factory=dict)

    def tenant_for_host(self, host: str) -> TenantConfig | None:
        """The tenant serving ``host`` (port stripped), else the default tenant."""
        name = host.split(":", 1)[0].lower() if host else ""
        slug = self.hosts.get(name) or self.instance.default_tenant
        return self.tenants.get(slug) if slug else None


# --------------------------------------------------------------------------- loading


def _flatten(messages: Any, prefix: str) -> list[tuple[str, str]]:
    """marshmallow's nested error dict -> [(dotted.key, reason)]."""
    out: list[tuple[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                sub = prefix
            elif isinstance(key, int):  # an item of a list: plugins[1]
                sub = f"{prefix}[{key}]"
            else:
                sub = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, sub))
    elif isinstance(messages, list):
        for item in messages:
            out.extend(_flatten(item, prefix))
    else:
        reason = str(messages)
        if reason == "Unknown field.":
            reason = "unknown key"
        out.append((prefix, reason))
    return out


def _resolve_env(value: Any, env: Mapping[str, str], path: str, problems: list[tuple[str, str]]) -> Any:
    """Replace every ``{"$env": "NAME"}`` with the environment variable's value."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in env:
                problems.append((path, f"environment variable {name!r} is not set"))
                return None
            return env[name]
        return {k: _resolve_env(v, env, f"{path}.{k}" if path else k, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _read_toml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), "", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(Problem(str(path), "", f"cannot read: {exc.strerror}"))
    return None


def _env_overrides(env: Mapping[str, str], sources: dict[str, str] | None = None) -> dict[str, Any]:
    """CRM_DATABASE_URL=... -> {"database_url": ...}; CRM_TASKS__LEASE_SECONDS -> nested.

    ``sources`` (when given) receives dotted key -> the variable that set it, so that a
    bad value can be reported with the variable's name rather than only the file's.
    """
    known = set(InstanceSchema().fields)
    out: dict[str, Any] = {}
    for name in sorted(env):
        if not name.startswith("CRM_"):
            continue
        value = env[name]
        parts = name[4:].lower().split("__")
        if parts[0] not in known or not all(parts):
            continue  # CRM_CONFIG_DIR, CRM_TEST_* ... are not instance keys
        target = out
        for part in parts[:-1]:
            if not isinstance(target.get(part, {}), dict):
                target = None  # CRM_TASKS=x and CRM_TASKS__MAX_ATTEMPTS=3: the table wins
                break
            target = target.setdefault(part, {})
        if target is None:
            continue
        target[parts[-1]] = value
        if sources is not None:
            sources[".".join(parts)] = name
    return out


def _env_source(key: str, sources: Mapping[str, str]) -> str | None:
    """The CRM_* variable behind dotted ``key`` (or behind one of its parent tables)."""
    while key:
        if key in sources:
            return sources[key]
        key = key.rpartition(".")[0]
    return None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_instance(config_dir: Path, env: Mapping[str, str], problems: list[Problem]) -> InstanceConfig | None:
    path = config_dir / "crm.toml"
    raw: dict[str, Any] = {}
    if path.exists():
        raw = _read_toml(path, problems) or {}
    env_problems: list[tuple[str, str]] = []
    raw = _resolve_env(raw, env, "", env_problems)
    problems.extend(Problem(str(path), k, r) for k, r in env_problems)
    sources: dict[str, str] = {}
    raw = _merge(raw, _env_overrides(env, sources))
    try:
        data = InstanceSchema().load(raw)
    except ValidationError as exc:
        for key, reason in _flatten(exc.messages, ""):
            var = _env_source(key, sources)
            problems.append(Problem(str(path), key, f"{reason} (from environment variable {var})" if var else reason))
        return None
    root = config_dir.parent
    instance_dir = Path(data["instance_dir"])
    plugins_dir = Path(data["plugins_dir"]) if data["plugins_dir"] else None
    return InstanceConfig(
        database_url=data["database_url"],
        secret_key=data["secret_key"],
        redis_url=data["redis_url"],
        instance_dir=instance_dir if instance_dir.is_absolute() else root / instance_dir,
        plugins_dir=(plugins_dir if plugins_dir is None or plugins_dir.is_absolute() else root / plugins_dir),
        default_tenant=data["default_tenant"],
        session_hours=data["session_hours"],
        api_rate_per_minute=data["api_rate_per_minute"],
        tasks=data["tasks"],
        defaults=data["defaults"],
        path=path if path.exists() else None,
        database=data["database"],
        mail=data["mail"],
        base_url=data["base_url"].rstrip("/"),
    )


def load_tenant(path: Path, plugins: Mapping[str, Any], env: Mapping[str, str], problems: list[Problem]) -> TenantConfig | None:
    """Read and validate one tenant file against the installed plugins.

    ``plugins`` maps plugin name -> PluginInfo (with ``settings`` schema, ``requires``,
    ``error`` for a plugin that failed to load, ``always_on`` for the core).
    """
    file = str(path)
    slug = path.stem
    before = len(problems)
    if not SLUG_RE.match(slug):
        problems.append(Problem(file, "", f"tenant slug {slug!r} (the file name) must be lowercase letters, digits and dashes"))
    raw = _read_toml(path, problems)
    if raw is None:
        return None
    env_problems: list[tuple[str, str]] = []
    raw = _resolve_env(raw, env, "", env_problems)
    problems.extend(Problem(file, k, r) for k, r in env_problems)
    try:
        data = TenantSchema().load(raw)
    except ValidationError as exc:
        for key, reason in _flatten(exc.messages, ""):
            # fields.Dict reports a bad value as settings.<plugin>.value
            key = re.sub(r"^(settings\.[^.]+)\.(value|key)$", r"\1", key)
            problems.append(Problem(file, key, reason))
        # Go on with what was valid, so that every problem is listed at once.
        data = {"plugins": [], "settings": {}, **(exc.valid_data if isinstance(exc.valid_data, dict) else {})}
    enabled: set[str] = set()
    # Enumerate the file's own list so that positions stay right when an item was invalid.
    listed = raw.get("plugins") if isinstance(raw.get("plugins"), list) else data["plugins"]
    for i, name in enumerate(listed):
        if not isinstance(name, str):
            continue  # already reported by the schema
        info = plugins.get(name)
        if info is None and _installed_since_start(name):
            problems.append(Problem(file, f"plugins[{i}]", f"plugin {name!r} was installed after this process started: restart the CRM's processes (web and worker) to load it"))
        elif info is None:
            problems.append(Problem(file, f"plugins[{i}]", f"unknown plugin {name!r} (installed: {', '.join(sorted(p for p in plugins if not getattr(plugins[p], 'always_on', False))) or 'none'})"))
        elif getattr(info, "error", None):
            problems.append(Problem(file, f"plugins[{i}]", f"plugin {name!r} failed to load: {info.error}"))
        else:
            enabled.add(name)
    for name in sorted(enabled):
        for req in plugins[name].requires:
            if req not in enabled and not getattr(plugins.get(req), "always_on", False):
                problems.append(Problem(file, "plugins", f"plugin {name!r} requires plugin {req!r}, which is not enabled"))
    settings: dict[str, dict[str, Any]] = {}
    for name, values in data["settings"].items():
        info = plugins.get(name)
        if info is None:
            problems.append(Problem(file, f"settings.{name}", f"unknown plugin {name!r}"))
            continue
        if info.settings is None:
            if values:
                problems.append(Problem(file, f"settings.{name}", f"plugin {name!r} takes no settings"))
            continue
    # Every installed plugin's settings are validated (enabled or not), so that turning a
    # plugin on later cannot start from a bad file; defaults fill what is absent.
    for name, info in plugins.items():
        schema_cls = getattr(info, "settings", None)
        if schema_cls is None or getattr(info, "error", None):
            continue
        values = data["settings"].get(name, {})
        try:
            settings[name] = schema_cls(unknown=RAISE).load(values)
        except ValidationError as exc:
            problems.extend(Problem(file, f"settings.{name}.{k}" if k else f"settings.{name}", r) for k, r in _flatten(exc.messages, ""))
    if len(problems) > before:
        return None
    return TenantConfig(
        slug=slug,
        name=data["name"],
        hostnames=tuple(h.lower() for h in data["hostnames"]),
        plugins=frozenset(enabled),
        settings=settings,
        path=path,
        public_key=data["public_key"],
    )


def load_config(config_dir: Path | str, plugins: Mapping[str, Any], env: Mapping[str, str] | None = None, generation: int = 0) -> Config:
    """Load and validate the whole configuration; raise :class:`ConfigError` listing every problem."""
    config_dir = Path(config_dir).resolve()
    env = os.environ if env is None else env
    problems: list[Problem] = []
    instance = load_instance(config_dir, env, problems)
    tenants: dict[str, TenantConfig] = {}
    hosts: dict[str, str] = {}
    tenant_dir = config_dir / "tenants"
    for path in sorted(tenant_dir.glob("*.toml")) if tenant_dir.is_dir() else []:
        tenant = load_tenant(path, plugins, env, problems)
        if tenant is None:
            continue
        tenants[tenant.slug] = tenant
        for host in tenant.hostnames:
            if host in hosts:
                problems.append(Problem(str(path), "hostnames", f"hostname {host!r} is already used by tenant {hosts[host]!r}"))
            hosts[host] = tenant.slug
    if instance and instance.default_tenant and not (tenant_dir / f"{instance.default_tenant}.toml").is_file():
        problems.append(Problem(str(config_dir / "crm.toml"), "default_tenant", f"no tenant file config/tenants/{instance.default_tenant}.toml"))
    if problems or instance is None:
        raise ConfigError(problems)
    return Config(config_dir=config_dir, instance=instance, tenants=tenants, generation=generation, hosts=hosts)


def _installed_since_start(name: str) -> bool:
    """Whether an entry point ``crm.plugins`` named ``name`` exists now (a package
    installed while this process runs: it knows the plugins it found at start)."""
    from importlib.metadata import entry_points

    return any(ep.name == name for ep in entry_points(group="crm.plugins"))


def load_config_keeping(config_dir: Path | str, plugins: Mapping[str, Any], env: Mapping[str, str] | None, generation: int, previous: Config) -> tuple[Config, ConfigError | None]:
    """Like :func:`load_config`, but a broken tenant file does not hold up the others:
    their changes apply, and the broken file's tenant keeps its ``previous``
    configuration (a new broken file adds no tenant). Returns the config and the error
    about the files kept back, if any. A broken crm.toml (or a hostname claimed twice)
    still refuses the whole reload: raises ConfigError."""
    try:
        return load_config(config_dir, plugins, env, generation), None
    except ConfigError as whole:
        error = whole
    config_dir = Path(config_dir).resolve()
    env = os.environ if env is None else env
    bad = {Path(p.file).resolve() for p in error.problems}
    tenant_dir = config_dir / "tenants"
    if any(path.parent != tenant_dir for path in bad):
        raise error
    problems: list[Problem] = []
    instance = load_instance(config_dir, env, problems)
    tenants: dict[str, TenantConfig] = {}
    for path in sorted(tenant_dir.glob("*.toml")):
        if path.resolve() in bad:
            kept = previous.tenants.get(path.stem)
            if kept is not None:
                tenants[kept.slug] = kept
            continue
        tenant = load_tenant(path, plugins, env, problems)
        if tenant is not None:
            tenants[tenant.slug] = tenant
    hosts: dict[str, str] = {}
    for tenant in tenants.values():
        for host in tenant.hostnames:
            if host in hosts:
                raise error
            hosts[host] = tenant.slug
    if problems or instance is None or tenants == previous.tenants:
        raise error  # (nothing but broken files changed: a plain failed reload)
    return Config(config_dir=config_dir, instance=instance, tenants=tenants, generation=generation, hosts=hosts), error


def tenant_hostnames(config_dir: Path, exclude: str = "") -> dict[str, str]:
    """hostname -> slug claimed by the tenant files (read leniently: bad files are skipped)."""
    out: dict[str, str] = {}
    tenant_dir = Path(config_dir) / "tenants"
    for path in sorted(tenant_dir.glob("*.toml")) if tenant_dir.is_dir() else []:
        if path.stem == exclude:
            continue
        raw = _read_toml(path, [])
        hostnames = raw.get("hostnames") if raw else None
        for host in hostnames if isinstance(hostnames, list) else []:
            if isinstance(host, str):
                out.setdefault(host.lower(), path.stem)
    return out


def config_files(config_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap signature of the config files (names, mtimes, sizes) to notice changes."""
    paths = [config_dir / "crm.toml"]
    tenant_dir = config_dir / "tenants"
    if tenant_dir.is_dir():
        paths += sorted(tenant_dir.glob("*.toml"))
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


class ConfigStore:
    """Holds the running configuration and reloads it when the files change.

    ``maybe_reload()`` is called at the start of requests, jobs and worker loops; it
    stats the files at most once per ``check_interval`` seconds. A reload that fails is
    logged with every problem and the running configuration stays as it was.
    """

    def __init__(self, config_dir: Path | str, plugins: Mapping[str, Any], env: Mapping[str, str] | None = None, check_interval: float = 1.0):
        self.config_dir = Path(config_dir).resolve()
        self.plugins = plugins
        self.env = env
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._signature = config_files(self.config_dir)
        self.current = load_config(self.config_dir, plugins, env)
        self.last_error: ConfigError | None = None
        self._checked_at = time.monotonic()
        self._listeners: list[Callable[[Config], None]] = []

    def on_reload(self, listener: Callable[[Config], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> Config:
        """Reload now; raise ConfigError (keeping the running config) when a file is bad."""
        with self._lock:
            signature = config_files(self.config_dir)
            try:
                new, kept_back = load_config_keeping(self.config_dir, self.plugins, self.env, self.current.generation + 1, self.current)
            except ConfigError as exc:
                self._signature = signature  # do not retry the same bad files every second
                self.last_error = exc
                raise
            if new.instance != self.current.instance:
                log.warning("config/crm.toml changed: instance settings take effect at the next restart")
                new = Config(new.config_dir, self.current.instance, new.tenants, new.generation, new.hosts)
            self._signature = signature
            self.current = new
            self.last_error = kept_back
        for listener in self._listeners:
            listener(new)
        log.info("configuration reloaded (generation %s, %d tenants)", new.generation, len(new.tenants))
        if kept_back is not None:
            log.error("configuration reload: these tenant files are broken and keep their running configuration until fixed\n%s", kept_back)
        return new

    def maybe_reload(self) -> bool:
        """Reload if the files changed since the last look; True when a new config is active."""
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        if config_files(self.config_dir) == self._signature:
            return False
        try:
            self.reload()
        except ConfigError as exc:
            log.error("configuration reload failed; keeping the running configuration\n%s", exc)
            return False
        return True
