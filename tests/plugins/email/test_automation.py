"""The email plugin's automation step "send a template" (through the automation
plugin's ``crm_automation_actions``), its refusals, the ``email_unsubscribed`` trigger as
an exit condition, and a reply ending a "wait for a reply": real SMTP (aiosmtpd), real
worker, real inbound path (the channels receive)."""

from __future__ import annotations

from typing import Any

import pytest

from crm_plugins.automation.models import AutomationRun
from crm_plugins.channels import contrib as channels
from crm_plugins.email import unsubscribe
from crm_plugins.email.models import Undeliverable
from tests.plugins.channels.conftest import drain, email_settings, in_tenant

FAST = {"retry_base_seconds": 0, "step_attempts": 2}


@pytest.fixture
def env(crm_env: Any, smtp: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["automation", "channels", "email"],
                         settings={"email": email_settings(smtp.port), "channels": {"template_default": "there", "retry_seconds": 0.05},
                                   "automation": FAST})
    crm_env.write_tenant("beta", name="Beta Co", plugins=["automation"])
    crm_env.create_app()
    return crm_env


def template(admin: Any) -> dict[str, Any]:
    return admin("POST", "/templates", json={"name": "Follow-up", "subject": "Still interested, {{ lead.name }}?",
                                             "body": "Hello {{ lead.name }},\nshall we talk?"}, status=201)


def rule(admin: Any, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body = {"name": "Follow up", "entity": "lead", "trigger": {"type": "record_created"}, "conditions": {"all": [{"field": "source", "op": "eq", "value": "form"}]},
            "steps": steps, "status": "active", **extra}
    return admin("POST", "/automation/rules", json=body, status=201)


def runs() -> list[AutomationRun]:
    return list(AutomationRun.select().order_by(AutomationRun.id))


def test_send_a_template_step_emails_the_lead_once_through_the_outbox(env: Any, admin: Any, smtp: Any) -> None:
    tpl = template(admin)
    bad = admin("POST", "/automation/rules", json={"name": "x", "entity": "lead", "trigger": {"type": "record_created"},
                                                   "steps": [{"action": "send_template", "params": {"template_id": 999999, "purpose": "spam"}}]}, status=422)
    assert set(bad["errors"]["json"]) == {"steps[0].params.template_id", "steps[0].params.purpose"}
    catalogue = admin("GET", "/automation/catalogue")
    assert "send_template" in {a["action"] for a in catalogue["actions"]}
    rule(admin, [{"action": "send_template", "params": {"template_id": tpl["id"]}}])
    lead = admin("POST", "/leads", json={"name": "Ada", "email": "ada@example.com", "source": "form"}, status=201)
    drain(env)
    [mail] = smtp.accepted
    assert (mail["To"], mail["Subject"]) == ("ada@example.com", "Still interested, Ada?")
    assert mail.get_content().startswith("Hello Ada,")
    with in_tenant(env):
        [run] = runs()
        assert run.status == "done" and "queued to ada@example.com" in run.log[-1]["result"]
    # on the lead's conversations, sent (the outbox did it, once)
    [message] = admin("GET", f"/messages?entity=lead&record_id={lead['id']}")["items"]
    assert message["status"] == "sent" and message["idempotency_key"] == f"automation:{run.id}:0"


def test_no_address_an_undeliverable_or_unsubscribed_one_stops_the_run_with_the_reason(env: Any, admin: Any, smtp: Any) -> None:
    tpl = template(admin)
    rule(admin, [{"action": "send_template", "params": {"template_id": tpl["id"]}}, {"action": "add_tag", "params": {"tag": "mailed"}}])
    with in_tenant(env) as tenant:
        Undeliverable.create(address="gone@example.com", reason="5.1.1 user unknown", tenant=tenant.id)
        channels.set_consent("nomore@example.com", opted_out=True, channel="email", source="link", scope="marketing")
    for name, email in (("No Mail", None), ("Gone", "gone@example.com"), ("No More", "nomore@example.com")):
        admin("POST", "/leads", json={"name": name, "source": "form", **({"email": email} if email else {})}, status=201)
    drain(env)
    assert smtp.accepted == []
    with in_tenant(env):
        found = [(r.status, r.guard, r.step) for r in runs()]
        errors = [r.error for r in runs()]
    assert found == [("stopped", "refused", 0)] * 3  # not retried, the next step not taken
    assert "no email address" in errors[0] and "gone@example.com is undeliverable" in errors[1] and "nomore@example.com unsubscribed" in errors[2]


def test_a_reply_ends_a_wait_for_reply_and_an_unsubscribe_exits_the_sequence(env: Any, admin: Any, smtp: Any) -> None:
    tpl = template(admin)
    rule(admin, [{"action": "wait_for_reply", "params": {"days": 5}}, {"action": "send_template", "params": {"template_id": tpl["id"]}}])
    rule(admin, [{"action": "wait", "params": {"days": 2}}, {"action": "send_template", "params": {"template_id": tpl["id"]}}],
         name="Newsletter", exit_on=["email_unsubscribed"])
    admin("POST", "/automation/rules", json={"name": "x", "entity": "lead", "trigger": {"type": "record_created"}, "exit_on": ["nope", "inactive"],
                                             "steps": [{"action": "add_tag", "params": {"tag": "x"}}]}, status=422)
    admin("POST", "/leads", json={"name": "Ada", "email": "ada@example.com", "source": "form"}, status=201)
    drain(env)
    with in_tenant(env):
        waiting = [(r.status, r.waiting_for, r.step) for r in runs()]
    assert waiting == [("waiting", "reply", 0), ("waiting", None, 1)]
    with in_tenant(env) as tenant:  # Ada answers (the inbound path the IMAP poll takes)
        channels.receive(tenant, "email", address="ada@example.com", subject="Re: hello", body_text="Yes, call me", message_id="<r1@example.com>")
    drain(env)
    with in_tenant(env):
        replied, newsletter = runs()
        assert (replied.status, replied.log[-1]["result"]) == ("done", "the contact replied: run ended")
        assert newsletter.status == "waiting"
        token = unsubscribe.token_for(tenant, "ada@example.com")
    assert env.client("acme").post(f"/email/unsubscribe/{token}").status_code == 200
    drain(env)
    with in_tenant(env):
        newsletter = runs()[1]
    assert (newsletter.status, newsletter.guard) == ("stopped", "exit") and "email_unsubscribed" in newsletter.error
    assert smtp.accepted == []


def test_the_step_is_not_offered_without_the_email_plugin(env: Any) -> None:
    from crmcore.testing import Api
    from tests.plugins.channels.conftest import token

    beta = Api(env, "beta", token(env, "beta"))
    names = {a["action"] for a in beta("GET", "/automation/catalogue")["actions"]}
    triggers = {t["type"] for t in beta("GET", "/automation/catalogue")["triggers"]}
    assert "send_template" not in names and "wait_for_reply" in names
    assert not {"message_received", "email_unsubscribed"} & triggers
