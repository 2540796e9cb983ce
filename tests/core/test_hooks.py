"""One test per hook of crmcore.hookspecs (``test_hook_<name>``), each asserting the hook's
real effect through the app, plus the containment guarantees: a raising plugin does not
break the page, the sender or the other plugins, and is logged with its name.

Runtime hooks are exercised with tiny plugin objects (``register_plugin``); startup hooks,
which are only read while the app is built, with :func:`build_app`. Most tests run on the
sample plugin's environment: tenant alpha has the sample plugin on, beta does not.
tests/core/test_hook_reference.py fails when a hook has no test here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import flask
import peewee
import pytest
from click.testing import CliRunner

from crmcore import (
    DashboardWidget,
    NavItem,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
    db,
    hookimpl,
    signals,
)
from crmcore.app import create_app, crm_state
from crmcore.db import tenant_context
from crmcore.jobs import Scheduler
from crmcore.migrations import migrate
from crmcore.models import MigrationRecord, Task
from crmcore.plugins import PluginError, PluginHost, PluginInfo
from crmcore.tasks import Worker, enqueue


@pytest.fixture
def app(sample_env):
    """Overrides crmcore.testing's ``app`` so that ``register_plugin`` (and ``client``)
    work on the sample environment's app instead of building a second one."""
    return sample_env.app


def build_app(crm_env, plugins: dict[str, Any], *, entry_points: bool = True, always_on: bool = False):
    """Build an app with extra plugin objects registered *before* startup, so that their
    startup hooks (models, blueprints, receivers ...) are read. Tenants must be written
    first; a plugin that is not ``always_on`` acts only for tenants that list it."""
    host = PluginHost()
    host.discover(entry_points=entry_points)
    for name, obj in plugins.items():
        host.pm.register(obj, name=name)
        host.infos[name] = PluginInfo(name, "0", "", (), None, name, "test", hooks_module=obj, always_on=always_on)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    app = create_app(crm_env.config_dir, env=env, host=host)
    crm_env.apps.append(app)  # crm_env shuts it down (receivers disconnected) after the test
    with app.app_context():
        migrate(host, report=lambda m: None)
    return app


def receipts(env, slug: str, kind: str) -> list[str]:
    """What the sample plugin's receiver/job/task recorded for a tenant."""
    from crm_sample.models import SampleReceipt

    with db.database.connection_context(), tenant_context(env.tenant(slug)):
        query = SampleReceipt.select().where(SampleReceipt.kind == kind).order_by(SampleReceipt.id)
        return [r.detail for r in query]


def bearer(env, slug: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.token(slug)}"}


def plugin_logged(caplog, plugin: str) -> bool:
    return any(repr(plugin) in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)


class Record:
    """Stands in for a saved record in signal data."""

    def __init__(self, id: int):
        self.id = id


# =======================================================================================
# Startup hooks
# =======================================================================================


def test_hook_crm_models(sample_env):
    from crm_sample.models import SampleItem

    # Bound to the core's database proxy, and tenant-scoped as a TenantModel.
    assert SampleItem._meta.database is db.database
    with db.database.connection_context():
        with tenant_context(sample_env.tenant("alpha")):
            SampleItem.create(name="only alpha's")
        with tenant_context(sample_env.tenant("beta")):
            assert SampleItem.select().count() == 0
        with tenant_context(sample_env.tenant("alpha")):
            assert [i.name for i in SampleItem.select()] == ["only alpha's"]


def test_crm_models_rejects_a_model_not_bound_to_the_core(crm_env):
    class Stray(peewee.Model):
        name = peewee.CharField()

    class StrayPlugin:
        @hookimpl
        def crm_models(self):
            return [Stray]

    crm_env.write_tenant("alpha")
    with pytest.raises(PluginError, match=r"plugin 'stray': model Stray must subclass"):
        build_app(crm_env, {"stray": StrayPlugin()}, entry_points=False)


def test_hook_crm_migrations(sample_env):
    with db.database.connection_context():
        records = MigrationRecord.select().where(MigrationRecord.plugin.in_(["core", "sample"]))
        applied = [(r.plugin, r.name) for r in records.order_by(MigrationRecord.id)]
        columns = {c.name for c in db.database.get_columns("sample_item")}
    # Dependency order: the core's tables first, then the plugin's migrations in order.
    core = [(p, n) for p, n in applied if p == "core"]
    assert applied == core + [("sample", "0001_initial"), ("sample", "0002_item_colour")]
    assert core[0] == ("core", "0001_initial")
    assert {"tenant_id", "name", "colour", "created_at"} <= columns
    with sample_env.app.app_context():
        assert migrate(sample_env.crm.host) == []  # nothing runs twice


def test_hook_crm_api_blueprints(sample_env):
    alpha, beta = sample_env.client("alpha"), sample_env.client("beta")
    spec = alpha.get("/api/v1/openapi.json").json
    assert "/api/v1/sample/items" in spec["paths"]  # in the single OpenAPI document

    created = alpha.post("/api/v1/sample/items", json={"name": "Widget"}, headers=bearer(sample_env, "alpha"))
    assert created.status_code == 201, created.json
    assert alpha.get("/api/v1/sample/items").status_code == 401  # credentials required
    assert beta.get("/api/v1/sample/items", headers=bearer(sample_env, "beta")).status_code == 404


def test_hook_crm_web_blueprints(sample_env):
    alpha = sample_env.client("alpha")
    anonymous = alpha.get("/app/sample/")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    sample_env.login(alpha, "alpha")
    page = alpha.get("/app/sample/")
    assert page.status_code == 200
    assert "HI ALPHA!" in page.get_data(as_text=True)  # templates/sample/index.html, extends crm/base.html

    beta = sample_env.client("beta")
    sample_env.login(beta, "beta")
    assert beta.get("/app/sample/").status_code == 404


def test_public_web_blueprint_needs_no_sign_in(crm_env):
    class Pages:
        @hookimpl
        def crm_web_blueprints(self):
            public = flask.Blueprint("hooktest_public", __name__, url_prefix="/hooktest-public")
            public.crm_public = True
            public.add_url_rule("/", "index", lambda: "public page")
            private = flask.Blueprint("hooktest_private", __name__, url_prefix="/app/hooktest")
            private.add_url_rule("/", "index", lambda: "private page")
            return [public, private]

    crm_env.write_tenant("alpha", plugins=["pages"])
    crm_env.write_tenant("beta")
    build_app(crm_env, {"pages": Pages()}, entry_points=False)
    alpha, beta = crm_env.client("alpha"), crm_env.client("beta")
    assert alpha.get("/hooktest-public/").get_data(as_text=True) == "public page"
    assert alpha.get("/app/hooktest/").status_code == 302  # to the sign-in page
    assert beta.get("/hooktest-public/").status_code == 404
    assert beta.get("/app/hooktest/").status_code == 404


def test_hook_crm_signal_receivers(sample_env):
    alpha, beta = sample_env.tenant("alpha"), sample_env.tenant("beta")
    with sample_env.app.app_context(), db.database.connection_context():
        # Sent after commit: nothing on rollback, nothing before the commit.
        with pytest.raises(RuntimeError), db.atomic():
            signals.send("entity_created", alpha, entity="lead", record=Record(1))
            raise RuntimeError("rolled back")
        with db.atomic():
            signals.send("entity_created", alpha, entity="lead", record=Record(2))
            assert receipts(sample_env, "alpha", "receiver") == []
        # Only for tenants that have the plugin on.
        signals.send("entity_created", beta, entity="lead", record=Record(3))
    # The receiver runs with the sender as the current tenant (its row is alpha's).
    assert receipts(sample_env, "alpha", "receiver") == ["lead:2"]
    assert receipts(sample_env, "beta", "receiver") == []


def test_raising_receiver_is_contained(crm_env, sample_plugin_path, caplog):
    def explode(tenant, **data):
        raise RuntimeError("receiver bug")

    class Faulty:
        @hookimpl
        def crm_signal_receivers(self):
            return [SignalReceiver("entity_created", explode)]

    crm_env.write_tenant("alpha", plugins=["sample", "faulty"])
    build_app(crm_env, {"faulty": Faulty()})
    created = crm_env.client("alpha").post("/api/v1/sample/items", json={"name": "A"}, headers=bearer(crm_env, "alpha"))
    assert created.status_code == 201  # the exception never reached the sender
    assert receipts(crm_env, "alpha", "receiver") == ["sample_item:1"]  # the other receiver ran
    assert plugin_logged(caplog, "faulty")
    assert "receiver bug" in caplog.text


def test_hook_crm_scheduled_jobs(sample_env):
    scheduler = Scheduler(sample_env.crm, holder="test")
    plugin, job = scheduler.jobs["sample:tick"]
    assert plugin == "sample" and job.trigger == "interval" and job.trigger_args == {"seconds": 1}
    assert scheduler.run_job("sample:tick") == ["alpha"]  # once per tenant with the plugin on
    assert receipts(sample_env, "alpha", "job") == ["alpha"]
    assert receipts(sample_env, "beta", "job") == []


def test_failing_job_for_one_tenant_does_not_stop_the_others(sample_env, register_plugin, caplog):
    seen: list[str] = []

    def flaky(tenant):
        seen.append(db.current_tenant().slug)  # the tenant is the current tenant
        if tenant.slug == "alpha":
            raise RuntimeError("job bug")

    class Jobs:
        @hookimpl
        def crm_scheduled_jobs(self):
            return [ScheduledJob("flaky:job", flaky, trigger="cron", trigger_args={"hour": 3})]

    register_plugin(Jobs(), name="flaky")  # always on: every tenant
    assert Scheduler(sample_env.crm, holder="test").run_job("flaky:job") == ["beta"]
    assert seen == ["alpha", "beta"]
    assert plugin_logged(caplog, "flaky")


def test_hook_crm_task_handlers(sample_env):
    crm = sample_env.crm
    assert crm.task_plugins["sample.record"] == "sample"
    alpha, beta = sample_env.tenant("alpha"), sample_env.tenant("beta")
    with sample_env.app.app_context(), db.database.connection_context():
        first = enqueue("sample.record", {"detail": "hello"}, tenant=alpha, idempotency_key="k1")
        again = enqueue("sample.record", {"detail": "other"}, tenant=alpha, idempotency_key="k1")
        assert again.id == first.id  # an idempotency key enqueues once
        assert Worker(crm).run_one().status == "done"

        enqueue("sample.record", {"detail": "beta's"}, tenant=beta)
        cancelled = Worker(crm).run_one()
        assert cancelled.status == "cancelled"  # beta does not have the plugin on
        assert Task.get_by_id(first.id).status == "done"
    assert receipts(sample_env, "alpha", "task") == ["hello"]
    assert receipts(sample_env, "beta", "task") == []


def test_two_handlers_for_one_task_kind_is_a_startup_error(crm_env, sample_plugin_path):
    class Clash:
        @hookimpl
        def crm_task_handlers(self):
            return [TaskHandler("sample.record", lambda task: None)]

    crm_env.write_tenant("alpha")
    with pytest.raises(PluginError, match=r"task kind 'sample.record' declared by") as info:
        build_app(crm_env, {"clash": Clash()})
    assert "'sample'" in str(info.value) and "'clash'" in str(info.value)


PLUGINS_DIR_HOOKS = '''
import click

from crmcore import hookimpl
from crmcore.cli import with_app


@hookimpl
def crm_cli_commands(cli):
    @cli.group()
    def hooktestcli():
        """Commands of the hooktestcli plugin."""

    @hooktestcli.command()
    @click.option("--plugin", default="hooktestcli")
    @with_app
    def tenants(crm, plugin):
        """Tenants that have PLUGIN on."""
        on = [slug for slug in sorted(crm.config.tenants) if crm.is_enabled(slug, plugin)]
        click.echo(f"on for: {', '.join(on)}; app context: {crm is crm_state()}")


def crm_state():
    from crmcore.app import crm_state

    return crm_state()
'''


def test_hook_crm_cli_commands(crm_env, sample_plugin_path, tmp_path):
    from crmcore.cli import cli

    # A plugin in a plugins directory: the folder name is the plugin's name.
    package = tmp_path / "plugins" / "hooktestcli"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('from crmcore import Plugin\n\nplugin = Plugin(name="hooktestcli")\n')
    (package / "hooks.py").write_text(PLUGINS_DIR_HOOKS)
    crm_env.write_instance(plugins_dir=str(tmp_path / "plugins"))
    crm_env.write_tenant("alpha", plugins=["hooktestcli"])
    crm_env.write_tenant("beta")

    obj: dict[str, Any] = {}
    runner = CliRunner()
    try:
        hello = runner.invoke(cli, ["--config", str(crm_env.config_dir), "sample", "hello", "tester"], obj=obj)
        assert hello.exit_code == 0, hello.output
        assert "hello tester from the sample plugin" in hello.output  # entry-point plugin
        tenants = runner.invoke(cli, ["--config", str(crm_env.config_dir), "hooktestcli", "tenants"], obj=obj)
        assert tenants.exit_code == 0, tenants.output
        assert "on for: alpha; app context: True" in tenants.output  # plugins-dir plugin + with_app
    finally:
        if "app" in obj:  # the app `with_app` built (shutting down twice is harmless)
            obj["app"].extensions["crm"].shutdown()
        for name in [m for m in sys.modules if m == "hooktestcli" or m.startswith("hooktestcli.")]:
            del sys.modules[name]
        sys.path.remove(str(tmp_path / "plugins"))


def test_hook_crm_startup(crm_env, sample_plugin_path):
    seen: dict[str, Any] = {}

    class Watcher:
        @hookimpl
        def crm_startup(self, app):
            # Called once the app is fully built: every blueprint and the CRM state exist.
            seen["sample page"] = "sample_pages.index" in app.view_functions
            seen["crm"] = "crm" in app.extensions

    crm_env.write_tenant("alpha", plugins=["sample"])
    app = build_app(crm_env, {"watcher": Watcher()})
    assert seen == {"sample page": True, "crm": True}
    assert app.jinja_env.filters["shout"]("hi") == "HI!"  # the sample plugin's crm_startup


def test_failing_startup_hook_names_the_plugin(crm_env):
    class Broken:
        @hookimpl
        def crm_startup(self, app):
            raise ValueError("no such extension")

    crm_env.write_tenant("alpha")
    with pytest.raises(PluginError, match=r"plugin 'broken': hook crm_startup failed: no such extension"):
        build_app(crm_env, {"broken": Broken()}, entry_points=False)


# =======================================================================================
# Runtime hooks
# =======================================================================================


def core_record_labels() -> set[str]:
    """Labels of the core's record pages (crmcore.web modules' NAV), besides Dashboard."""
    import importlib
    import pkgutil

    import crmcore.web

    labels = set()
    for info in pkgutil.iter_modules(crmcore.web.__path__):
        nav = getattr(importlib.import_module(f"crmcore.web.{info.name}"), "NAV", None)
        if nav is not None:
            labels.add(nav.label)
    return labels


def nav_labels(html: str) -> list[str]:
    """The navigation's labels in page order, without the core's record pages."""
    nav = html.split('class="mainnav"', 1)[1].split("</nav>", 1)[0]
    labels = [part.split("</a>", 1)[0].rsplit(">", 1)[-1] for part in nav.split("<a ")[1:]]
    return [label for label in labels if label not in core_record_labels()]


def test_hook_crm_nav_items(sample_env, register_plugin):
    class Extra:
        @hookimpl
        def crm_nav_items(self, tenant, user):
            return [
                NavItem(label="Zeta first", endpoint="core.dashboard", order=5),
                NavItem(label="Managers only", endpoint="core.dashboard", order=5, roles=("manager",)),
            ]

    register_plugin(Extra(), name="extra")
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha", role="admin")
    # Sorted by order (then label), filtered by role; the sample item only where it is on.
    assert nav_labels(alpha.get("/app/").get_data(as_text=True)) == ["Dashboard", "Zeta first", "Sample"]
    beta = sample_env.client("beta")
    sample_env.login(beta, "beta", role="manager")
    assert nav_labels(beta.get("/app/").get_data(as_text=True)) == ["Dashboard", "Managers only", "Zeta first"]


def test_raising_nav_items_is_contained(sample_env, register_plugin, caplog):
    class Broken:
        @hookimpl
        def crm_nav_items(self, tenant, user):
            raise RuntimeError("nav bug")

    register_plugin(Broken(), name="broken")
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha")
    page = alpha.get("/app/sample/")
    assert page.status_code == 200
    assert nav_labels(page.get_data(as_text=True)) == ["Dashboard", "Sample"]
    assert plugin_logged(caplog, "broken")
    assert "crm_nav_items" in caplog.text and "nav bug" in caplog.text


def test_hook_crm_dashboard_widgets(sample_env, register_plugin, caplog):
    def broken_render():
        raise RuntimeError("widget bug")

    class Widgets:
        @hookimpl
        def crm_dashboard_widgets(self, tenant, user):
            return [
                DashboardWidget(name="first", title="First widget", render=lambda: "<p>first</p>", order=1),
                DashboardWidget(name="broken", title="Broken widget", render=broken_render, order=2),
                DashboardWidget(name="secret", title="Secret", render=lambda: "<p>secret</p>", roles=("manager",)),
            ]

    register_plugin(Widgets(), name="widgets")
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha", role="admin")
    html = alpha.get("/app/").get_data(as_text=True)
    assert html.index("First widget") < html.index("Broken widget") < html.index("Sample items")  # by order
    assert "This widget could not be shown." in html
    assert "<p class='sample-widget'>0 sample items</p>" in html
    assert "Secret" not in html  # roles
    assert plugin_logged(caplog, "widgets") and "widget bug" in caplog.text

    beta = sample_env.client("beta")
    sample_env.login(beta, "beta")
    assert "sample-widget" not in beta.get("/app/").get_data(as_text=True)


def test_hook_crm_list_columns(sample_env, register_plugin, caplog):
    from markupsafe import escape

    from crmcore import ListColumn, ListFilter
    from crmcore.entities import service
    from crmcore.entities.models import Lead

    with sample_env.app.app_context(), db.database.connection_context(), tenant_context(sample_env.tenant("alpha")):
        ids = [service.create(Lead, {"name": name}).id for name in ("Bravo", "Alpha", "Charlie")]
    calls: list[tuple[str, str, list[int]]] = []
    rank = {ids[0]: 2, ids[1]: 3, ids[2]: 1}  # Alpha best, then Bravo, Charlie

    class Columns:
        @hookimpl
        def crm_list_columns(self, tenant, user, entity):
            if entity != "lead":
                return []

            def values(page_ids):
                calls.append((tenant.slug, user.role, list(page_ids)))
                return {i: f"<b class='rank'>{rank[i]}</b>" for i in page_ids}

            def broken(page_ids):
                raise RuntimeError("cells bug")

            rank_sql = peewee.Case(Lead.id, [(i, r) for i, r in rank.items()], 0)
            return [
                ListColumn("columns:rank", "Rank", values, order=5, sort=rank_sql,
                           filter=ListFilter("Rank", (("top", "Top two"),), lambda chosen: rank_sql >= 2, blank="Any rank")),
                ListColumn("columns:broken", "Broken cells", broken, order=6),
                ListColumn("columns:plain", "Plain <escaped>", lambda page_ids: {i: escape("<i>") for i in page_ids}, order=7),
            ]

    class Raising:
        @hookimpl
        def crm_list_columns(self, tenant, user, entity):
            raise RuntimeError("columns hook bug")

    class Disabled:
        @hookimpl
        def crm_list_columns(self, tenant, user, entity):
            return [ListColumn("disabled:col", "Not for this tenant", lambda page_ids: {})]

    register_plugin(Columns(), name="columns")
    register_plugin(Raising(), name="raising")
    register_plugin(Disabled(), name="disabled", always_on=False)
    caplog.set_level(logging.ERROR)
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha", role="agent")

    def names(html: str) -> list[str]:
        return re.findall(r'<td class="primary-cell"><a href="/app/leads/\d+">([^<]*)</a>', html)

    page = alpha.get("/app/leads/?sort=name")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert names(html) == ["Alpha", "Bravo", "Charlie"]
    # shown after the page's own columns, by order; the cells as given; values once per page
    assert html.index(">Created<") < html.index('data-column="columns:rank"') < html.index("Broken cells") < html.index("Plain &lt;escaped&gt;")
    assert "<b class='rank'>3</b>" in html and "&lt;i&gt;" in html
    assert calls == [("alpha", "agent", [ids[1], ids[0], ids[2]])]
    assert "This column could not be shown." in html  # the raising values(), contained
    assert "Not for this tenant" not in html
    assert "cells bug" in caplog.text and "columns hook bug" in caplog.text
    assert any("'columns'" in r.getMessage() for r in caplog.records) and any("'raising'" in r.getMessage() for r in caplog.records)

    # sortable by its expression, keyset pages across the sort; its filter in the form
    desc = alpha.get("/app/leads/?sort=-columns:rank&limit=2").get_data(as_text=True)
    assert names(desc) == ["Alpha", "Bravo"] and 'aria-sort="descending"' in desc and 'name="columns:rank"' in desc
    cursor = desc.split('rel="next"')[0].rsplit("cursor=", 1)[1].split('"', 1)[0]
    assert names(alpha.get(f"/app/leads/?sort=-columns:rank&limit=2&cursor={cursor}").get_data(as_text=True)) == ["Charlie"]
    assert names(alpha.get("/app/leads/?columns:rank=top&sort=columns:rank").get_data(as_text=True)) == ["Bravo", "Alpha"]
    assert "Must be one of: top." in alpha.get("/app/leads/?columns:rank=bottom").get_data(as_text=True)

    # a tenant without the plugin: no column, its sort refused (a notice, the default order), no 500
    beta = sample_env.client("beta")
    sample_env.login(beta, "beta")
    page = beta.get("/app/leads/?sort=-disabled:col")
    assert page.status_code == 200 and "Not for this tenant" not in page.get_data(as_text=True)
    assert "<code>sort</code>" in page.get_data(as_text=True)


def render_for(env, slug: str, source: str) -> str:
    """Render a template string inside a request to ``slug``'s host (after the core has
    resolved the request's tenant)."""
    app = env.app
    with app.test_request_context("/", base_url=f"http://{slug}.test"):
        app.preprocess_request()
        return flask.render_template_string(source)


def test_hook_crm_template_context(sample_env, register_plugin, caplog):
    class Context:
        @hookimpl
        def crm_template_context(self, tenant, user):
            return {"tenant": "hijacked", "shout_count": 3}

    register_plugin(Context(), name="context")
    source = "{{ sample_greeting | default('none') }}|{{ tenant.slug }}|{{ shout_count }}"
    assert render_for(sample_env, "alpha", source) == "Hi alpha|alpha|3"
    assert render_for(sample_env, "beta", source) == "none|beta|3"  # only enabled plugins
    assert plugin_logged(caplog, "context") and "'tenant' is already set" in caplog.text


def test_hook_crm_demo_data(sample_env):
    from crm_sample.models import SampleItem

    from crmcore.cli import ensure_demo

    crm = sample_env.crm
    with sample_env.app.app_context(), db.database.connection_context():
        assert crm.config.instance.default_tenant == ""  # so the demo tenant is the first: alpha
        ensure_demo(crm)
        ensure_demo(crm)  # `crm run --demo` seeds at every start: must be idempotent
        with tenant_context(sample_env.tenant("alpha")):
            assert [i.name for i in SampleItem.select()] == ["Demo item"]
        beta = sample_env.tenant("beta")
        with tenant_context(beta):
            crm.call(beta, "crm_demo_data", tenant=beta)
            assert SampleItem.select().count() == 0  # the plugin is off for beta


# =======================================================================================
# Hooks a plugin declares for other plugins
# =======================================================================================


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    package = root / name
    package.mkdir(parents=True)
    for filename, text in files.items():
        (package / filename).write_text(textwrap.dedent(text))


def test_plugin_declared_hookspecs_are_called_per_tenant(crm_env, tmp_path):
    root = tmp_path / "site"
    write_package(root, "crm_hookx", {
        "__init__.py": """
            from crmcore import Plugin

            plugin = Plugin(name="hookx", hookspecs="crm_hookx.hookspecs")
        """,
        "hookspecs.py": '''
            from crmcore import hookspec


            @hookspec
            def crm_hookx_greetings(tenant):
                """Greetings for the tenant's home page."""
        ''',
        "hooks.py": """
            from crmcore import hookimpl


            @hookimpl
            def crm_hookx_greetings(tenant):
                return "hello from hookx"
        """,
    })
    write_package(root, "crm_hooky", {
        "__init__.py": """
            from crmcore import Plugin

            plugin = Plugin(name="hooky", requires=("hookx",))
        """,
        "hooks.py": """
            from crmcore import hookimpl

            CALLS = []


            @hookimpl
            def crm_hookx_greetings(tenant):
                CALLS.append(tenant.slug)
                return f"hello {tenant.slug} from hooky"
        """,
    })
    crm_env.write_tenant("alpha")
    crm_env.write_tenant("beta")
    app = crm_env.create_app()
    host = crm_env.crm.host
    sys.path.insert(0, str(root))
    try:
        import crm_hookx
        import crm_hooky

        host.register(crm_hookx)
        host.register(crm_hooky)
        crm_env.write_tenant("alpha", plugins=["hookx", "hooky"])
        crm_env.write_tenant("beta", plugins=["hookx"])
        crm_env.reload()
        alpha, beta = crm_env.tenant("alpha"), crm_env.tenant("beta")
        with app.app_context():
            assert crm_state().hook(alpha, "crm_hookx_greetings")(tenant=alpha) == ["hello alpha from hooky", "hello from hookx"]
            assert crm_state().hook(beta, "crm_hookx_greetings")(tenant=beta) == ["hello from hookx"]
            # The contained variant names each answer's plugin.
            assert crm_state().call(alpha, "crm_hookx_greetings", tenant=alpha) == [
                ("hooky", "hello alpha from hooky"),
                ("hookx", "hello from hookx"),
            ]
        assert sys.modules["crm_hooky.hooks"].CALLS == ["alpha", "alpha"]  # never for beta
    finally:
        for name in ("hooky", "hookx"):
            if name in host.infos:
                host.unregister(name)
        for name in [m for m in sys.modules if m.split(".")[0] in ("crm_hookx", "crm_hooky")]:
            del sys.modules[name]
        sys.path.remove(str(root))


def test_hook_crm_permissions(sample_env):
    """The sample plugin's own permission: managers may create items, agents may not."""
    alpha = sample_env.client("alpha")
    assert sample_env.crm.permissions["sample:write"] == ("admin", "manager")
    for role, status in (("manager", 201), ("agent", 403), ("viewer", 403)):
        token = sample_env.token("alpha", role)
        response = alpha.post("/api/v1/sample/items", json={"name": role}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, (role, response.json)


def test_plugin_permission_must_be_prefixed(crm_env):
    from crmcore import Permission

    class Greedy:
        @hookimpl
        def crm_permissions(self):
            return [Permission("records:read", roles=("viewer",))]

    crm_env.write_tenant("alpha")
    with pytest.raises(PluginError, match="already declared"):
        build_app(crm_env, {"greedy": Greedy()}, entry_points=False)
