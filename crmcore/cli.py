"""The ``crm`` command.

Every command takes ``--config DIR`` (or ``$CRM_CONFIG_DIR``, default ``./config``).
Bad arguments and bad configuration end with a clear message and a non-zero exit.
Plugins add commands through the ``crm_cli_commands`` hook.
"""

from __future__ import annotations

import functools
import json
import os
import signal as os_signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import click

from crmcore.config import ConfigError, load_config, load_instance

DEFAULT_CRM_TOML = """\
# The instance: shared by every tenant. CRM_<KEY> environment variables override these
# (CRM_DATABASE_URL, CRM_REDIS_URL, CRM_SECRET_KEY, CRM_TASKS__MAX_ATTEMPTS ...).
# Secrets can come from the environment: secret_key = { "$env" = "CRM_SECRET" }

# SQLite file in the instance folder, or postgresql://user@host:5432/dbname
database_url = "sqlite:///crm.db"
# Empty: realtime events stay in this process. Set redis://127.0.0.1:6379/0 to share
# them between several web processes and workers.
redis_url = ""
instance_dir = "instance"
# The tenant that answers requests whose hostname no tenant claims (single-company installs).
default_tenant = "demo"

[tasks]
max_attempts = 5
backoff_seconds = 2.0

[defaults]
# Plugins switched on for tenants created with `crm tenants create`.
plugins = []
"""

DEMO_TENANT_TOML = """\
# A tenant: one company using this CRM. The file name is its slug.
name = "Demo Company"
hostnames = ["localhost", "127.0.0.1"]
# Plugins switched on for this tenant (see `crm plugins list`).
plugins = {plugins}

# Each plugin's settings go in a table named after it, e.g.
# [settings.kanban]
# wip_limit = 20
"""

DEMO_ADMIN = ("admin@demo.example", "demo")


def _config_dir(ctx: click.Context) -> Path:
    return Path(ctx.find_root().params.get("config") or "config").resolve()


def _existing_config_dir(ctx: click.Context) -> Path:
    """The config dir, which must exist: a mistyped --config must not quietly run on
    defaults (and create a database beside the wrong folder)."""
    config_dir = _config_dir(ctx)
    if not config_dir.is_dir():
        fail(f"no configuration directory {config_dir}: run `crm init` there, or pass --config DIR (or set CRM_CONFIG_DIR)", 2)
    return config_dir


def _host_for(config_dir: Path):
    from crmcore.plugins import PluginHost

    problems: list = []
    instance = load_instance(config_dir, os.environ, problems)
    host = PluginHost()
    host.discover(instance.plugins_dir if instance else None)
    return host


def _config_or_fail(config_dir: Path):
    """The validated configuration, or exit 2 listing every problem."""
    try:
        return load_config(config_dir, _host_for(config_dir).infos)
    except ConfigError as exc:
        fail(str(exc), 2)


def fail(message: str, code: int = 1) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


def _close_app(app) -> None:
    """Stop what the app started and close its database connections (when the command
    ends; matters when commands run in-process, as in tests or embedding)."""

    app.extensions["crm"].shutdown()
    database = app.extensions["crm"].database
    if database is not None:
        if hasattr(database, "close_all"):
            database.close_all()
        elif not database.is_closed():
            database.close()


def make_app(ctx: click.Context):
    """Build the app for ``ctx``'s config dir, turning config errors into a clean exit."""
    from crmcore.app import create_app
    from crmcore.plugins import PluginError

    obj = ctx.ensure_object(dict)
    if "app" not in obj:
        try:
            obj["app"] = create_app(_existing_config_dir(ctx))
        except ConfigError as exc:
            fail(str(exc), 2)
        except PluginError as exc:
            fail(str(exc), 1)
        app = obj["app"]
        ctx.find_root().call_on_close(lambda: _close_app(app))
    return obj["app"]


#: AuditEntry.actor_name of what commands do
CLI_ACTOR = "cli"


def with_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for commands that need the app: runs them in an app context with an
    open database connection; the CRM state is passed as ``crm``."""

    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        from crmcore import db
        from crmcore.entities.context import Context, acting

        app = make_app(ctx)
        crm = app.extensions["crm"]
        # The domain's context for the command: audited as "cli"; the tenant is the one
        # the command makes current (db.tenant_context), its settings from the config.
        with app.app_context(), db.database.connection_context(), acting(Context(actor=CLI_ACTOR, settings=crm.settings, plugins=crm)):
            return ctx.invoke(func, crm, *args, **kwargs)

    return wrapper


class CrmGroup(click.Group):
    """Adds the plugins' commands (``crm_cli_commands``) when they are needed.

    They are collected per invocation (in ``ctx.meta``), never added to this group
    itself: which plugins are installed depends on the configuration directory
    (``plugins_dir``), which may differ from one invocation to the next in one process.
    """

    META_KEY = "crm.plugin_commands"

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        found = ctx.meta.get(self.META_KEY)
        if found is None:
            found = ctx.meta[self.META_KEY] = {}
            collector = click.Group(self.name)
            try:
                host = _host_for(_config_dir(ctx))
                host.call_startup("crm_cli_commands", cli=collector)
            except Exception as exc:  # a broken plugin must not take the CLI down with it
                click.secho(f"warning: plugin commands unavailable: {exc}", fg="yellow", err=True)
            for name, command in collector.commands.items():
                if name in self.commands:
                    click.secho(f"warning: a plugin's command {name!r} is ignored: the core has a command of that name", fg="yellow", err=True)
                    continue
                found[name] = command
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None:
            command = self._plugin_commands(ctx).get(name)
        return command


@click.group(cls=CrmGroup)
@click.option("--config", "config", envvar="CRM_CONFIG_DIR", default="config", show_default=True, type=click.Path(file_okay=False), help="Configuration directory (crm.toml, tenants/).")
@click.version_option(package_name="crm-framework", prog_name="crm")
def cli(config: str) -> None:
    """The CRM framework: run it, configure tenants, manage plugins and background work."""


# --------------------------------------------------------------------------- init/run


def bundled_plugins() -> list[str]:
    """The plugins that ship with the framework (entry points into ``crm_plugins``)."""
    import importlib.metadata

    return sorted(ep.name for ep in importlib.metadata.entry_points(group="crm.plugins") if ep.value.startswith("crm_plugins."))


def write_default_config(config_dir: Path, plugins: list[str] | None = None) -> list[Path]:
    """Create crm.toml and tenants/demo.toml where they do not exist yet; the demo tenant
    has ``plugins`` on (default: every bundled plugin, so a newcomer sees them all)."""
    written = []
    (config_dir / "tenants").mkdir(parents=True, exist_ok=True)
    demo = config_dir / "tenants" / "demo.toml"
    write_demo = not any((config_dir / "tenants").glob("*.toml"))
    if not (config_dir / "crm.toml").exists():
        text = DEFAULT_CRM_TOML
        if not write_demo and not demo.exists():
            # Tenants exist already, none of them "demo": do not point at a missing file.
            text = text.replace('default_tenant = "demo"', 'default_tenant = ""')
        (config_dir / "crm.toml").write_text(text)
        written.append(config_dir / "crm.toml")
    if write_demo:
        demo.write_text(DEMO_TENANT_TOML.format(plugins=json.dumps(bundled_plugins() if plugins is None else plugins)))
        written.append(demo)
    return written


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create a configuration (if none) and the database."""
    config_dir = _config_dir(ctx)
    for path in write_default_config(config_dir):
        click.echo(f"wrote {path}")
    ctx.invoke(migrate)


def ensure_demo(crm) -> tuple[str, str]:
    """Make sure the demo tenant has its admin user; return the sign-in email and password."""
    from crmcore import auth
    from crmcore.db import tenant_context
    from crmcore.models import User

    slug = crm.config.instance.default_tenant or next(iter(crm.config.tenants), None)
    tenant = crm.tenant(slug) if slug else None
    if tenant is None:
        fail("no tenant to seed: add config/tenants/demo.toml or run `crm init`")
    email, password = DEMO_ADMIN
    with tenant_context(tenant):
        if not User.select().where(User.email == email).exists():
            auth.create_user(tenant, email, password, role="admin", name="Demo Admin")
        crm.call(tenant, "crm_demo_data", tenant=tenant)
    return email, password


@cli.command()
@click.option("--demo", is_flag=True, help="Create the config and database if missing and a demo tenant with an admin user.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reload", "use_reloader", is_flag=True, help="Restart on code changes (development).")
@click.option("--no-worker", is_flag=True, help="Do not run tasks and scheduled jobs in this process.")
@click.pass_context
def run(ctx: click.Context, demo: bool, host: str, port: int, use_reloader: bool, no_worker: bool) -> None:
    """Serve the web app, with the worker and scheduler in the same process."""
    from crmcore import db, migrations

    config_dir = _config_dir(ctx)
    if demo:
        write_default_config(config_dir)
    app = make_app(ctx)
    crm = app.extensions["crm"]
    # Under the reloader the code runs twice: in a watcher parent and in the serving
    # child (WERKZEUG_RUN_MAIN=true). Only the child may start workers and the scheduler.
    is_reloader_parent = use_reloader and os.environ.get("WERKZEUG_RUN_MAIN") != "true"
    if not is_reloader_parent:
        with app.app_context():
            migrations.migrate(crm.host, report=lambda m: click.echo(m))
            with db.database.connection_context():
                signin = ensure_demo(crm) if demo else None
        if not no_worker:
            crm.start_background()
        shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        click.secho(f"\n  CRM running at http://{shown_host}:{port}/", fg="green", bold=True)
        if signin:
            click.echo(f"  Sign in as {signin[0]} with password {signin[1]}\n")
    if not is_reloader_parent:
        # SIGTERM (systemd, docker stop, kill) ends the server as Ctrl-C does, so the
        # shutdown below runs: the task in hand finishes and the scheduler's lease is
        # handed back at once instead of blocking jobs until it expires.
        os_signal.signal(os_signal.SIGTERM, _interrupt)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=use_reloader)
    finally:
        crm.shutdown()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


@cli.command()
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64), help="Task worker threads.")
@click.option("--no-scheduler", is_flag=True, help="Only run tasks, no scheduled jobs.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int, no_scheduler: bool) -> None:
    """Run queued tasks and scheduled jobs until stopped (SIGTERM or Ctrl-C)."""
    app = make_app(ctx)
    crm = app.extensions["crm"]
    stop = threading.Event()
    os_signal.signal(os_signal.SIGTERM, lambda *_: stop.set())
    os_signal.signal(os_signal.SIGINT, lambda *_: stop.set())
    crm.start_background(workers=concurrency, scheduler=not no_scheduler)
    click.echo(f"worker running ({concurrency} thread(s), scheduler {'off' if no_scheduler else 'on'}); pid {os.getpid()}", err=True)
    stop.wait()
    click.echo("stopping...", err=True)
    crm.shutdown()


@cli.command()
@click.option("--list", "list_only", is_flag=True, help="Only list pending migrations.")
@click.pass_context
def migrate(ctx: click.Context, list_only: bool = False) -> None:
    """Apply pending migrations of the core and every plugin, in dependency order."""
    from crmcore import db, migrations

    app = make_app(ctx)
    crm = app.extensions["crm"]
    with app.app_context():
        if list_only:
            with db.database.connection_context():
                todo = migrations.pending(crm.host)
            for plugin, m in todo:
                click.echo(f"{plugin}:{m.name}")
            click.echo(f"{len(todo)} pending")
            return
        ran = migrations.migrate(crm.host, report=click.echo)
        click.echo(f"{len(ran)} migration(s) applied" if ran else "database is up to date")


# --------------------------------------------------------------------------- plugins


@cli.group()
def plugins() -> None:
    """Installed plugins."""


@plugins.command("list")
@click.pass_context
def plugins_list(ctx: click.Context) -> None:
    """List installed plugins, their versions and which tenants have each on."""
    config_dir = _config_dir(ctx)
    host = _host_for(config_dir)
    try:
        config = load_config(config_dir, host.infos)
        tenants = config.tenants
    except ConfigError as exc:
        click.secho(str(exc), fg="yellow", err=True)
        tenants = {}
    rows = []
    for name, info in sorted(host.infos.items()):
        on = "all (always on)" if info.always_on else ", ".join(s for s, t in sorted(tenants.items()) if name in t.plugins) or "-"
        status = f"BROKEN: {info.error}" if info.error else info.summary
        rows.append((name, info.version, on, info.source, status))
    widths = [max(len(str(r[i])) for r in rows + [("PLUGIN", "VERSION", "TENANTS", "SOURCE", "")]) for i in range(4)]
    header = ("PLUGIN", "VERSION", "TENANTS", "SOURCE", "SUMMARY")
    for row in [header] + rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + str(row[4]))


# --------------------------------------------------------------------------- tenants


@cli.group()
def tenants() -> None:
    """Tenants (one config/tenants/<slug>.toml each)."""


@tenants.command("list")
@click.pass_context
def tenants_list(ctx: click.Context) -> None:
    """List configured tenants with their hostnames and plugins."""
    config_dir = _existing_config_dir(ctx)
    config = _config_or_fail(config_dir)
    if not config.tenants:
        click.echo("no tenants: create one with `crm tenants create SLUG --name NAME`")
    for slug, t in sorted(config.tenants.items()):
        click.echo(f"{slug}\t{t.name}\thosts: {', '.join(t.hostnames) or '-'}\tplugins: {', '.join(sorted(t.plugins)) or '-'}")


@tenants.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The company's name.")
@click.option("--hostname", "hostnames", multiple=True, help="A hostname that serves this tenant (repeatable).")
@click.option("--plugin", "plugin_names", multiple=True, help="A plugin to switch on (repeatable; default: [defaults] plugins).")
@click.pass_context
def tenants_create(ctx: click.Context, slug: str, name: str, hostnames: tuple[str, ...], plugin_names: tuple[str, ...]) -> None:
    """Create config/tenants/SLUG.toml (validated before it is written)."""
    import tempfile

    import tomli_w

    from crmcore.config import SLUG_RE, Problem, load_tenant, tenant_hostnames

    config_dir = _existing_config_dir(ctx)
    if not SLUG_RE.match(slug):
        fail(f"invalid slug {slug!r}: use lowercase letters, digits and dashes")
    path = config_dir / "tenants" / f"{slug}.toml"
    if path.exists():
        fail(f"tenant {slug!r} already exists ({path})")
    host = _host_for(config_dir)
    problems: list = []
    instance = load_instance(config_dir, os.environ, problems)
    chosen = list(plugin_names) if plugin_names else list(instance.defaults["plugins"] if instance else [])
    text = tomli_w.dumps({"name": name, "hostnames": list(hostnames), "plugins": chosen})
    # Validate a copy outside config/tenants/: a running server must never see a bad file.
    problems = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        candidate = Path(tmp_dir) / path.name
        candidate.write_text(text)
        tenant = load_tenant(candidate, host.infos, os.environ, problems)
    problems = [Problem(str(path), p.key, p.reason) for p in problems]
    if tenant is not None:
        taken = tenant_hostnames(config_dir, exclude=slug)
        for i, hostname in enumerate(tenant.hostnames):
            if hostname in taken:
                problems.append(Problem(str(path), f"hostnames[{i}]", f"hostname {hostname!r} is already used by tenant {taken[hostname]!r}"))
    if problems:
        fail("tenant not created:\n" + "\n".join(f"  {p}" for p in problems), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")  # not *.toml: never read by a reload
    tmp.write_text(text)
    tmp.rename(path)
    click.echo(f"created {path}")


# --------------------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Check or reload the configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate crm.toml and every tenant file; list every problem."""
    config_dir = _existing_config_dir(ctx)
    config = _config_or_fail(config_dir)
    click.echo(f"configuration OK: {len(config.tenants)} tenant(s) in {config_dir}")


@config_group.command("reload")
@click.pass_context
def config_reload(ctx: click.Context) -> None:
    """Validate, then make running servers and workers pick the files up.

    Running processes notice changed files by themselves within a second; this checks
    the files first (a bad file is reported and left inactive: the running
    configuration stays) and touches them so that every process reloads.
    """
    config_dir = _config_dir(ctx)
    ctx.invoke(config_check)
    for path in [config_dir / "crm.toml", *sorted((config_dir / "tenants").glob("*.toml"))]:
        if path.exists():
            path.touch()
    click.echo("running processes will reload within a second")


# --------------------------------------------------------------------------- tasks


@cli.group()
def tasks() -> None:
    """The durable task queue."""


@tasks.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "done", "dead", "cancelled"]), help="Only tasks with this status.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@with_app
def tasks_list(crm, status: str | None, limit: int) -> None:
    """List tasks, newest first."""
    from crmcore.models import Task

    query = Task.select().order_by(Task.id.desc()).limit(limit)
    if status:
        query = query.where(Task.status == status)
    rows = list(query)
    if not rows:
        click.echo("no tasks" + (f" with status {status}" if status else ""))
    for t in rows:
        error = (t.last_error or "").strip().splitlines()[-1:] or [""]
        click.echo(f"{t.id}\t{t.status}\t{t.kind}\tattempts {t.attempts}/{t.max_attempts}\tnext {t.next_run_at:%Y-%m-%d %H:%M:%S}\t{error[0][:120]}")


@tasks.command("retry")
@click.argument("task_id", required=False, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead task.")
@with_app
def tasks_retry(crm, task_id: int | None, all_dead: bool) -> None:
    """Put a dead task (or all dead tasks) back in the queue."""
    from crmcore import tasks as task_queue

    if task_id is None and not all_dead:
        fail("give a TASK_ID or --all-dead")
    count = task_queue.retry(task_id, all_dead=all_dead)
    if task_id is not None and not count:
        fail(f"task {task_id} does not exist or is not dead")
    click.echo(f"{count} task(s) queued again")


# --------------------------------------------------------------------------- jobs


@cli.group()
def jobs() -> None:
    """Scheduled jobs declared by plugins."""


@jobs.command("list")
@with_app
def jobs_list(crm) -> None:
    """List scheduled jobs and their triggers."""
    from crmcore.jobs import Scheduler, job_summary

    rows = job_summary(Scheduler(crm, holder="cli"))
    if not rows:
        click.echo("no scheduled jobs")
    for row in rows:
        click.echo(f"{row['id']}\t{row['plugin']}\t{row['trigger']} {row['args']}")


@jobs.command("run")
@click.argument("job_id")
@with_app
def jobs_run(crm, job_id: str) -> None:
    """Run a job now, once for every tenant that has its plugin on."""
    from crmcore.jobs import Scheduler

    sched = Scheduler(crm, holder="cli")
    if job_id not in sched.jobs:
        fail(f"no job {job_id!r}; see `crm jobs list`")
    ran = sched.run_job(job_id)
    click.echo(f"ran {job_id} for: {', '.join(ran) or 'no tenant'}")


# --------------------------------------------------------------------------- users/tokens


def _tenant_or_fail(crm, slug: str):
    tenant = crm.tenant(slug)
    if tenant is None:
        fail(f"no tenant {slug!r}; see `crm tenants list`")
    return tenant


@cli.group()
def users() -> None:
    """People who sign in."""


@users.command("create")
@click.option("--tenant", "slug", required=True)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "manager", "agent", "viewer"]), default="agent", show_default=True)
@click.option("--name", default="")
@click.password_option(help="Prompted for when not given.")
@with_app
def users_create(crm, slug: str, email: str, role: str, name: str, password: str) -> None:
    """Create a user in a tenant (audited, by "cli")."""
    from crmcore.entities import users
    from crmcore.entities.context import current
    from crmcore.entities.errors import Conflict, Invalid

    tenant = _tenant_or_fail(crm, slug)
    try:
        user = users.create_user(email, password, role=role, name=name, ctx=current().but(tenant=tenant))
    except Invalid as exc:
        if "email" in exc.errors:
            fail(f"invalid email address {email!r}")
        fail("; ".join(m for messages in exc.errors.values() for m in messages))
    except Conflict:
        fail(f"a user with email {email.strip().lower()!r} already exists in {slug!r}")
    click.echo(f"created user {user.email} ({role}) in {slug}")


@cli.group()
def tokens() -> None:
    """API tokens for programs."""


@tokens.command("create")
@click.option("--tenant", "slug", required=True)
@click.option("--role", type=click.Choice(["admin", "manager", "agent", "viewer"]), required=True)
@click.option("--name", default="", help="What the token is for.")
@with_app
def tokens_create(crm, slug: str, role: str, name: str) -> None:
    """Create a token and print it (it is shown only once); audited, by "cli"."""
    from crmcore import auth, db
    from crmcore.entities import service

    tenant = _tenant_or_fail(crm, slug)
    with db.tenant_context(tenant), db.atomic():
        row, secret = auth.create_token(tenant, role, name)
        service.audit("api_token", row.id, "create", {"name": [None, row.name], "role": [None, row.role], "prefix": [None, row.prefix]})
    click.echo(secret)
    click.echo(f"token {row.id} ({row.prefix}…, role {role}) for tenant {slug}; store it now, it is not shown again", err=True)


@tokens.command("revoke")
@click.option("--tenant", "slug", required=True)
@click.argument("token_id", type=int)
@with_app
def tokens_revoke(crm, slug: str, token_id: int) -> None:
    """Revoke a token by id (audited, by "cli")."""
    from crmcore.db import tenant_context
    from crmcore.entities import users
    from crmcore.models import ApiToken

    with tenant_context(_tenant_or_fail(crm, slug)):
        row = ApiToken.get_or_none(ApiToken.id == token_id)
        if row is None:
            fail(f"no token {token_id} in tenant {slug!r}")
        if row.revoked_at is not None:
            click.echo(f"token {token_id} was already revoked ({row.revoked_at:%Y-%m-%d %H:%M:%S} UTC)")
            return
        if not users.revoke_token(row):  # revoked meanwhile by someone else
            click.echo(f"token {token_id} was already revoked")
            return
    click.echo(f"token {token_id} revoked")


# --------------------------------------------------------------------------- CSV import/export

CSV_ENTITIES = ("leads", "contacts", "companies", "deals")
SHOWN_ROW_ERRORS = 20


def _csv_tenant(crm, entity: str, slug: str):
    """The tenant for ``crm import``/``crm export``; exit 2 for an unknown tenant or an
    entity that has no API (and so no columns) yet."""
    from crmcore.entities import csvio

    if entity not in csvio.available():
        fail(f"{entity} cannot be imported or exported yet (no API module); available: {', '.join(csvio.available())}", 2)
    tenant = crm.tenant(slug)
    if tenant is None:
        fail(f"no tenant {slug!r}; see `crm tenants list`", 2)
    return tenant


def _row_error_text(errors: dict) -> str:
    parts = []
    for column, messages in errors.items():
        text = "; ".join(map(str, messages)) if isinstance(messages, list) else json.dumps(messages)
        parts.append(text if column == "_row" else f"{column}: {text}")
    return " | ".join(parts)


@cli.command("import")
@click.argument("entity", type=click.Choice(CSV_ENTITIES))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The tenant that gets the records.")
@click.option("--dry-run", is_flag=True, help="Check every row as a real import would, write nothing.")
@with_app
def import_command(crm, entity: str, file: Path, slug: str, dry_run: bool) -> None:
    """Import ENTITY records from a CSV FILE (UTF-8, a header row; the columns of `crm export`).

    Each row is checked like an API request and written on its own: bad rows are
    reported with their row number (the header is row 1) and leave nothing behind.
    Exit code 0 when every row was imported, 1 when some failed, 2 for bad arguments
    or a file that cannot be imported at all (not UTF-8 CSV, unknown columns).
    """
    from crmcore import db
    from crmcore.entities import csvio

    tenant = _csv_tenant(crm, entity, slug)
    label = f"{'checking' if dry_run else 'importing'} {entity}"
    with db.tenant_context(tenant), open(file, encoding="utf-8-sig", newline="") as stream:
        try:
            result = csvio.import_csv(entity, stream, dry_run=dry_run, progress=lambda total: click.progressbar(length=total, label=label, file=sys.stderr))
        except csvio.CsvError as exc:
            fail(f"{file}: {exc}; nothing was imported", 2)
    for error in result.errors[:SHOWN_ROW_ERRORS]:
        click.echo(f"row {error['row']}: {_row_error_text(error['errors'])}")
    if result.failed > SHOWN_ROW_ERRORS:
        click.echo(f"... and {result.failed - SHOWN_ROW_ERRORS} more failed row(s)")
    for warning in result.warnings[:SHOWN_ROW_ERRORS]:
        click.echo(f"row {warning['row']}: imported, but {_row_error_text(warning['warnings'])}")
    if dry_run:
        click.echo(f"dry run: {result.created} {entity} would be imported, {result.failed} row(s) would fail; nothing was written")
    else:
        click.echo(f"imported {result.created} {entity} into {slug}, {result.failed} row(s) failed")
    if result.failed:
        sys.exit(1)


@cli.command("export")
@click.argument("entity", type=click.Choice(CSV_ENTITIES))
@click.option("--tenant", "slug", required=True, help="The tenant whose records are exported.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the CSV to this file (default: standard output).")
@with_app
def export_command(crm, entity: str, slug: str, output: Path | None) -> None:
    """Export every ENTITY record of a tenant as CSV (the format `crm import` reads)."""
    from crmcore import db
    from crmcore.entities import csvio

    tenant = _csv_tenant(crm, entity, slug)
    rows = -1  # the header is not a record
    with db.tenant_context(tenant):
        if output is None:
            for line in csvio.export_lines(entity):
                click.echo(line, nl=False)
                rows += 1
        else:
            tmp = output.with_name(f".{output.name}.part")  # no half-written file under the real name
            try:
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    for line in csvio.export_lines(entity):
                        fh.write(line)
                        rows += 1
                tmp.replace(output)
            finally:
                tmp.unlink(missing_ok=True)
    click.echo(f"exported {rows} {entity} from {slug}" + (f" to {output}" if output else ""), err=True)


def main() -> None:
    cli(prog_name="crm")


if __name__ == "__main__":
    main()
