"""The core as a kernel plus built-in plugins (crmcore.builtin.BUILTIN_PLUGINS): each is
registered like an outside plugin, always on, and owns its routes; the vocabularies that
plugins extend (lead sources, activity kinds); the dashboard's figures as widgets; a
bundled plugin whose extra is missing is BROKEN, not a crash."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from crmcore import db, hookimpl
from crmcore.builtin import BUILTIN_PLUGINS
from crmcore.contrib import DashboardWidget
from crmcore.entities.models import Lead
from crmcore.plugins import PluginHost
from tests.core.test_cli import invoke, ok

BUILTINS = {"core", "csv", "privacy", "demo", "dashboard"}


@pytest.fixture
def acme(crm_env: Any) -> Any:
    """crm_env with tenant acme (acme.test), migrated, and its app built."""
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.create_app()
    return crm_env


def test_builtins_are_registered_always_on_and_listed(acme):
    host = acme.crm.host
    assert BUILTINS <= {importlib.import_module(p).plugin.name for p in BUILTIN_PLUGINS}
    for name in BUILTINS:
        info = host.infos[name]
        assert info.always_on and info.source == "builtin" and not info.error, name
        assert acme.crm.is_enabled("acme", name)
    rows = ok(invoke(acme.config_dir, "plugins", "list")).splitlines()[1:]
    for name in BUILTINS:
        row = next(r for r in rows if r.split()[0] == name)
        assert "all (always on)" in row and "builtin" in row


def test_each_builtin_owns_its_blueprints(acme):
    owner = acme.crm.blueprint_plugins
    assert owner["csv_io"] == "csv"
    assert owner["merge"] == owner["privacy"] == "privacy"
    assert owner["leads"] == owner["deals"] == owner["lead_pages"] == owner["core"] == owner["auth"] == "core"
    # The routes answer as before, under the same names and URLs.
    api = acme.client("acme")
    headers = {"Authorization": f"Bearer {acme.token('acme')}"}
    lead = api.post("/api/v1/leads", json={"name": "Ada"}, headers=headers).json
    assert api.get("/api/v1/leads/export.csv", headers=headers).status_code == 200
    assert "Ada" in api.get(f"/api/v1/leads/{lead['id']}/export", headers=headers).get_data(as_text=True)


def test_demo_data_comes_from_the_demo_builtin(acme):
    impls = {i.plugin_name: i for i in acme.crm.host.pm.hook.crm_demo_data.get_hookimpls()}
    assert "demo" in impls and "core" not in impls
    assert impls["demo"].opts["tryfirst"]  # the others link to its records


# --------------------------------------------------------------------------- vocabularies


@pytest.fixture
def two_tenants(crm_env):
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


def post(env, slug: str, url: str, body: dict[str, Any]) -> Any:
    return env.client(slug).post(url, json=body, headers={"Authorization": f"Bearer {env.token(slug)}"})


def test_hook_crm_lead_sources(two_tenants, register_plugin, caplog):
    class Webinars:
        @hookimpl
        def crm_lead_sources(self, tenant):
            return ["webinar", "Not A Name"]  # (a non-str is dropped by the hook's type check)

    register_plugin(Webinars(), name="webinars", always_on=False)
    two_tenants.write_tenant("acme", name="Acme Ltd", plugins=["webinars"])
    two_tenants.reload()
    created = post(two_tenants, "acme", "/api/v1/leads", {"name": "Ada", "source": "webinar"})
    assert created.status_code == 201 and created.json["source"] == "webinar"
    refused = post(two_tenants, "other", "/api/v1/leads", {"name": "Ada", "source": "webinar"})
    assert refused.status_code == 422
    message = refused.json["errors"]["json"]["source"][0]
    assert "webinar" not in message and "referral" in message and "manual" in message  # names the allowed ones
    assert "'webinars'" in caplog.text and "Not A Name" in caplog.text  # bad names logged, ignored
    # The lead pages offer the tenant's sources.
    client = two_tenants.client("acme")
    two_tenants.login(client, "acme")
    assert 'value="webinar"' in client.get("/app/leads/new").get_data(as_text=True)


def test_hook_crm_activity_kinds(two_tenants, register_plugin):
    class Visits:
        @hookimpl
        def crm_activity_kinds(self, tenant):
            return ["site_visit"]

    register_plugin(Visits(), name="visits", always_on=False)
    two_tenants.write_tenant("acme", name="Acme Ltd", plugins=["visits"])
    two_tenants.reload()
    for slug, status in (("acme", 201), ("other", 422)):
        lead = post(two_tenants, slug, "/api/v1/leads", {"name": "Ada"}).json
        logged = post(two_tenants, slug, "/api/v1/activities", {"lead_id": lead["id"], "kind": "site_visit", "subject": "Came by"})
        assert logged.status_code == status, (slug, logged.json)
    assert "call" in logged.json["errors"]["json"]["kind"][0]
    assert post(two_tenants, "other", "/api/v1/activities", {"lead_id": lead["id"], "kind": "call"}).status_code == 201


def test_chat_source_and_kind_only_where_chat_is_on(two_tenants):
    two_tenants.write_tenant("acme", name="Acme Ltd", plugins=["chat"])
    two_tenants.reload()
    assert post(two_tenants, "acme", "/api/v1/leads", {"name": "Ada", "source": "chat"}).status_code == 201
    refused = post(two_tenants, "other", "/api/v1/leads", {"name": "Ada", "source": "chat"})
    assert refused.status_code == 422 and "chat" not in refused.json["errors"]["json"]["source"][0]
    lead = post(two_tenants, "other", "/api/v1/leads", {"name": "Bob"}).json
    assert post(two_tenants, "other", "/api/v1/activities", {"lead_id": lead["id"], "kind": "chat"}).status_code == 422


def test_a_lead_keeps_a_source_no_longer_offered(two_tenants):
    """Chat turned off: its leads keep "chat", and a full update sending it back passes."""
    with db.database.connection_context(), db.tenant_context(two_tenants.tenant("other")):
        lead = Lead.create(name="From chat", source="chat")
    client, headers = two_tenants.client("other"), {"Authorization": f"Bearer {two_tenants.token('other')}"}
    assert client.patch(f"/api/v1/leads/{lead.id}", json={"name": "Renamed", "source": "chat"}, headers=headers).status_code == 200
    assert client.patch(f"/api/v1/leads/{lead.id}", json={"source": "telepathy"}, headers=headers).status_code == 422


# --------------------------------------------------------------------------- dashboard


def test_dashboard_figures_are_widgets_of_the_dashboard_builtin(acme, register_plugin):
    with acme.app.test_request_context(base_url="http://acme.test"):
        contributed = dict(acme.crm.call("acme", "crm_dashboard_widgets", tenant=acme.tenant("acme"), user=None))
    assert [w.name for w in contributed["dashboard"]] == ["open-leads", "open-deals", "pipeline-value", "my-tasks"]
    assert {w.placement for w in contributed["dashboard"]} == {"summary"}

    class Figure:
        @hookimpl
        def crm_dashboard_widgets(self, tenant, user):
            return [DashboardWidget(name="open-chats", title="Open chats", render=lambda: "<p class='figure'>3</p>", order=5, placement="summary")]

    register_plugin(Figure(), name="figure")
    client = acme.client("acme")
    acme.login(client, "acme")
    html = client.get("/app/").get_data(as_text=True)
    summary = html[html.index('class="summary"'):]
    assert summary.index("Open chats") < summary.index("Open leads") < summary.index("My tasks")
    assert 'data-widget="open-chats"' in summary


# --------------------------------------------------------------------------- extras


@pytest.mark.parametrize("plugin", ["scoring", "chat"])
def test_bundled_plugin_without_its_extra_is_broken_not_a_crash(plugin, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if scikit-learn were not installed
    for name in [m for m in sys.modules if m == f"crm_plugins.{plugin}" or m.startswith(f"crm_plugins.{plugin}.")]:
        monkeypatch.delitem(sys.modules, name)
    host = PluginHost()
    host.discover()
    error = host.infos[plugin].error
    assert error and "scikit-learn" in error and f"crm-framework[{plugin}]" in error
    assert not host.infos["core"].error and not host.infos["kanban"].error
