"""The proof that integrators can extend the CRM: a third-party plugin, pip-installed and
found through its entry point, enabled for tenant alpha only."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from crmcore import db, signals
from crmcore.config import ConfigError
from crmcore.db import tenant_context
from crmcore.jobs import Scheduler


def receipts(env, slug, kind):
    from crm_sample.models import SampleReceipt

    with db.database.connection_context(), tenant_context(env.tenant(slug)):
        return [r.detail for r in SampleReceipt.select().where(SampleReceipt.kind == kind).order_by(SampleReceipt.id)]


def test_found_through_entry_point(sample_env):
    info = sample_env.crm.host.infos["sample"]
    assert info.source.startswith("entry point (crm-sample-plugin 1.2.0)")
    assert info.version == "1.2.0" and info.error is None


def test_api_route_for_enabled_tenant_only(sample_env):
    alpha = sample_env.client("alpha")
    beta = sample_env.client("beta")
    auth_a = {"Authorization": f"Bearer {sample_env.token('alpha')}"}
    auth_b = {"Authorization": f"Bearer {sample_env.token('beta')}"}

    created = alpha.post("/api/v1/sample/items", json={"name": "Widget", "colour": "red"}, headers=auth_a)
    assert created.status_code == 201, created.json
    assert created.json["name"] == "Widget"
    listed = alpha.get("/api/v1/sample/items", headers=auth_a)
    assert [i["name"] for i in listed.json] == ["Widget"]

    assert beta.get("/api/v1/sample/items", headers=auth_b).status_code == 404
    assert beta.post("/api/v1/sample/items", json={"name": "x"}, headers=auth_b).status_code == 404
    # A token decides the tenant, whatever the host: beta's token on alpha's host is still beta.
    assert alpha.get("/api/v1/sample/items", headers=auth_b).status_code == 404


def test_api_needs_credentials_and_validates(sample_env):
    alpha = sample_env.client("alpha")
    assert alpha.get("/api/v1/sample/items").status_code == 401
    assert alpha.get("/api/v1/sample/items", headers={"Authorization": "Bearer crm_nope"}).status_code == 401
    bad = alpha.post("/api/v1/sample/items", json={"name": ""}, headers={"Authorization": f"Bearer {sample_env.token('alpha')}"})
    assert bad.status_code == 422
    assert "name" in bad.json["errors"]["json"]


def test_web_page_and_nav_item_for_enabled_tenant_only(sample_env):
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha")
    dashboard = alpha.get("/app/").get_data(as_text=True)
    assert 'href="/app/sample/"' in dashboard
    page = alpha.get("/app/sample/")
    assert page.status_code == 200
    assert "HI ALPHA!" in page.get_data(as_text=True)  # the tenant's setting, through the plugin's filter

    beta = sample_env.client("beta")
    sample_env.login(beta, "beta")
    assert "/app/sample/" not in beta.get("/app/").get_data(as_text=True)
    assert beta.get("/app/sample/").status_code == 404


def test_signal_receiver_runs_for_enabled_tenant_only(sample_env):
    alpha = sample_env.client("alpha")
    alpha.post("/api/v1/sample/items", json={"name": "A"}, headers={"Authorization": f"Bearer {sample_env.token('alpha')}"})
    assert receipts(sample_env, "alpha", "receiver") == ["sample_item:1"]

    with sample_env.app.app_context(), db.database.connection_context():
        signals.send("entity_created", sample_env.tenant("beta"), entity="lead", record=type("R", (), {"id": 7})())
    assert receipts(sample_env, "beta", "receiver") == []


def test_scheduled_job_runs_for_enabled_tenant_only(sample_env):
    scheduler = Scheduler(sample_env.crm, holder="test")
    assert scheduler.run_job("sample:tick") == ["alpha"]
    assert receipts(sample_env, "alpha", "job") == ["alpha"]
    assert receipts(sample_env, "beta", "job") == []


def test_scheduled_job_fires_under_apscheduler(sample_env):
    scheduler = Scheduler(sample_env.crm, holder="test-aps")
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not receipts(sample_env, "alpha", "job"):
            time.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert receipts(sample_env, "alpha", "job"), "the interval job never ran"
    assert receipts(sample_env, "beta", "job") == []


def test_second_scheduler_does_not_run_jobs_while_lease_is_held(sample_env):
    first = Scheduler(sample_env.crm, holder="one")
    second = Scheduler(sample_env.crm, holder="two")
    assert first.is_leader()
    assert not second.is_leader()
    second.fire("sample:tick")
    assert receipts(sample_env, "alpha", "job") == []
    first.fire("sample:tick")
    assert receipts(sample_env, "alpha", "job") == ["alpha"]


def test_enable_and_disable_without_restart_keeps_data(sample_env):
    token_a = sample_env.token("alpha")
    token_b = sample_env.token("beta")
    alpha, beta = sample_env.client("alpha"), sample_env.client("beta")
    alpha.post("/api/v1/sample/items", json={"name": "kept"}, headers={"Authorization": f"Bearer {token_a}"})

    sample_env.write_tenant("beta", plugins=["sample"])
    sample_env.write_tenant("alpha", plugins=[])
    sample_env.crm.config_store._checked_at = 0  # skip the once-a-second throttle
    assert beta.get("/api/v1/sample/items", headers={"Authorization": f"Bearer {token_b}"}).status_code == 200
    assert alpha.get("/api/v1/sample/items", headers={"Authorization": f"Bearer {token_a}"}).status_code == 404

    sample_env.write_tenant("alpha", plugins=["sample"])
    sample_env.crm.config_store._checked_at = 0
    items = alpha.get("/api/v1/sample/items", headers={"Authorization": f"Bearer {token_a}"}).json
    assert [i["name"] for i in items] == ["kept"]


def test_setting_validated_per_tenant(sample_env):
    sample_env.write_tenant("alpha", plugins=["sample"], settings={"sample": {"max_items": "many"}})
    with pytest.raises(ConfigError) as info:
        sample_env.crm.config_store.reload()
    text = str(info.value)
    assert "alpha.toml" in text and "settings.sample.max_items" in text and "Not a valid integer" in text
    # The running configuration is kept.
    assert sample_env.crm.settings("alpha", "sample")["greeting"] == "Hi alpha"


def test_setting_changes_apply_without_restart(sample_env):
    alpha = sample_env.client("alpha")
    sample_env.login(alpha, "alpha")
    sample_env.write_tenant("alpha", plugins=["sample"], settings={"sample": {"greeting": "Welcome back"}})
    sample_env.crm.config_store._checked_at = 0
    assert "WELCOME BACK!" in alpha.get("/app/sample/").get_data(as_text=True)


def test_cli_command_and_plugins_list(sample_env):
    from crmcore.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(sample_env.config_dir), "sample", "hello", "tester"])
    assert result.exit_code == 0, result.output
    assert "hello tester from the sample plugin" in result.output
    listing = runner.invoke(cli, ["--config", str(sample_env.config_dir), "plugins", "list"])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if line.startswith("sample"))
    assert "1.2.0" in row and "alpha" in row and "beta" not in row


def test_additive_migration_keeps_existing_rows(crm_env, sample_plugin_path):
    """Version 1.0 of the plugin had no colour column; upgrading adds it and loses nothing."""
    from crmcore import migrations

    crm_env.write_tenant("alpha", plugins=["sample"])
    app = crm_env.create_app(migrate=False)
    host = app.extensions["crm"].host
    with app.app_context():
        migrations.migrate(host, only=lambda plugin, m: not (plugin == "sample" and m.name == "0002_item_colour"))
        with db.database.connection_context():
            tenant_id = crm_env.tenant("alpha").id
            for name in ("first", "second"):
                db.database.execute_sql("INSERT INTO sample_item (tenant_id, name, created_at) VALUES (%s, %s, %s)".replace("%s", "?" if not db.is_postgres() else "%s"), (tenant_id, name, "2026-01-01 00:00:00"))
            columns = {c.name for c in db.database.get_columns("sample_item")}
            assert "colour" not in columns
            assert [(p, m.name) for p, m in migrations.pending(host)] == [("sample", "0002_item_colour")]
        applied = migrations.migrate(host)
        assert applied == ["sample:0002_item_colour"]
        with db.database.connection_context():
            columns = {c.name for c in db.database.get_columns("sample_item")}
            assert "colour" in columns
            rows = db.database.execute_sql("SELECT name, colour FROM sample_item ORDER BY id").fetchall()
            assert [tuple(r) for r in rows] == [("first", None), ("second", None)]
        assert migrations.migrate(host) == []  # nothing pending twice
