"""The issue's "Done when", end to end: "when a lead scores above 80, notify its owner and
create a call task; if no activity after 3 days, email the lead" built through the API,
tested (dry run), activated; the real scoring plugin crosses 80, the real worker runs
the steps, time moves by rewriting dates in the database (no sleeping), the sweep wakes
the run and the email arrives at aiosmtpd. Also: the channels plugin's message triggers
and the "create a deal" step."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crm_plugins.automation import runs
from crm_plugins.automation.models import AutomationRun
from crm_plugins.channels import contrib as channels
from crmcore.notifications import Notification
from crmcore.sdk import Activity, Deal, Task, log_activity, tag_names, utcnow
from tests.plugins.automation.conftest import FAST, api_for, drain, in_tenant, make_user
from tests.plugins.channels.conftest import email_settings, smtp  # noqa: F401 (fixture)


@pytest.fixture
def env(crm_env: Any, smtp: Any) -> Any:  # noqa: F811
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["automation", "scoring", "channels", "email"], settings={
        "automation": FAST, "email": email_settings(smtp.port), "channels": {"template_default": "there", "retry_seconds": 0.05},
        "scoring": {"debounce_seconds": 0, "base": {"status_probability": {"new": 10, "contacted": 20, "qualified": 75, "unqualified": 0, "converted": 60}}}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=["automation"])
    crm_env.create_app()
    return crm_env


def the_run() -> AutomationRun:
    return AutomationRun.select().order_by(AutomationRun.id.desc()).first()


def earlier(run_id: int, lead_id: int, days: float) -> None:
    """Move time: the wait began, and every activity of the lead happened, ``days`` earlier."""
    shift = dt.timedelta(days=days)
    run = AutomationRun.get_by_id(run_id)
    AutomationRun.update(waiting_since=run.waiting_since - shift, wake_at=run.wake_at - shift).where(AutomationRun.id == run_id).execute()
    for activity in Activity.select().where(Activity.lead == lead_id):
        Activity.update(occurred_at=activity.occurred_at - shift).where(Activity.id == activity.id).execute()


def test_done_when_score_above_80_notify_and_call_task_then_email_after_3_quiet_days(env: Any, smtp: Any) -> None:  # noqa: F811
    owner = make_user(env, role="manager")
    admin = api_for(env, owner)
    template = admin("POST", "/templates", {"name": "Checking in", "subject": "Checking in, {{ lead.name }}", "body": "Hello {{ lead.name }}, any questions?"}, status=201)
    rule = admin("POST", "/automation/rules", {
        "name": "Hot lead", "entity": "lead", "trigger": {"type": "lead_score_crossed", "options": {"threshold": 80}},
        "steps": [{"action": "notify", "params": {"title": "{name} is hot", "to_owner": True}},
                  {"action": "create_task", "params": {"title": "Call {name}", "due_in_days": 0}},
                  {"action": "wait_no_activity", "params": {"days": 3}},
                  {"action": "send_template", "params": {"template_id": template["id"]}}],
        "exit_on": ["message_received"]}, status=201)
    assert (rule["status"], rule["name"], rule["exit_on"]) == ("draft", "Hot lead", ["message_received"])
    lead = admin("POST", "/leads", {"name": "Hedy", "email": "hedy@example.com", "owner_id": owner.id}, status=201)
    tested = admin("POST", f"/automation/rules/{rule['id']}/dry-run", {"limit": 5})  # "test this rule": nothing done
    assert tested["matched"] == 1 and len(tested["records"][0]["steps"]) == 4
    admin("POST", f"/automation/rules/{rule['id']}/activate")
    drain(env)
    with in_tenant(env):
        assert AutomationRun.select().count() == 0  # scored 10: no crossing
    # the scoring plugin scores it 75 + 10 (value) + 5 (recent contact) = 90: crosses 50 and 80
    admin("PATCH", f"/leads/{lead['id']}", {"status": "qualified", "estimated_value": "60000", "last_contact_at": (utcnow() - dt.timedelta(days=1)).isoformat()})
    drain(env)
    with in_tenant(env) as tenant:
        run = the_run()
        assert (run.status, run.step, run.waiting_for, AutomationRun.select().count()) == ("waiting", 2, "quiet", 1)
        assert run.wake_at > utcnow() + dt.timedelta(days=2, hours=23)
        assert [n.title for n in Notification.select().where(Notification.user == owner.id)] == ["Hedy is hot"]
        assert [(t.title, t.assignee_id) for t in Task.select()] == [("Call Hedy", owner.id)]
        # two days later the rep logs a call: the quiet period starts again from it
        earlier(run.id, lead["id"], 2)
        log_activity({"kind": "call", "lead": lead["id"], "subject": "Left a voicemail"})
        earlier(run.id, lead["id"], 1.01)  # ... and the 3 days since the wait began are over
        assert runs.wake_due(tenant) == 1
    drain(env)
    with in_tenant(env) as tenant:
        run = the_run()
        assert (run.status, run.step) == ("waiting", 2) and run.wake_at > utcnow() + dt.timedelta(days=1, hours=23)
        assert smtp.accepted == []
        earlier(run.id, lead["id"], 2.01)  # three quiet days after the call
        assert runs.wake_due(tenant) == 1
    drain(env)
    [mail] = smtp.accepted
    assert (mail["To"], mail["Subject"]) == ("hedy@example.com", "Checking in, Hedy")
    with in_tenant(env):
        run = the_run()
        assert run.status == "done"
        assert [e["action"] for e in run.log] == ["notify", "create_task", "wait_no_activity", "wait_no_activity", "send_template"]
    page = admin("GET", f"/automation/runs/{run.id}")
    assert page["status"] == "done" and page["log"][-1]["result"].startswith("email #")


def test_message_triggers_from_the_channels_plugin_and_a_reply_exits(env: Any, smtp: Any) -> None:  # noqa: F811
    owner = make_user(env)
    admin = api_for(env, owner)
    catalogue = {t["type"] for t in admin("GET", "/automation/catalogue")["triggers"]}
    assert {"message_received", "message_sent", "message_failed", "email_unsubscribed"} <= catalogue
    for trigger, tag in (("message_received", "replied"), ("message_sent", "mailed"), ("message_failed", "bounced")):
        admin("POST", "/automation/rules", {"name": tag, "entity": "lead", "trigger": {"type": trigger, "options": {"channel": "email"}},
                                            "steps": [{"action": "add_tag", "params": {"tag": tag}}], "status": "active"}, status=201)
    waiting = admin("POST", "/automation/rules", {"name": "Sequence", "entity": "lead", "trigger": {"type": "record_created"}, "status": "active",
                                                  "steps": [{"action": "wait", "params": {"days": 2}}, {"action": "add_tag", "params": {"tag": "followed-up"}}],
                                                  "exit_on": ["message_received"]}, status=201)
    lead = admin("POST", "/leads", {"name": "Ada", "email": "ada@example.com"}, status=201)
    smtp.replies = ["250 ok", "550 5.1.1 Mailbox unknown"]
    for subject in ("One", "Two"):
        admin("POST", "/messages", {"channel": "email", "entity": "lead", "record_id": lead["id"], "subject": subject, "body": "Hi"}, status=201)
        drain(env)
    with in_tenant(env) as tenant:
        assert sorted(tag_names("lead", [lead["id"]])[lead["id"]]) == ["bounced", "mailed"]
        assert AutomationRun.get(AutomationRun.rule == waiting["id"]).status == "waiting"
        channels.receive(tenant, "email", address="ada@example.com", subject="Out of office", body_text="Away",
                         message_id="<auto@example.com>", headers={"Auto-Submitted": "auto-replied"})
    drain(env)
    with in_tenant(env) as tenant:  # an auto-reply is no reply
        assert "replied" not in tag_names("lead", [lead["id"]])[lead["id"]]
        assert AutomationRun.get(AutomationRun.rule == waiting["id"]).status == "waiting"
        channels.receive(tenant, "email", address="ada@example.com", subject="Re: One", body_text="Yes", message_id="<r@example.com>")
    drain(env)
    with in_tenant(env):
        assert "replied" in tag_names("lead", [lead["id"]])[lead["id"]]
        run = AutomationRun.get(AutomationRun.rule == waiting["id"])
        assert (run.status, run.guard) == ("stopped", "exit") and "message_received" in run.error


def test_create_a_deal_step(env: Any) -> None:
    owner = make_user(env)
    admin = api_for(env, owner)
    bad = admin("POST", "/automation/rules", {"name": "Deal", "entity": "lead", "trigger": {"type": "record_created"},
                                              "steps": [{"action": "create_deal", "params": {"title": "", "stage_id": 999999}}]}, status=422)
    assert set(bad["errors"]["json"]) == {"steps[0].params.title"}
    admin("POST", "/automation/rules", {"name": "Deal", "entity": "deal", "trigger": {"type": "record_created"},
                                        "steps": [{"action": "create_deal", "params": {"title": "x"}}]}, status=422)  # not on deals
    admin("POST", "/automation/rules", {"name": "Deal", "entity": "lead", "trigger": {"type": "record_created"}, "status": "active",
                                        "steps": [{"action": "create_deal", "params": {"title": "{name} – first order", "value": "1200"}}]}, status=201)
    lead = admin("POST", "/leads", {"name": "Ada", "owner_id": owner.id}, status=201)
    drain(env)
    with in_tenant(env):
        [deal] = Deal.select()
        assert (deal.title, deal.lead_id, deal.owner_id, float(deal.value)) == ("Ada – first order", lead["id"], owner.id, 1200.0)
        assert the_run().status == "done"
