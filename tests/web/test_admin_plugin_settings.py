"""Admins without a shell: /app/admin/plugins turns plugins on and off and edits their
settings in a form generated from the settings schema, writing config/tenants/<slug>.toml
(comments kept), validated as a hand edit is, applied live. Real app, real files."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from crmcore.plugins import PluginInfo

TENANT_FILE = """\
# Acme's tenant file: edited by hand and by the admin pages.
name = "Acme Ltd"
hostnames = ["acme.test"]
# the plugins on for acme
plugins = ["chat"]  # chat first

[settings.chat]
# visitors come from our marketing site
allowed_origins = ["https://www.acme.test"]
public_key = { "$env" = "ACME_CHAT_KEY" }
"""


@pytest.fixture
def web(crm_env):
    import os

    os.environ.setdefault("ACME_CHAT_KEY", "pk-secret-from-env-123")
    (crm_env.config_dir / "tenants").mkdir(parents=True, exist_ok=True)
    (crm_env.config_dir / "tenants" / "acme.toml").write_text(TENANT_FILE)
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def path(web):
    return web.config_dir / "tenants" / "acme.toml"


def post(env, client, url, data=None):
    return client.post(url, data={**(data or {}), "csrf_token": env.csrf(client)})


def html(response):
    return response.get_data(as_text=True)


def fingerprint(client, url):
    return re.search(r'name="fingerprint" value="([0-9a-f]+)"', html(client.get(url))).group(1)


def test_settings_form_saves_keeping_comments_and_applies_live(web, path):
    admin = web.client("acme")
    web.login(admin, "acme", "admin")
    page = admin.get("/app/admin/plugins/chat/")
    body = html(page)
    assert page.status_code == 200
    assert 'name="greeting"' in body and 'name="colour"' in body and "https://www.acme.test" in body
    # The $env value is shown as such, never resolved.
    assert "ACME_CHAT_KEY" in body and "pk-secret-from-env-123" not in body
    saved = post(web, admin, "/app/admin/plugins/chat/", {
        "fingerprint": fingerprint(admin, "/app/admin/plugins/chat/"),
        "allowed_origins": "https://www.acme.test\nhttps://shop.acme.test", "greeting": "Hello from Acme!", "colour": "#0a7d3b",
        "max_message_length": "1500", "public_key": "", "assistant_enabled__present": "1",  # unticked: off
    })
    assert saved.status_code == 302, html(saved)
    text = path.read_text()
    for comment in ("# Acme's tenant file", "# the plugins on for acme", "# chat first", "# visitors come from our marketing site"):
        assert comment in text
    assert 'public_key = { "$env" = "ACME_CHAT_KEY" }' in text
    assert 'greeting = "Hello from Acme!"' in text and "max_message_length = 1500" in text and "assistant_enabled = false" in text
    assert "title" not in text  # untouched defaults are not written
    settings = web.crm.settings(web.tenant("acme"), "chat")
    assert settings["allowed_origins"] == ["https://www.acme.test", "https://shop.acme.test"]
    assert (settings["greeting"], settings["colour"], settings["max_message_length"], settings["assistant_enabled"]) == ("Hello from Acme!", "#0a7d3b", 1500, False)
    assert settings["public_key"] == "pk-secret-from-env-123"
    again = html(admin.get("/app/admin/plugins/chat/"))
    assert "Hello from Acme!" in again and "pk-secret-from-env-123" not in again
    assert "/app/admin/plugins/chat/" in html(admin.get("/app/chat/setup"))  # the widget page links here


def test_a_bad_value_is_refused_with_the_fields_message_and_the_file_untouched(web, path):
    admin = web.client("acme")
    web.login(admin, "acme", "admin")
    before = path.read_text()
    refused = post(web, admin, "/app/admin/plugins/chat/", {"colour": "green", "max_message_length": "lots", "allowed_origins": "https://ok.test\nftp://nope/x"})
    body = html(refused)
    assert refused.status_code == 422
    assert "a colour like #2563eb" in body and "Not a valid integer." in body and "an origin like https://www.example.com" in body
    assert 'id="f-colour"' in body and 'aria-describedby="colour-error"' in body and 'value="green"' in body
    assert path.read_text() == before
    assert web.crm.settings(web.tenant("acme"), "chat")["colour"] == "#2563eb"
    # An edit of the file meanwhile: the page's save is refused, not merged blindly.
    stale = fingerprint(admin, "/app/admin/plugins/chat/")
    path.write_text(before.replace("Acme Ltd", "Acme Limited"))
    conflict = post(web, admin, "/app/admin/plugins/chat/", {"fingerprint": stale, "greeting": "Hi"})
    assert conflict.status_code == 409 and "changed by someone else" in html(conflict)
    assert "greeting" not in path.read_text()


def test_turning_a_plugin_on_shows_its_nav_item_without_restart_and_says_what_it_requires(web, path):
    admin = web.client("acme")
    web.login(admin, "acme", "admin")
    assert "/app/kanban/" not in html(admin.get("/app/"))
    index = html(admin.get("/app/admin/plugins/"))
    assert "Turn on kanban" in index and "Turn off chat" in index
    on = post(web, admin, "/app/admin/plugins/kanban/enabled", {"on": "1", "fingerprint": fingerprint(admin, "/app/admin/plugins/")})
    assert on.status_code == 302
    assert 'plugins = ["chat", "kanban"]  # chat first' in path.read_text()
    assert "/app/kanban/" in html(admin.get("/app/")) and admin.get("/app/kanban/").status_code == 200

    web.crm.host.infos["boardplus"] = PluginInfo("boardplus", "0.1.0", "Needs webhooks (test).", ("webhooks",), None, "boardplus", "test")
    refused = post(web, admin, "/app/admin/plugins/boardplus/enabled", {"on": "1"})
    assert refused.status_code == 303
    shown = html(admin.get("/app/admin/plugins/"))
    assert "boardplus was not turned on" in shown and "requires plugin &#39;webhooks&#39;, which is not enabled" in shown
    assert "boardplus" not in path.read_text()

    off = post(web, admin, "/app/admin/plugins/kanban/enabled", {"on": "0"})
    assert off.status_code == 302 and "/app/kanban/" not in html(admin.get("/app/"))
    assert 'plugins = ["chat"]  # chat first' in path.read_text()


def test_only_admins_reach_the_plugin_admin(web, path):
    before = path.read_text()
    for role in ("manager", "agent"):
        client = web.client("acme")
        web.login(client, "acme", role)
        assert client.get("/app/admin/plugins/chat/").status_code == 403
        assert post(web, client, "/app/admin/plugins/chat/", {"greeting": "pwned"}).status_code == 403
        assert post(web, client, "/app/admin/plugins/kanban/enabled", {"on": "1"}).status_code == 403
    assert path.read_text() == before
    admin = web.client("acme")
    web.login(admin, "acme", "admin")
    assert admin.get("/app/admin/plugins/nope/").status_code == 404
    assert post(web, admin, "/app/admin/plugins/core/enabled", {"on": "0"}).status_code == 404


class FormValues(HTMLParser):
    """The values a browser would submit for the page's settings form, as it was rendered."""

    def __init__(self):
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._textarea = None
        self._select = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and "/app/admin/plugins/" in (a.get("action") or ""):
            self._in_form = True
        if not self._in_form or "name" not in a and tag != "option":
            return
        if tag == "input" and a.get("type") == "checkbox":
            if "checked" in a:
                self.values.append((a["name"], a.get("value", "on")))
        elif tag == "input":
            self.values.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea = [a["name"], ""]
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.values.append((self._select, a.get("value", "")))

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea is not None:
            self.values.append(tuple(self._textarea))
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def test_every_plugins_form_renders_and_saving_it_unchanged_changes_nothing(web, path):
    from werkzeug.datastructures import MultiDict

    admin = web.client("acme")
    web.login(admin, "acme", "admin")
    before = path.read_text()
    with_settings = [name for name, info in web.crm.host.infos.items() if info.settings is not None and not info.error]
    assert {"core", "chat", "kanban", "scoring", "webhooks"} <= set(with_settings)
    for name in with_settings:
        page = admin.get(f"/app/admin/plugins/{name}/")
        assert page.status_code == 200, name
        form = FormValues()
        form.feed(html(page))
        data = MultiDict(form.values)
        data["csrf_token"] = web.csrf(admin)
        saved = admin.post(f"/app/admin/plugins/{name}/", data=data, follow_redirects=True)
        assert saved.status_code == 200 and "Nothing changed." in html(saved), (name, html(saved)[-3000:])
    assert path.read_text() == before


def test_secrets_and_environment_values_stay_out_of_the_form():
    from marshmallow import Schema, fields
    from werkzeug.datastructures import MultiDict

    from crmcore.tenant_files import REMOVE
    from crmcore.web.settings_form import changes_from_form, form_fields

    class Vault(Schema):
        api_token = fields.String(load_default="")
        signing_keys = fields.List(fields.String(), load_default=list)
        enabled = fields.Boolean(load_default=True)
        region = fields.String(load_default="eu")
        timeout = fields.Integer(load_default=30)

    effective = {"api_token": "tok-123", "signing_keys": ["k-1", "k-2"], "enabled": False, "region": "us", "timeout": 30}
    raw = {"api_token": "tok-123", "signing_keys": ["k-1", "k-2"], "enabled": {"$env": "VAULT_ON"}, "region": "us"}
    shown = {f.key: f for f in form_fields(Vault, effective, raw)}
    assert shown["api_token"].value == "" and shown["signing_keys"].value == "" and shown["api_token"].secret
    assert shown["enabled"].secret and shown["enabled"].env == "VAULT_ON"
    assert shown["region"].value == "us" and shown["timeout"].value == "30"
    defaults = Vault().load({})
    # As the page submits it untouched: nothing changes.
    untouched = MultiDict([("api_token", ""), ("signing_keys", ""), ("region", "us"), ("timeout", "30")])
    assert changes_from_form(Vault, untouched, raw, defaults) == ({}, {})
    typed = MultiDict([("api_token", "$env:VAULT_TOKEN"), ("signing_keys", "k-3"), ("region", ""), ("timeout", "45"), ("enabled", "1"), ("enabled__present", "1")])
    changes, errors = changes_from_form(Vault, typed, raw, defaults)
    assert errors == {} and changes == {"api_token": {"$env": "VAULT_TOKEN"}, "signing_keys": ["k-3"], "region": REMOVE, "timeout": 45}


def test_tenant_file_edits_keep_the_layout():
    import tomlkit

    from crmcore.tenant_files import REMOVE, with_plugin, with_settings

    doc = tomlkit.parse(TENANT_FILE)
    with_settings(doc, "chat", {"public_key": {"$env": "OTHER_KEY"}, "allowed_origins": REMOVE, "greeting": "Hi"})
    with_settings(doc, "webhooks", {"timeout_seconds": 5.0})
    with_plugin(doc, "webhooks", True)
    text = tomlkit.dumps(doc)
    assert 'public_key = {"$env" = "OTHER_KEY"}' in text and "allowed_origins" not in text
    assert "# visitors come from our marketing site" in text and 'plugins = ["chat", "webhooks"]  # chat first' in text
    assert text.index("[settings.chat]") < text.index("[settings.webhooks]") and "timeout_seconds = 5.0" in text
    bare = tomlkit.parse('name = "Bare"\n')
    with_plugin(bare, "kanban", True)
    with_settings(bare, "kanban", {"wip_limit": 3})
    assert tomlkit.dumps(bare) == 'name = "Bare"\nplugins = ["kanban"]\n\n[settings.kanban]\nwip_limit = 3\n'
