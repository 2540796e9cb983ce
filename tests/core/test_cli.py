"""The ``crm`` command: click's CliRunner against real config files and the test database,
plus one real ``crm run --demo`` process served over HTTP."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import tomli_w
from click.testing import CliRunner, Result

from crmcore import auth, db
from crmcore.cli import cli
from crmcore.config import load_config
from crmcore.plugins import PluginHost
from tests.conftest import stop_process, subprocess_env


def invoke(config_dir: Path | None, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run ``crm --config DIR ARGS`` in-process, without the caller's CRM_* variables."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CRM_")}
    clean.update(env or {})
    argv = (["--config", str(config_dir)] if config_dir is not None else []) + list(args)
    result = CliRunner().invoke(cli, argv, env=clean, input=input, prog_name="crm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is never an acceptable answer
    return result


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def installed() -> dict[str, Any]:
    host = PluginHost()
    host.discover()
    return host.infos


@pytest.fixture
def acme(crm_env: Any) -> Any:
    """crm_env with tenant acme (acme.test), migrated, and its app built."""
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.create_app()
    return crm_env


def sign_in(client: Any, email: str, password: str) -> Any:
    client.get("/login")
    with client.session_transaction() as sess:
        csrf = sess["csrf"]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf})


# --------------------------------------------------------------------------- init, migrate


def test_init_in_an_empty_dir(tmp_path: Path, crm_database_url: str) -> None:
    config_dir = tmp_path / "site" / "config"
    env = {"CRM_DATABASE_URL": crm_database_url}
    out = ok(invoke(config_dir, "init", env=env))
    assert f"wrote {config_dir / 'crm.toml'}" in out and f"wrote {config_dir / 'tenants' / 'demo.toml'}" in out
    assert "applied core:0001_initial" in out and "migration(s) applied" in out
    config = load_config(config_dir, installed(), env={})
    assert set(config.tenants) == {"demo"} and config.instance.default_tenant == "demo"
    assert config.tenants["demo"].hostnames == ("localhost", "127.0.0.1")

    # Again: nothing overwritten, nothing to migrate.
    (config_dir / "tenants" / "demo.toml").write_text('name = "Mine"\n')
    out = ok(invoke(config_dir, "init", env=env))
    assert "wrote" not in out and "database is up to date" in out
    assert (config_dir / "tenants" / "demo.toml").read_text() == 'name = "Mine"\n'
    assert "0 pending" in ok(invoke(config_dir, "migrate", "--list", env=env))


def test_init_beside_existing_tenants_does_not_point_at_a_missing_demo(tmp_path: Path, crm_database_url: str) -> None:
    config_dir = tmp_path / "config"
    (config_dir / "tenants").mkdir(parents=True)
    (config_dir / "tenants" / "acme.toml").write_text('name = "Acme"\n')
    ok(invoke(config_dir, "init", env={"CRM_DATABASE_URL": crm_database_url}))
    assert not (config_dir / "tenants" / "demo.toml").exists()
    assert ok(invoke(config_dir, "config", "check")).startswith("configuration OK: 1 tenant(s)")


def test_migrate_twice_and_list(crm_env: Any) -> None:
    crm_env.write_tenant("acme")
    out = ok(invoke(crm_env.config_dir, "migrate", "--list"))
    assert "core:0001_initial" in out and re.search(r"^[1-9]\d* pending$", out, re.M), out
    out = ok(invoke(crm_env.config_dir, "migrate"))
    assert "applied core:0001_initial" in out and re.search(r"^[1-9]\d* migration\(s\) applied$", out, re.M), out
    out = ok(invoke(crm_env.config_dir, "migrate"))
    assert out.strip() == "database is up to date"
    out = ok(invoke(crm_env.config_dir, "migrate", "--list"))
    assert out.strip() == "0 pending"


def test_bad_config_stops_commands_that_need_the_app(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["nope"])
    result = invoke(crm_env.config_dir, "migrate")
    assert result.exit_code == 2
    assert "acme.toml" in result.output and "plugins[0]" in result.output and "unknown plugin 'nope'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [("migrate",), ("run",), ("config", "check"), ("tenants", "list"), ("tenants", "create", "x", "--name", "X"), ("users", "create", "--tenant", "x", "--email", "a@b.c", "--password", "x")])
def test_missing_config_dir_is_an_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A mistyped --config must not run on defaults (and create a database somewhere)."""
    missing = tmp_path / "typo" / "config"
    result = invoke(missing, *args)
    assert result.exit_code == 2 and f"no configuration directory {missing}" in result.output and "crm init" in result.output
    assert not (tmp_path / "typo").exists()


# --------------------------------------------------------------------------- plugins, tenants


def test_plugins_list_core_always_on(acme: Any) -> None:
    out = ok(invoke(acme.config_dir, "plugins", "list"))
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["PLUGIN", "VERSION", "TENANTS", "SOURCE"]
    core = next(r for r in rows if r.startswith("core "))
    assert "all (always on)" in core and "builtin" in core


def test_plugins_list_shows_tenants_of_sample(sample_env: Any) -> None:
    out = ok(invoke(sample_env.config_dir, "plugins", "list"))
    sample = next(r for r in out.splitlines() if r.startswith("sample "))
    assert "1.2.0" in sample and "alpha" in sample and "beta" not in sample
    assert "entry point (crm-sample-plugin 1.2.0)" in sample


def test_tenants_list(acme: Any, sample_plugin_path: Path) -> None:
    acme.write_tenant("beta", hostnames=["beta.test", "www.beta.test"], plugins=["sample"])
    out = ok(invoke(acme.config_dir, "tenants", "list"))
    assert out.splitlines() == [
        "acme\tAcme Ltd\thosts: acme.test\tplugins: -",
        "beta\tBeta\thosts: beta.test, www.beta.test\tplugins: sample",
    ]


def test_tenants_list_with_no_tenants(crm_env: Any) -> None:
    assert "no tenants" in ok(invoke(crm_env.config_dir, "tenants", "list"))


def test_tenants_create(acme: Any, sample_plugin_path: Path) -> None:
    path = acme.config_dir / "tenants" / "widgets.toml"
    out = ok(invoke(acme.config_dir, "tenants", "create", "widgets", "--name", "Widgets Inc", "--hostname", "Widgets.Example", "--hostname", "www.widgets.example", "--plugin", "sample"))
    assert f"created {path}" in out
    config = load_config(acme.config_dir, installed(), env={})
    widgets = config.tenants["widgets"]
    assert widgets.name == "Widgets Inc" and widgets.plugins == {"sample"}
    assert widgets.hostnames == ("widgets.example", "www.widgets.example")
    assert sorted(p.name for p in (acme.config_dir / "tenants").iterdir()) == ["acme.toml", "widgets.toml"]  # no temp files left

    # The running server picks it up without a restart.
    acme.crm.config_store._checked_at = 0
    assert acme.client("widgets").get("/login", base_url="http://widgets.example").status_code == 200

    # Creating it again fails and leaves the file alone.
    before = path.read_text()
    result = invoke(acme.config_dir, "tenants", "create", "widgets", "--name", "Other")
    assert result.exit_code != 0 and "already exists" in result.output
    assert path.read_text() == before


def test_tenants_create_uses_instance_default_plugins(acme: Any, sample_plugin_path: Path) -> None:
    acme.write_instance(defaults={"plugins": ["sample"]})
    ok(invoke(acme.config_dir, "tenants", "create", "gizmo", "--name", "Gizmo"))
    assert load_config(acme.config_dir, installed(), env={}).tenants["gizmo"].plugins == {"sample"}


@pytest.mark.parametrize("slug", ["Bad_Slug", "-dash", "a b", "x" * 64])
def test_tenants_create_invalid_slug(acme: Any, slug: str) -> None:
    result = invoke(acme.config_dir, "tenants", "create", "--name", "X", "--", slug)
    assert result.exit_code != 0 and "invalid slug" in result.output
    assert sorted(p.name for p in (acme.config_dir / "tenants").iterdir()) == ["acme.toml"]


def test_tenants_create_unknown_plugin_leaves_no_file(acme: Any) -> None:
    seen: list[Any] = []
    acme.crm.config_store.on_reload(seen.append)
    result = invoke(acme.config_dir, "tenants", "create", "nopeco", "--name", "Nope Co", "--plugin", "nope")
    assert result.exit_code != 0
    assert "nopeco.toml" in result.output and "plugins[0]" in result.output and "unknown plugin 'nope'" in result.output
    assert sorted(p.name for p in (acme.config_dir / "tenants").iterdir()) == ["acme.toml"]
    # A running server never saw a bad file.
    acme.crm.config_store._checked_at = 0
    assert acme.crm.config_store.maybe_reload() is False and acme.crm.config_store.last_error is None and seen == []


def test_tenants_create_rejects_a_hostname_already_in_use(acme: Any) -> None:
    result = invoke(acme.config_dir, "tenants", "create", "copycat", "--name", "Copycat", "--hostname", "ACME.test")
    assert result.exit_code != 0
    assert "copycat.toml" in result.output and "hostnames[0]" in result.output and "already used by tenant 'acme'" in result.output
    assert not (acme.config_dir / "tenants" / "copycat.toml").exists()
    ok(invoke(acme.config_dir, "config", "check"))  # the configuration stays valid


def test_tenants_create_rejects_bad_name_and_hostname(acme: Any) -> None:
    result = invoke(acme.config_dir, "tenants", "create", "empty", "--name", "", "--hostname", "http://empty.example/")
    assert result.exit_code != 0 and "name" in result.output and "hostnames[0]" in result.output
    assert not (acme.config_dir / "tenants" / "empty.toml").exists()


# --------------------------------------------------------------------------- config


def test_config_check_ok(acme: Any) -> None:
    out = ok(invoke(acme.config_dir, "config", "check"))
    assert out.strip() == f"configuration OK: 1 tenant(s) in {acme.config_dir}"


def test_config_check_bad_file(acme: Any) -> None:
    (acme.config_dir / "tenants" / "beta.toml").write_text(tomli_w.dumps({"name": "Beta", "plugins": ["nope"], "colour": "red"}))
    result = invoke(acme.config_dir, "config", "check")
    assert result.exit_code == 2
    assert "beta.toml" in result.output and "plugins[0]" in result.output and "unknown plugin 'nope'" in result.output
    assert "colour: unknown key" in result.output


def test_config_check_bad_toml_and_missing_env(acme: Any) -> None:
    acme.write_instance(secret_key={"$env": "ACME_NOT_SET_" + uuid.uuid4().hex[:6].upper()})
    (acme.config_dir / "tenants" / "beta.toml").write_text('name = "Beta\n')
    result = invoke(acme.config_dir, "config", "check")
    assert result.exit_code == 2
    assert "crm.toml: secret_key: environment variable 'ACME_NOT_SET_" in result.output
    assert "beta.toml: not valid TOML" in result.output


def test_config_reload(acme: Any) -> None:
    store = acme.crm.config_store
    beta = acme.config_dir / "tenants" / "beta.toml"
    beta.write_text(tomli_w.dumps({"name": "Beta", "hostnames": ["beta.test"]}))
    before = beta.stat().st_mtime_ns
    time.sleep(0.01)
    out = ok(invoke(acme.config_dir, "config", "reload"))
    assert "configuration OK: 2 tenant(s)" in out and "reload within a second" in out
    assert beta.stat().st_mtime_ns > before
    store._checked_at = 0
    assert acme.client("beta").get("/login").status_code == 200


def test_config_reload_with_a_bad_file_changes_nothing(acme: Any) -> None:
    store = acme.crm.config_store
    running = store.current
    acme_file = acme.config_dir / "tenants" / "acme.toml"
    acme_file.write_text(tomli_w.dumps({"name": "Acme Ltd", "hostnames": ["acme.test"], "plugins": ["nope"]}))
    result = invoke(acme.config_dir, "config", "reload")
    assert result.exit_code == 2 and "acme.toml" in result.output and "unknown plugin 'nope'" in result.output
    assert "reload within a second" not in result.output
    store._checked_at = 0
    assert acme.client("acme").get("/login").status_code == 200  # still served as before
    assert store.current is running and "unknown plugin 'nope'" in str(store.last_error)


# --------------------------------------------------------------------------- users, tokens


def test_users_create_then_sign_in(acme: Any) -> None:
    out = ok(invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "A@B.c", "--role", "admin", "--password", "x"))
    assert out.strip() == "created user a@b.c (admin) in acme"
    client = acme.client("acme")
    assert sign_in(client, "a@b.c", "wrong").status_code == 401
    response = sign_in(client, "a@b.c", "x")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/app/")
    assert page.status_code == 200 and "Dashboard" in page.get_data(as_text=True)


def test_users_create_duplicate_fails(acme: Any) -> None:
    ok(invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "a@b.c", "--password", "x"))
    result = invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "A@b.C", "--password", "y")
    assert result.exit_code != 0 and "already exists" in result.output
    # The database is still usable after the failed insert (PostgreSQL aborts the transaction).
    ok(invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "c@d.e", "--password", "y"))


def test_users_create_bad_input(acme: Any) -> None:
    result = invoke(acme.config_dir, "users", "create", "--tenant", "nope", "--email", "a@b.c", "--password", "x")
    assert result.exit_code != 0 and "no tenant 'nope'" in result.output
    result = invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "not-an-email", "--password", "x")
    assert result.exit_code != 0 and "invalid email" in result.output
    result = invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "a@b.c", "--password", "")
    assert result.exit_code != 0 and "password" in result.output
    result = invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "a@b.c", "--role", "god", "--password", "x")
    assert result.exit_code == 2 and "Invalid value for '--role'" in result.output


def test_users_create_prompts_for_the_password(acme: Any) -> None:
    out = ok(invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "p@q.r", input="pw1\npw1\n"))
    assert "created user p@q.r (agent) in acme" in out
    assert sign_in(acme.client("acme"), "p@q.r", "pw1").status_code == 302


def create_token(config_dir: Path, slug: str, role: str = "agent") -> tuple[str, int]:
    result = invoke(config_dir, "tokens", "create", "--tenant", slug, "--role", role, "--name", "ci")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()  # stdout holds only the token, for scripts
    assert re.fullmatch(r"crm_[\w-]{40,}", secret), result.stdout
    token_id = int(re.search(r"token (\d+) \(", result.stderr).group(1))
    return secret, token_id


def test_tokens_create_and_revoke(acme: Any) -> None:
    secret, token_id = create_token(acme.config_dir, "acme")
    with acme.app.app_context(), db.database.connection_context():
        token = auth.token_from_secret(secret)
        assert token is not None and token.id == token_id and token.role == "agent"
        assert token.tenant_id == acme.tenant("acme").id

    out = ok(invoke(acme.config_dir, "tokens", "revoke", "--tenant", "acme", str(token_id)))
    assert out.strip() == f"token {token_id} revoked"
    with acme.app.app_context(), db.database.connection_context():
        assert auth.token_from_secret(secret) is None
    # Twice: still revoked, and says so.
    assert "already revoked" in ok(invoke(acme.config_dir, "tokens", "revoke", "--tenant", "acme", str(token_id)))


def test_tokens_authenticate_a_plugin_route(sample_env: Any) -> None:
    secret, token_id = create_token(sample_env.config_dir, "alpha")
    alpha = sample_env.client("alpha")
    headers = {"Authorization": f"Bearer {secret}"}
    assert alpha.get("/api/v1/sample/items", headers=headers).status_code == 200
    # Another tenant cannot revoke it (nor learn that it exists).
    result = invoke(sample_env.config_dir, "tokens", "revoke", "--tenant", "beta", str(token_id))
    assert result.exit_code != 0 and f"no token {token_id} in tenant 'beta'" in result.output
    assert alpha.get("/api/v1/sample/items", headers=headers).status_code == 200
    ok(invoke(sample_env.config_dir, "tokens", "revoke", "--tenant", "alpha", str(token_id)))
    assert alpha.get("/api/v1/sample/items", headers=headers).status_code == 401


def test_tokens_unknown_tenant_and_token(acme: Any) -> None:
    result = invoke(acme.config_dir, "tokens", "create", "--tenant", "nope", "--role", "agent")
    assert result.exit_code != 0 and "no tenant 'nope'" in result.output and not result.stdout.strip()
    result = invoke(acme.config_dir, "tokens", "revoke", "--tenant", "acme", "999999")
    assert result.exit_code != 0 and "no token 999999" in result.output
    result = invoke(acme.config_dir, "tokens", "create", "--tenant", "acme")
    assert result.exit_code == 2 and "Missing option '--role'" in result.output


# --------------------------------------------------------------------------- usage


def test_unknown_command_and_option(acme: Any) -> None:
    result = invoke(acme.config_dir, "frobnicate")
    assert result.exit_code == 2 and "Usage: crm" in result.output and "No such command 'frobnicate'" in result.output
    result = invoke(acme.config_dir, "tenants", "list", "--bogus")
    assert result.exit_code == 2 and "Usage:" in result.output and "No such option '--bogus'" in result.output
    result = invoke(acme.config_dir, "tenants")
    assert result.exit_code == 2 and "Commands:" in result.output  # a group without a command shows its help


def test_help_lists_core_and_plugin_commands(sample_env: Any) -> None:
    out = ok(invoke(sample_env.config_dir, "--help"))
    for name in ("init", "run", "worker", "migrate", "plugins", "tenants", "config", "users", "tokens", "sample"):
        assert re.search(rf"^\s+{name}\b", out, re.M), (name, out)


def test_plugin_commands_follow_the_config_dir(tmp_path: Path, crm_env: Any) -> None:
    """Plugin commands come from the plugins of the --config given, not from whichever
    configuration the process used first."""
    pkg = f"crm_extra_{uuid.uuid4().hex[:8]}"
    plugins_dir = tmp_path / "extra_plugins"
    (plugins_dir / pkg).mkdir(parents=True)
    (plugins_dir / pkg / "__init__.py").write_text(f"from crmcore import Plugin\nplugin = Plugin(name={pkg!r})\n")
    (plugins_dir / pkg / "hooks.py").write_text(textwrap.dedent(f"""\
        import click
        from crmcore import hookimpl

        @hookimpl
        def crm_cli_commands(cli):
            @cli.command("{pkg}")
            def extra():
                click.echo("extra says hi")
    """))
    crm_env.write_tenant("acme")
    other = tmp_path / "other"
    (other / "tenants").mkdir(parents=True)
    (other / "crm.toml").write_text(tomli_w.dumps({**crm_env.instance, "plugins_dir": str(plugins_dir)}))

    # First an invocation for a configuration without that plugin ...
    assert invoke(crm_env.config_dir, pkg).exit_code == 2
    # ... then one with it: its command is there.
    assert ok(invoke(other, pkg)).strip() == "extra says hi"
    # ... and it does not leak back into the first configuration.
    assert invoke(crm_env.config_dir, pkg).exit_code == 2
    assert pkg not in cli.commands


def test_version() -> None:
    out = ok(invoke(None, "--version"))
    assert out.startswith("crm, version ")


# --------------------------------------------------------------------------- crm run --demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_demo_serves_and_signs_in(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    port = _free_port()
    env = subprocess_env(PYTHONUNBUFFERED="1")
    env.pop("CRM_CONFIG_DIR", None)
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "crmcore.cli", "run", "--demo", "--port", str(port)], cwd=site, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url = email = password = None
        deadline = time.monotonic() + 30  # a loaded machine seeds the demo slowly; this is no timing test
        while (url is None or email is None) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                assert proc.poll() is None, f"crm run exited {proc.returncode}: {log_path.read_text()}"
                continue
            if m := re.search(r"running at (http://\S+/)", line):
                url = m.group(1)
            if m := re.search(r"Sign in as (\S+) with password (\S+)", line):
                email, password = m.groups()
        assert url and email and password, f"no URL / sign-in line within 30 s: {log_path.read_text()}"
        assert url == f"http://localhost:{port}/"
        assert (site / "config" / "crm.toml").exists() and (site / "config" / "tenants" / "demo.toml").exists()
        assert (site / "instance" / "crm.db").exists()

        http = requests.Session()
        base = f"http://127.0.0.1:{port}"  # a hostname of the demo tenant, and no IPv6 detour
        login = None
        while time.monotonic() < deadline + 1:
            try:
                login = http.get(f"{base}/login", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.05)
        assert login is not None and login.status_code == 200, login
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        signed_in = http.post(f"{base}/login", data={"email": email, "password": password, "csrf_token": csrf}, timeout=5)
        assert signed_in.status_code == 200 and signed_in.url == f"{base}/app/", (signed_in.status_code, signed_in.url)
        page = http.get(f"{base}/app/", timeout=5)
        assert page.status_code == 200 and "Dashboard" in page.text
    finally:
        stop_process(proc)
