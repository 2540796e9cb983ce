"""The webhooks plugin's automation step "call a webhook" (through the automation
plugin's ``crm_automation_actions``): one signed delivery of the run's record to the
endpoint the step names, through the delivery outbox, to the loopback receiver."""

from __future__ import annotations

from typing import Any

import pytest

from crm_plugins.automation.models import AutomationRun
from tests.plugins.webhooks.conftest import FAST, drain, in_tenant


@pytest.fixture
def env(crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRM_WEBHOOKS_ALLOW_PRIVATE", "1")
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["automation", "webhooks"],
                         settings={"webhooks": FAST, "automation": {"retry_base_seconds": 0, "step_attempts": 2}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=["automation"])
    crm_env.create_app()
    return crm_env


def test_call_a_webhook_step_posts_the_record_signed_once(env: Any, admin: Any, receiver: Any) -> None:
    endpoint = admin("POST", "/webhooks/endpoints", json={"url": receiver.url, "event_types": ["deal_stage_changed"]}, status=201)
    receiver.secrets.append(endpoint["secret"])
    body = {"name": "Tell the ERP", "entity": "lead", "trigger": {"type": "record_created"}, "status": "active",
            "steps": [{"action": "call_webhook", "params": {"endpoint_id": endpoint["id"]}}, {"action": "add_tag", "params": {"tag": "sent"}}]}
    errors = admin("POST", "/automation/rules", json={**body, "steps": [{"action": "call_webhook", "params": {"endpoint_id": 999999}}]}, status=422)
    assert list(errors["errors"]["json"]) == ["steps[0].params.endpoint_id"]
    rule = admin("POST", "/automation/rules", json=body, status=201)
    lead = admin("POST", "/leads", json={"name": "Ada", "email": "ada@example.com"}, status=201)
    drain(env)
    [request] = receiver.requests
    assert request["verified"] == {endpoint["secret"]: True}
    assert request["json"]["type"] == "automation_step"
    data = request["json"]["data"]
    assert (data["rule_id"], data["entity"], data["step"], data["record"]["id"], data["record"]["email"]) == (rule["id"], "lead", 0, lead["id"], "ada@example.com")
    with in_tenant(env):
        [run] = AutomationRun.select()
    assert run.status == "done" and f"queued to endpoint {endpoint['id']}" in run.log[0]["result"]
    # a disabled endpoint: the run stops with the reason, nothing posted
    admin("PATCH", f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": False})
    admin("POST", "/leads", json={"name": "Bob"}, status=201)
    drain(env)
    with in_tenant(env):
        stopped = AutomationRun.select().order_by(AutomationRun.id.desc()).first()
    assert (stopped.status, stopped.guard) == ("stopped", "refused") and "disabled" in stopped.error
    assert len(receiver.requests) == 1


def test_the_step_is_not_offered_without_the_webhooks_plugin(env: Any) -> None:
    from tests.plugins.webhooks.conftest import Api, token

    beta = Api(env, "beta", token(env, "beta"))
    assert "call_webhook" not in {a["action"] for a in beta("GET", "/automation/catalogue")["actions"]}
