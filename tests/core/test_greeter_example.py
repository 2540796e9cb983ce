"""The README's example plugin (examples/greeter), pip-installed as an integrator would,
does all it promises for the tenant that has it on and nothing for the one that does not:
a model with its migration, an API route, a page with a menu item, a receiver that hands
its work to a task, a scheduled job and a validated setting. The README shows its two
files verbatim, in at most 50 lines of code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crmcore import db
from crmcore.config import ConfigError
from crmcore.db import tenant_context
from crmcore.jobs import Scheduler
from crmcore.tasks import Worker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "greeter" / "crm_greeter"


@pytest.fixture
def greeter_env(crm_env, greeter_plugin_path):
    crm_env.write_tenant("alpha", plugins=["greeter"], settings={"greeter": {"greeting": "Hi <b>there</b>"}})
    crm_env.write_tenant("beta")
    crm_env.create_app()
    return crm_env


def run_tasks(env) -> int:
    ran = 0
    with env.app.app_context(), db.database.connection_context():
        while Worker(env.crm).run_one() is not None:
            ran += 1
    return ran


def greetings(env, slug: str) -> list[str]:
    from crm_greeter.hooks import Greeting

    with env.app.app_context(), db.database.connection_context(), tenant_context(env.tenant(slug)):
        return [g.text for g in Greeting.select().order_by(Greeting.id)]


def test_readme_shows_the_example_verbatim_in_at_most_50_lines():
    readme = (ROOT / "README.md").read_text()
    lines = 0
    for name in ("__init__.py", "hooks.py"):
        source = (EXAMPLE / name).read_text()
        block = re.search(rf"```python\n# crm_greeter/{name}\n(.*?)```", readme, re.S)
        assert block, f"README.md has no block for crm_greeter/{name}"
        assert block.group(1) == source, f"README.md's crm_greeter/{name} differs from examples/greeter"
        lines += sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))
    assert lines <= 50


def test_lead_created_is_greeted_through_a_task_for_the_enabled_tenant_only(greeter_env):
    alpha, beta = greeter_env.client("alpha"), greeter_env.client("beta")
    for client, slug in ((alpha, "alpha"), (beta, "beta")):
        made = client.post("/api/v1/leads", json={"name": "Ada Lovelace"}, headers={"Authorization": f"Bearer {greeter_env.token(slug)}"})
        assert made.status_code == 201, made.json
    assert greetings(greeter_env, "alpha") == []  # the receiver only enqueued the work
    assert run_tasks(greeter_env) == 1
    assert greetings(greeter_env, "alpha") == ["Hi <b>there</b>, Ada Lovelace!"]
    assert greetings(greeter_env, "beta") == []


def test_api_route_and_its_permission(greeter_env):
    alpha, beta = greeter_env.client("alpha"), greeter_env.client("beta")
    alpha.post("/api/v1/leads", json={"name": "Grace Hopper"}, headers={"Authorization": f"Bearer {greeter_env.token('alpha')}"})
    run_tasks(greeter_env)
    listed = alpha.get("/api/v1/greeter/greetings", headers={"Authorization": f"Bearer {greeter_env.token('alpha', role='viewer')}"})
    assert listed.status_code == 200
    assert [(g["text"], set(g)) for g in listed.json] == [("Hi <b>there</b>, Grace Hopper!", {"id", "lead_id", "text"})]
    assert alpha.get("/api/v1/greeter/greetings").status_code == 401
    assert beta.get("/api/v1/greeter/greetings", headers={"Authorization": f"Bearer {greeter_env.token('beta')}"}).status_code == 404
    spec = alpha.get("/api/v1/openapi.json").json
    assert "/api/v1/greeter/greetings" in spec["paths"]


def test_page_and_menu_item_for_the_enabled_tenant_only(greeter_env):
    alpha, beta = greeter_env.client("alpha"), greeter_env.client("beta")
    greeter_env.login(alpha, "alpha")
    greeter_env.login(beta, "beta")
    assert 'href="/app/greeter/"' in alpha.get("/app/").get_data(as_text=True)
    page = alpha.get("/app/greeter/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in html and "0 leads greeted" in html  # the setting, escaped
    assert "/app/greeter/" not in beta.get("/app/").get_data(as_text=True)
    assert beta.get("/app/greeter/").status_code == 404


def test_scheduled_job_forgets_greetings_of_deleted_leads(greeter_env):
    alpha = greeter_env.client("alpha")
    auth = {"Authorization": f"Bearer {greeter_env.token('alpha')}"}
    kept = alpha.post("/api/v1/leads", json={"name": "Kept"}, headers=auth).json
    gone = alpha.post("/api/v1/leads", json={"name": "Gone"}, headers=auth).json
    run_tasks(greeter_env)
    assert alpha.delete(f"/api/v1/leads/{gone['id']}", headers=auth).status_code == 204
    assert Scheduler(greeter_env.crm, holder="test").run_job("greeter:forget_deleted") == ["alpha"]
    assert greetings(greeter_env, "alpha") == ["Hi <b>there</b>, Kept!"]
    assert kept["id"] != gone["id"]


def test_setting_is_validated(greeter_env):
    greeter_env.write_tenant("alpha", plugins=["greeter"], settings={"greeter": {"greeting": ""}})
    with pytest.raises(ConfigError) as info:
        greeter_env.crm.config_store.reload()
    assert "settings.greeter.greeting" in str(info.value)
    assert greeter_env.crm.settings("alpha", "greeter")["greeting"] == "Hi <b>there</b>"
