"""Configuration: config/crm.toml + config/tenants/<slug>.toml, CRM_* overrides, $env
secrets, per-plugin settings schemas, and reloading without a restart.

Every error test checks that the message names the file, the dotted key and the reason.
Most tests build the plugin-info mapping by hand (``load_config`` only needs
``.settings``/``.requires``/``.error``/``.always_on``); the end-to-end ones use a real
``PluginHost`` and a real app on the test database."""

from __future__ import annotations

import os
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from marshmallow import Schema, fields, validate

from crmcore import db
from crmcore.config import ConfigError, ConfigStore, load_config


class SampleLikeSettings(Schema):
    greeting = fields.String(load_default="Hello", validate=validate.Length(min=1, max=100))
    max_items = fields.Integer(load_default=100, validate=validate.Range(min=1))


@dataclass
class Info:
    settings: type[Schema] | None = None
    requires: tuple[str, ...] = ()
    error: str | None = None
    always_on: bool = False


PLUGINS = {
    "core": Info(always_on=True),
    "sample": Info(settings=SampleLikeSettings),
    "reports": Info(requires=("sample",)),
    "broken": Info(error="ImportError: no module named 'nothing'"),
}


class Dir:
    """A config directory written by the test."""

    def __init__(self, root: Path):
        self.path = root / "config"
        (self.path / "tenants").mkdir(parents=True)

    def instance(self, body: dict[str, Any] | str) -> Path:
        return self._write(self.path / "crm.toml", body)

    def tenant(self, slug: str, body: dict[str, Any] | str | None = None, **fields_: Any) -> Path:
        if body is None:
            body = {"name": slug.title(), "hostnames": [f"{slug}.test"], **fields_}
        return self._write(self.path / "tenants" / f"{slug}.toml", body)

    @staticmethod
    def _write(path: Path, body: dict[str, Any] | str) -> Path:
        old = path.stat().st_mtime_ns if path.exists() else 0
        path.write_text(body if isinstance(body, str) else tomli_w.dumps(body))
        # A rewrite within one mtime tick must still look changed to a reload.
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns, old + 1_000_000)))
        return path

    def load(self, env: dict[str, str] | None = None, plugins: Any = PLUGINS) -> Any:
        return load_config(self.path, plugins, env or {})


@pytest.fixture
def cfg(tmp_path: Path) -> Dir:
    d = Dir(tmp_path)
    d.instance({"database_url": "sqlite:///crm.db"})
    return d


def problems_of(cfg: Dir, env: dict[str, str] | None = None, plugins: Any = PLUGINS) -> tuple[str, list[Any]]:
    with pytest.raises(ConfigError) as info:
        cfg.load(env, plugins)
    return str(info.value), info.value.problems


def assert_problem(text: str, problems: list[Any], file: str, key: str, reason: str) -> None:
    """The message contains file, key and reason, and one Problem carries all three."""
    assert file in text and key in text and reason in text, text
    assert any(Path(p.file).name == file and p.key == key and reason in p.reason for p in problems), problems


# --------------------------------------------------------------------------- valid files


def test_valid_config_with_defaults_filled(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": "Hi"}})
    cfg.tenant("beta", hostnames=["Beta.Example", "www.beta.example"])
    config = cfg.load()
    acme, beta = config.tenants["acme"], config.tenants["beta"]
    assert acme.plugins == {"sample"} and acme.name == "Acme"
    # The plugin's schema fills what the file leaves out.
    assert dict(acme.settings["sample"]) == {"greeting": "Hi", "max_items": 100}
    # Settings are validated (and defaulted) even where the plugin is off, so turning it on is safe.
    assert dict(beta.settings["sample"]) == {"greeting": "Hello", "max_items": 100}
    assert beta.hostnames == ("beta.example", "www.beta.example")
    assert config.tenant_for_host("BETA.example:8000").slug == "beta"
    assert config.tenant_for_host("nobody.example") is None
    # Instance defaults.
    inst = config.instance
    assert inst.tasks["max_attempts"] == 5 and inst.session_hours == 12.0
    assert inst.instance_dir == cfg.path.parent / "instance"


def test_default_tenant_answers_unclaimed_hosts(cfg: Dir) -> None:
    cfg.instance({"default_tenant": "acme"})
    cfg.tenant("acme")
    assert cfg.load().tenant_for_host("anything.example").slug == "acme"


def test_missing_instance_file_means_defaults(tmp_path: Path) -> None:
    d = Dir(tmp_path)
    config = d.load()
    assert config.instance.database_url == "sqlite:///crm.db" and config.tenants == {}


# --------------------------------------------------------------------------- error kinds


def test_unknown_plugin(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["sample", "nope"])
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "plugins[1]", "unknown plugin 'nope'")
    assert "installed: broken, reports, sample" in text  # what could have been meant


def test_broken_plugin_cannot_be_enabled(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["broken"])
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "plugins[0]", "plugin 'broken' failed to load: ImportError")


def test_missing_required_plugin(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["reports"])
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "plugins", "plugin 'reports' requires plugin 'sample', which is not enabled")
    cfg.tenant("acme", plugins=["reports", "sample"])
    assert cfg.load().tenants["acme"].plugins == {"reports", "sample"}


def test_wrong_type_in_plugin_settings(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"max_items": "many"}})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "settings.sample.max_items", "Not a valid integer")


def test_invalid_value_in_plugin_settings(cfg: Dir) -> None:
    cfg.tenant("acme", settings={"sample": {"max_items": 0, "greeting": ""}})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "settings.sample.max_items", "greater than or equal to 1")
    assert_problem(text, problems, "acme.toml", "settings.sample.greeting", "Length must be between 1 and 100")


def test_wrong_type_in_tenant_file(cfg: Dir) -> None:
    cfg.tenant("acme", {"name": "Acme", "hostnames": "acme.test", "plugins": [1]})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "hostnames", "Not a valid list")
    assert_problem(text, problems, "acme.toml", "plugins[0]", "Not a valid string")


def test_settings_of_a_plugin_must_be_a_table(cfg: Dir) -> None:
    cfg.tenant("acme", settings={"sample": "loud"})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "settings.sample", "Not a valid mapping type")


def test_unknown_keys(cfg: Dir) -> None:
    cfg.tenant("acme", colour="red", settings={"sample": {"volume": 11}, "nope": {"x": 1}})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "colour", "unknown key")
    assert_problem(text, problems, "acme.toml", "settings.sample.volume", "unknown key")
    assert_problem(text, problems, "acme.toml", "settings.nope", "unknown plugin 'nope'")


def test_settings_for_a_plugin_without_settings(cfg: Dir) -> None:
    cfg.tenant("acme", settings={"reports": {"x": 1}})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "settings.reports", "takes no settings")


def test_unknown_and_wrong_keys_in_instance_file(cfg: Dir) -> None:
    cfg.instance({"databse_url": "sqlite:///x.db", "tasks": {"max_attempts": "five", "retries": 3}, "session_hours": 0})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "databse_url", "unknown key")
    assert_problem(text, problems, "crm.toml", "tasks.max_attempts", "Not a valid integer")
    assert_problem(text, problems, "crm.toml", "tasks.retries", "unknown key")
    assert_problem(text, problems, "crm.toml", "session_hours", "greater than or equal to 0.01")


def test_unsupported_database_url_without_echoing_the_password(cfg: Dir) -> None:
    cfg.instance({"database_url": "postgresq://crm:hunter2@db/crm"})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "database_url", "unsupported database URL")
    assert "hunter2" not in text


def test_missing_required_key(cfg: Dir) -> None:
    cfg.tenant("acme", {"hostnames": ["acme.test"]})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "name", "Missing data for required field")


def test_bad_toml_syntax(cfg: Dir) -> None:
    cfg.tenant("acme", 'name = "Acme"\nhostnames = ["acme.test"\n')
    text, problems = problems_of(cfg)
    assert "acme.toml" in text and "not valid TOML" in text and "Unclosed array" in text, text
    cfg.tenant("acme", 'name = "Acme"\nhostnames = ["acme.test"]\n')
    cfg.instance("database_url = \n")
    text, problems = problems_of(cfg)
    assert "crm.toml" in text and "not valid TOML" in text and "line 1" in text, text
    assert "acme.toml" not in text


def test_bad_slug_in_file_name(cfg: Dir) -> None:
    cfg.tenant("Bad_Name")
    text, _ = problems_of(cfg)
    assert "Bad_Name.toml" in text and "lowercase letters, digits and dashes" in text


def test_duplicate_hostname_across_tenants(cfg: Dir) -> None:
    cfg.tenant("acme", hostnames=["shared.example", "acme.test"])
    cfg.tenant("beta", hostnames=["SHARED.example"])
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "beta.toml", "hostnames", "hostname 'shared.example' is already used by tenant 'acme'")


def test_hostname_with_port_or_scheme_is_rejected(cfg: Dir) -> None:
    # Requests are matched on the host without its port: such a name could never match.
    cfg.tenant("acme", hostnames=["acme.test:8000", "https://acme.test"])
    text, problems = problems_of(cfg)
    assert "acme.toml" in text and "hostnames[0]" in text and "hostnames[1]" in text, text


def test_default_tenant_pointing_nowhere(cfg: Dir) -> None:
    cfg.instance({"default_tenant": "ghost"})
    cfg.tenant("acme")
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "default_tenant", "no tenant file config/tenants/ghost.toml")


def test_default_tenant_pointing_nowhere_is_reported_with_other_problems(cfg: Dir) -> None:
    cfg.instance({"default_tenant": "ghost"})
    cfg.tenant("acme", plugins=["nope"])
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "default_tenant", "ghost")
    assert_problem(text, problems, "acme.toml", "plugins[0]", "unknown plugin 'nope'")


def test_every_problem_is_listed_at_once(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["nope"])
    cfg.tenant("beta", settings={"sample": {"max_items": "x"}})
    text, problems = problems_of(cfg)
    assert {Path(p.file).name for p in problems} == {"acme.toml", "beta.toml"}


# --------------------------------------------------------------------------- environment


def test_env_secret_resolved(cfg: Dir) -> None:
    cfg.instance({"secret_key": {"$env": "ACME_SECRET"}, "tasks": {"max_attempts": {"$env": "ACME_ATTEMPTS"}}})
    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": {"$env": "ACME_GREETING"}}})
    config = cfg.load({"ACME_SECRET": "s3cret", "ACME_ATTEMPTS": "9", "ACME_GREETING": "Hey"})
    assert config.instance.secret_key == "s3cret"
    assert config.instance.tasks["max_attempts"] == 9  # typed by the schema
    assert config.tenants["acme"].settings["sample"]["greeting"] == "Hey"
    # The secret never has to be in a file.
    assert "s3cret" not in (cfg.path / "crm.toml").read_text()


def test_env_secret_missing_names_the_variable(cfg: Dir) -> None:
    cfg.instance({"secret_key": {"$env": "ACME_SECRET"}})
    cfg.tenant("acme", settings={"sample": {"greeting": {"$env": "ACME_GREETING"}}})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "secret_key", "environment variable 'ACME_SECRET' is not set")
    assert_problem(text, problems, "acme.toml", "settings.sample.greeting", "environment variable 'ACME_GREETING' is not set")


def test_crm_env_overrides_instance_file(cfg: Dir) -> None:
    cfg.instance({"database_url": "sqlite:///file.db", "tasks": {"max_attempts": 3, "backoff_seconds": 1.5}})
    config = cfg.load({"CRM_DATABASE_URL": "postgresql://u@db:5432/crm", "CRM_TASKS__MAX_ATTEMPTS": "7", "CRM_SESSION_HOURS": "2.5", "CRM_CONFIG_DIR": "/elsewhere", "CRM_TEST_DATABASE_URL": "x"})
    inst = config.instance
    assert inst.database_url == "postgresql://u@db:5432/crm"
    assert inst.tasks["max_attempts"] == 7 and isinstance(inst.tasks["max_attempts"], int)
    assert inst.tasks["backoff_seconds"] == 1.5  # the rest of [tasks] stays from the file
    assert inst.session_hours == 2.5


def test_bad_env_override_names_the_variable(cfg: Dir) -> None:
    text, problems = problems_of(cfg, {"CRM_TASKS__MAX_ATTEMPTS": "lots", "CRM_TASKS__RETRIES": "3"})
    assert "tasks.max_attempts" in text and "Not a valid integer" in text and "CRM_TASKS__MAX_ATTEMPTS" in text, text
    assert "tasks.retries" in text and "unknown key" in text and "CRM_TASKS__RETRIES" in text, text


def test_env_override_of_a_table_does_not_crash(cfg: Dir) -> None:
    text, _ = problems_of(cfg, {"CRM_TASKS": "x", "CRM_TASKS__MAX_ATTEMPTS": "3"})
    assert "tasks" in text and "CRM_TASKS" in text


# --------------------------------------------------------------------------- a real plugin


def test_required_plugin_missing_with_a_registered_plugin(tmp_path: Path, sample_plugin_path: Path, monkeypatch: pytest.MonkeyPatch, crm_database_url: str) -> None:
    """A plugin package with Plugin(requires=("sample",)), registered through PluginHost."""
    from crmcore.app import create_app
    from crmcore.plugins import PluginHost

    pkg_name = f"crm_needs_sample_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "site" / pkg_name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""\
        from crmcore import Plugin
        plugin = Plugin(name="needs_sample", version="0.1.0", requires=("sample",))
    """))
    (pkg / "hooks.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    host = PluginHost()
    host.discover()
    host.register(__import__(pkg_name))
    assert host.infos["needs_sample"].error is None and host.infos["needs_sample"].requires == ("sample",)

    cfg = Dir(tmp_path)
    cfg.instance({"database_url": crm_database_url, "secret_key": "x"})
    cfg.tenant("acme", plugins=["needs_sample"])
    text, problems = problems_of(cfg, plugins=host.infos)
    assert_problem(text, problems, "acme.toml", "plugins", "plugin 'needs_sample' requires plugin 'sample', which is not enabled")
    # The same bad file stops startup.
    with pytest.raises(ConfigError) as info:
        create_app(cfg.path, env={}, host=host)
    assert "acme.toml" in str(info.value) and "requires plugin 'sample'" in str(info.value)

    cfg.tenant("acme", plugins=["needs_sample", "sample"])
    assert cfg.load(plugins=host.infos).tenants["acme"].plugins == {"needs_sample", "sample"}


def test_create_app_with_bad_file_raises_at_startup(crm_env: Any) -> None:
    from crmcore.app import create_app

    crm_env.write_tenant("acme", plugins=["nope"])
    with pytest.raises(ConfigError) as info:
        create_app(crm_env.config_dir, env={})
    text = str(info.value)
    assert "acme.toml" in text and "plugins[0]" in text and "unknown plugin 'nope'" in text

    crm_env.write_tenant("acme")
    crm_env.write_instance(tasks={"max_attempts": "x"})
    with pytest.raises(ConfigError) as info:
        create_app(crm_env.config_dir, env={})
    assert "crm.toml" in str(info.value) and "tasks.max_attempts" in str(info.value)


# --------------------------------------------------------------------------- reloading


def test_maybe_reload_after_the_throttle(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=[])
    store = ConfigStore(cfg.path, PLUGINS, env={}, check_interval=0.2)
    seen: list[int] = []
    store.on_reload(lambda c: seen.append(c.generation))
    assert store.current.tenants["acme"].plugins == frozenset()
    assert store.maybe_reload() is False  # nothing changed

    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"max_items": 5}})
    cfg.tenant("beta")
    assert store.maybe_reload() is False  # throttled: checked less than 0.2 s ago
    assert store.current.tenants["acme"].plugins == frozenset()
    time.sleep(0.25)
    assert store.maybe_reload() is True
    assert store.current.tenants["acme"].plugins == {"sample"}
    assert store.current.tenants["acme"].settings["sample"]["max_items"] == 5
    assert set(store.current.tenants) == {"acme", "beta"}
    assert store.current.generation == 1 and seen == [1]
    time.sleep(0.25)
    assert store.maybe_reload() is False  # unchanged since

    (cfg.path / "tenants" / "beta.toml").unlink()
    time.sleep(0.25)
    assert store.maybe_reload() is True
    assert set(store.current.tenants) == {"acme"}


def test_bad_reload_keeps_running_config(cfg: Dir) -> None:
    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": "Hi"}})
    store = ConfigStore(cfg.path, PLUGINS, env={}, check_interval=0)
    running = store.current

    cfg.tenant("acme", plugins=["sample", "nope"], settings={"sample": {"greeting": "Changed"}})
    assert store.maybe_reload() is False
    assert store.current is running
    assert store.current.tenants["acme"].settings["sample"]["greeting"] == "Hi"
    assert store.last_error is not None
    assert "acme.toml" in str(store.last_error) and "plugins[1]" in str(store.last_error) and "unknown plugin 'nope'" in str(store.last_error)
    assert store.maybe_reload() is False  # the same bad files are not retried

    with pytest.raises(ConfigError):
        store.reload()  # an explicit reload reports it
    assert store.current is running

    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": "Fixed"}})
    assert store.maybe_reload() is True
    assert store.current.tenants["acme"].settings["sample"]["greeting"] == "Fixed"
    assert store.last_error is None


def test_a_broken_tenant_file_does_not_hold_up_the_others(cfg: Dir) -> None:
    """At a reload, one tenant's broken file keeps that tenant on its running
    configuration while the other tenants' changes apply (issue 19)."""
    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": "Hi"}})
    cfg.tenant("beta", plugins=[])
    store = ConfigStore(cfg.path, PLUGINS, env={}, check_interval=0)

    cfg.tenant("acme", plugins=["sample", "nope"], settings={"sample": {"greeting": "Broken"}})
    cfg.tenant("beta", plugins=["sample"])
    cfg.tenant("gamma", plugins=[])
    cfg.tenant("delta", plugins=["nope"])  # new and broken: not added
    assert store.maybe_reload() is True
    assert store.current.tenants["acme"].settings["sample"]["greeting"] == "Hi"
    assert store.current.tenants["beta"].plugins == {"sample"}
    assert set(store.current.tenants) == {"acme", "beta", "gamma"}
    assert "acme.toml" in str(store.last_error) and "delta.toml" in str(store.last_error)

    cfg.tenant("acme", plugins=["sample"], settings={"sample": {"greeting": "Fixed"}})
    cfg.tenant("delta", plugins=[])
    assert store.maybe_reload() is True
    assert store.current.tenants["acme"].settings["sample"]["greeting"] == "Fixed"
    assert "delta" in store.current.tenants and store.last_error is None


def test_a_plugin_installed_after_the_start_asks_for_a_restart(cfg: Dir) -> None:
    """The running process knows the plugins it found at start: a tenant file naming one
    installed since says to restart, not "unknown plugin" (issue 19)."""
    cfg.tenant("acme", plugins=["chat"])  # installed (an entry point), unknown to PLUGINS
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "acme.toml", "plugins[0]", "plugin 'chat' was installed after this process started: restart")


def test_instance_changes_wait_for_restart(cfg: Dir) -> None:
    cfg.tenant("acme")
    store = ConfigStore(cfg.path, PLUGINS, env={}, check_interval=0)
    cfg.instance({"database_url": "sqlite:///other.db"})
    cfg.tenant("beta")
    assert store.maybe_reload() is True
    assert store.current.instance.database_url == "sqlite:///crm.db"
    assert "beta" in store.current.tenants


def test_bad_instance_file_at_reload_keeps_running_config(cfg: Dir) -> None:
    cfg.tenant("acme")
    store = ConfigStore(cfg.path, PLUGINS, env={}, check_interval=0)
    cfg.instance({"database_url": 5})
    cfg.tenant("beta")
    assert store.maybe_reload() is False
    assert "crm.toml" in str(store.last_error) and "database_url" in str(store.last_error) and "Not a valid string" in str(store.last_error)
    assert set(store.current.tenants) == {"acme"}


def test_plugin_switched_on_without_restart(crm_env: Any, sample_plugin_path: Path) -> None:
    crm_env.write_tenant("acme", plugins=[])
    crm_env.create_app()
    client = crm_env.client("acme")
    headers = {"Authorization": f"Bearer {crm_env.token('acme')}"}
    assert client.get("/api/v1/sample/items", headers=headers).status_code == 404
    crm_env.write_tenant("acme", plugins=["sample"], settings={"sample": {"max_items": 3}})
    crm_env.crm.config_store._checked_at = 0  # skip the once-a-second throttle
    assert client.get("/api/v1/sample/items", headers=headers).status_code == 200
    assert crm_env.crm.settings("acme", "sample")["max_items"] == 3


def test_removed_tenant_answers_404(app: Any, crm_env: Any) -> None:
    crm_env.write_tenant("beta")
    crm_env.reload()
    beta = crm_env.client("beta")
    assert beta.get("/login").status_code == 200
    crm_env.login(beta, "beta")
    assert beta.get("/app/").status_code == 200

    (crm_env.config_dir / "tenants" / "beta.toml").unlink()
    crm_env.crm.config_store._checked_at = 0
    assert beta.get("/login").status_code == 404
    # A session from the removed tenant no longer opens its pages.
    assert beta.get("/app/").status_code in (302, 404)
    # The other tenant is untouched.
    assert crm_env.client("acme").get("/login").status_code == 200
    with db.database.connection_context():
        assert crm_env.crm.tenant("beta") is None


def test_reload_announces_tenants_whose_plugins_changed(sample_env, captured_signals):
    with captured_signals("tenant_config_changed") as sent:
        sample_env.write_tenant("beta", plugins=["sample"])
        sample_env.reload()
    assert [(s[1].slug, s[2]["plugins"], s[2]["previous"]) for s in sent] == [("beta", frozenset({"sample"}), frozenset())]
    with captured_signals("tenant_config_changed") as sent:
        sample_env.write_tenant("beta", plugins=["sample"])  # same content: no news
        sample_env.reload()
    assert sent == []


def test_base_url_is_an_http_address_kept_without_its_trailing_slash(cfg: Dir) -> None:
    assert cfg.load({"CRM_BASE_URL": "https://crm.example.com/"}).instance.base_url == "https://crm.example.com"
    cfg.instance({"base_url": "crm.example.com/app?x=1"})
    text, problems = problems_of(cfg)
    assert_problem(text, problems, "crm.toml", "base_url", "not an http(s) address")
