"""Rules (validation with paths, versions, dry run) and runs (steps, waits, retries,
loop guards, exactly once) through the API and a real worker."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from crm_plugins.automation import runs
from crm_plugins.automation.models import AutomationRun
from crmcore import db
from crmcore.jobs import Scheduler
from crmcore.models import Task as QueuedTask
from crmcore.notifications import Notification
from crmcore.sdk import Lead, Task, tag_names, utcnow
from tests.plugins.automation.conftest import drain, in_tenant, make_user, rule_body


def all_runs() -> list[AutomationRun]:
    with db.database.connection_context():
        return list(AutomationRun.select_all_tenants().order_by(AutomationRun.id))


def test_invalid_rules_are_refused_with_the_path_of_each_error(admin: Any, env: Any) -> None:
    gone = make_user(env, "beta")
    body = rule_body(
        trigger={"type": "record_updated", "options": {"field": "nope", "colour": "red"}},
        conditions={"all": [{"field": "status", "op": "eq", "value": "new"}, {"any": [{"field": "source", "op": "like", "value": "x"}, {"field": "secret"}]}]},
        steps=[{"action": "add_tag", "params": {"tag": "ok"}}, {"action": "assign_owner", "params": {"user_ids": [gone.id]}},
               {"action": "wait", "params": {"days": -1}}, {"action": "fly", "params": {}}, {"action": "update_field", "params": {"field": "id", "value": 3}}],
    )
    errors = admin("POST", "/automation/rules", body, status=422)["errors"]["json"]
    assert set(errors) == {"trigger.options.field", "trigger.options.colour", "conditions.all[1].any[0].op", "conditions.all[1].any[1].field",
                           "conditions.all[1].any[1].op", "steps[1].params.user_ids", "steps[2].params.days", "steps[3].action", "steps[4].params.field"}, errors
    assert "No active user" in errors["steps[1].params.user_ids"][0]
    admin("POST", "/automation/rules", rule_body(entity="planet"), status=422)
    admin("POST", "/automation/rules", rule_body(trigger={"type": "deal_stage_changed"}), status=422)  # leads have no stages
    admin("POST", "/automation/rules", rule_body(steps=[]), status=422)
    admin("POST", "/automation/rules", {"name": "x"}, status=422)
    assert admin("GET", "/automation/rules")["items"] == []


def test_a_matching_record_runs_every_step_once(admin: Any, admin_user: Any, env: Any) -> None:
    rep = make_user(env, role="agent")
    rule = admin("POST", "/automation/rules", rule_body(steps=[
        {"action": "add_tag", "params": {"tag": "web"}},
        {"action": "assign_owner", "params": {"user_ids": [rep.id, admin_user.id]}},
        {"action": "create_task", "params": {"title": "Call {name}", "due_in_days": 0}},
        {"action": "notify", "params": {"title": "New web lead {name}", "to_owner": True}},
        {"action": "update_field", "params": {"field": "priority", "value": "high"}},
    ]), status=201)
    assert rule["status"] == "active" and rule["version"] == 1
    ada = admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    admin("POST", "/leads", {"name": "Bob", "source": "manual"}, status=201)  # no match
    grace = admin("POST", "/leads", {"name": "Grace", "source": "form"}, status=201)
    assert all_runs() == []  # receivers only queue a start task; the worker writes the runs
    drain(env)
    assert [(r.record_id, r.status, r.step, len(r.log)) for r in all_runs()] == [(ada["id"], "done", 4, 5), (grace["id"], "done", 4, 5)]
    with in_tenant(env):
        leads = {lead.name: lead for lead in Lead.select()}
        assert tag_names("lead", [ada["id"]])[ada["id"]] == ["web"]
        assert (leads["Ada"].owner_id, leads["Grace"].owner_id) == (rep.id, admin_user.id)  # round-robin
        assert leads["Ada"].priority == "high" and leads["Bob"].priority != "high"
        assert sorted(t.title for t in Task.select()) == ["Call Ada", "Call Grace"]
        assert Task.get(Task.title == "Call Ada").assignee_id == rep.id
        assert [n.title for n in Notification.select().where(Notification.user == rep.id)] == ["New web lead Ada"]
    listed = admin("GET", "/automation/rules")["items"][0]
    assert (listed["runs"], listed["failed"]) == (2, 0)
    # the run log, filtered; one run with its log
    assert len(admin("GET", f"/automation/runs?rule_id={rule['id']}&status=done")["items"]) == 2
    run = admin("GET", f"/automation/runs/{all_runs()[0].id}")
    assert [e["action"] for e in run["log"]] == ["add_tag", "assign_owner", "create_task", "notify", "update_field"]


def test_waits_resume_from_the_sweep_on_the_version_they_started(admin: Any, env: Any) -> None:
    rule = admin("POST", "/automation/rules", rule_body(steps=[
        {"action": "add_tag", "params": {"tag": "first"}},
        {"action": "wait", "params": {"seconds": 0.3}},
        {"action": "add_tag", "params": {"tag": "after-wait"}},
    ]), status=201)
    lead = admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    drain(env)
    [run] = all_runs()
    assert run.status == "waiting" and run.step == 2 and run.wake_at is not None
    # a new version meanwhile: the waiting run finishes on version 1
    admin("PUT", f"/automation/rules/{rule['id']}", rule_body(steps=[{"action": "add_tag", "params": {"tag": "v2"}}]))
    tenant = env.tenant("acme")
    with in_tenant(env):
        assert runs.wake_due(tenant) == 0  # not due yet
    time.sleep(0.35)
    with in_tenant(env):
        assert runs.wake_due(tenant) == 1
        assert runs.wake_due(tenant) == 0  # claimed once
    drain(env)
    [run] = all_runs()
    assert (run.status, run.version) == ("done", 1)
    with in_tenant(env):
        assert sorted(tag_names("lead", [lead["id"]])[lead["id"]]) == ["after-wait", "first"]
    # the job is declared every minute and runs for acme only (beta has the plugin off)
    scheduler = Scheduler(env.crm, holder="t")
    assert scheduler.jobs["automation:wake_due"][1].trigger_args == {"seconds": 60}
    assert scheduler.run_job("automation:wake_due") == ["acme", "gamma"]


def test_a_step_task_run_twice_does_its_step_once(admin: Any, env: Any) -> None:
    admin("POST", "/automation/rules", rule_body(steps=[{"action": "create_task", "params": {"title": "Once"}}]), status=201)
    admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    with in_tenant(env):  # the start task writes the run and queues its step
        runs.start_matched(QueuedTask.get(QueuedTask.kind == runs.START_TASK))
    with db.database.connection_context():
        task = QueuedTask.get(QueuedTask.kind == runs.STEP_TASK)
    with in_tenant(env):
        runs.run_step(task)
        runs.run_step(task)  # a duplicate delivery, or a worker that lost its lease
        assert Task.select().where(Task.title == "Once").count() == 1
    # and enqueueing the same step again is the same task (idempotency key)
    with in_tenant(env):
        run = AutomationRun.get()
        assert run.status == "done"


def test_hook_crm_automation_actions(admin: Any, env: Any, register_plugin: Any) -> None:
    """Another plugin's action runs as a step; when it fails it is retried with backoff,
    then the run fails with its error visible, and "retry" resumes from that step."""
    from crm_plugins.automation.contrib import AutomationAction
    from crmcore.sdk import hookimpl

    state = {"fail": True, "calls": 0}

    def flaky(call: Any) -> str:
        state["calls"] += 1
        if state["fail"]:
            raise RuntimeError("the service said no")
        return "worked"

    class Flaky:
        @hookimpl
        def crm_automation_actions(self, tenant: Any) -> list[Any]:
            return [AutomationAction("flaky", "Flaky", flaky)]

    register_plugin(Flaky(), "flaky_plugin")
    admin("POST", "/automation/rules", rule_body(steps=[{"action": "add_tag", "params": {"tag": "a"}}, {"action": "flaky", "params": {}},
                                                       {"action": "add_tag", "params": {"tag": "b"}}]), status=201)
    lead = admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    drain(env)
    [run] = all_runs()
    assert run.status == "failed" and run.step == 1 and state["calls"] == 2  # step_attempts = 2
    assert "the service said no" in run.error
    assert admin("GET", "/automation/rules")["items"][0]["failed"] == 1
    admin("POST", f"/automation/runs/{run.id}/retry", status=200)
    admin("POST", f"/automation/runs/{run.id}/retry", status=409)  # queued, not failed
    state["fail"] = False
    drain(env)
    [run] = all_runs()
    assert run.status == "done" and state["calls"] == 3
    with in_tenant(env):
        assert sorted(tag_names("lead", [lead["id"]])[lead["id"]]) == ["a", "b"]  # "a" once: no step ran twice


def test_loop_guards_stop_runs_and_say_why(admin: Any, admin_user: Any, env: Any) -> None:
    rep = make_user(env, role="agent")
    # every owner change triggers the rule, which changes the owner: a loop
    admin("POST", "/automation/rules", rule_body(
        name="Ping-pong", trigger={"type": "record_updated", "options": {"field": "owner_id"}}, conditions={},
        steps=[{"action": "assign_owner", "params": {"user_ids": [admin_user.id, rep.id]}}]), status=201)
    lead = admin("POST", "/leads", {"name": "Ada"}, status=201)
    admin("PATCH", f"/leads/{lead['id']}", {"owner_id": rep.id})
    drain(env)
    chain = all_runs()
    assert [r.status for r in chain] == ["done", "done", "done", "stopped"]
    assert chain[-1].guard == "depth" and "limit is 3" in chain[-1].error and chain[-1].depth == 4
    # the rate limit: 5 runs per rule and record per hour
    admin("POST", "/automation/rules", rule_body(name="Count", trigger={"type": "record_updated", "options": {"field": "phone"}}, conditions={},
                                                  steps=[{"action": "add_tag", "params": {"tag": "n"}}]), status=201)
    for i in range(6):
        admin("PATCH", f"/leads/{lead['id']}", {"phone": f"+4930123456{i}"})
    drain(env)
    limited = [r for r in all_runs() if r.guard == "rate_limit"]
    assert len(limited) == 1 and "limit 5" in limited[0].error


def test_dry_run_reports_matches_and_plans_and_does_nothing(admin: Any, env: Any) -> None:
    rule = admin("POST", "/automation/rules", rule_body(status="draft", conditions={"any": [{"field": "source", "op": "eq", "value": "form"}, {"field": "tags", "op": "contains", "value": "vip"}]},
                                                         steps=[{"action": "create_task", "params": {"title": "Call {name}"}}]), status=201)
    admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    admin("POST", "/leads", {"name": "Bob", "source": "manual"}, status=201)
    admin("POST", "/leads", {"name": "Cy", "source": "manual", "tags": ["vip"]}, status=201)
    result = admin("POST", f"/automation/rules/{rule['id']}/dry-run", {"limit": 10})
    assert (result["checked"], result["matched"]) == (3, 2)
    assert {r["name"]: r["matches"] for r in result["records"]} == {"Ada": True, "Bob": False, "Cy": True}
    assert result["records"][0]["steps"][0].startswith("Create a task")
    assert all_runs() == []
    with in_tenant(env):
        assert Task.select().count() == 0
    admin("POST", f"/automation/rules/{rule['id']}/dry-run", {"limit": 0}, status=422)
    admin("POST", "/automation/rules/999999/dry-run", {}, status=404)


def test_activate_pause_delete_and_a_rule_whose_action_went_away(admin: Any, env: Any, register_plugin: Any) -> None:
    rule = admin("POST", "/automation/rules", rule_body(status="draft"), status=201)
    admin("POST", "/leads", {"name": "Draft", "source": "form"}, status=201)
    assert all_runs() == []  # drafts do not run
    assert admin("POST", f"/automation/rules/{rule['id']}/activate")["status"] == "active"
    assert admin("POST", f"/automation/rules/{rule['id']}/pause")["status"] == "paused"
    admin("POST", "/leads", {"name": "Paused", "source": "form"}, status=201)
    assert all_runs() == []
    admin("DELETE", f"/automation/rules/{rule['id']}", status=204)
    admin("GET", f"/automation/rules/{rule['id']}", status=404)

    # a rule whose action's plugin goes away is paused with the reason; its run fails
    from crm_plugins.automation.contrib import AutomationAction
    from crmcore.sdk import hookimpl

    class Extra:
        @hookimpl
        def crm_automation_actions(self, tenant: Any) -> list[Any]:
            return [AutomationAction("ping", "Ping", lambda call: "pong")]

    register_plugin(Extra(), "extra")
    rule = admin("POST", "/automation/rules", rule_body(steps=[{"action": "ping", "params": {}}]), status=201)
    import dataclasses

    host = env.crm.host  # the plugin is turned off for the tenant
    host.infos["extra"] = dataclasses.replace(host.infos["extra"], always_on=False)
    host._subset_cache.clear()
    admin("POST", "/leads", {"name": "Orphan", "source": "form"}, status=201)
    drain(env)
    [run] = all_runs()
    assert run.status == "failed" and "'ping'" in run.error
    paused = admin("GET", f"/automation/rules/{rule['id']}")
    assert paused["status"] == "paused" and "not available" in paused["paused_reason"]
    admin("POST", f"/automation/rules/{rule['id']}/activate", status=422)  # still invalid


def test_hook_crm_automation_triggers(admin: Any, env: Any, register_plugin: Any) -> None:
    """Another plugin's trigger (a signal of its own) and action become usable as is."""
    from crm_plugins.automation import hooks
    from crm_plugins.automation.contrib import AutomationAction, AutomationTrigger, TriggerEvent
    from crmcore.sdk import hookimpl, send_signal

    seen: list[Any] = []

    class Survey:
        @hookimpl
        def crm_automation_triggers(self, tenant: Any) -> list[Any]:
            return [AutomationTrigger("survey_answered", "survey_answered", "A survey is answered", ("lead",),
                                      lambda lead_id=None, rating=None, **_: TriggerEvent("lead", lead_id, {"rating": rating}))]

        @hookimpl
        def crm_automation_actions(self, tenant: Any) -> list[Any]:
            return [AutomationAction("thank", "Send thanks", lambda call: seen.append((call.record.name, call.params)) or "thanked")]

    register_plugin(Survey(), "survey")
    assert hooks.connect_trigger_signals(env.app) == ["survey_answered"]
    catalogue = admin("GET", "/automation/catalogue")
    assert "survey_answered" in {t["type"] for t in catalogue["triggers"]} and "thank" in {a["action"] for a in catalogue["actions"]}
    admin("POST", "/automation/rules", rule_body(trigger={"type": "survey_answered"}, conditions={"all": [{"field": "event.rating", "op": "gte", "value": 4}]},
                                                  steps=[{"action": "thank", "params": {"x": 1}}]), status=201)
    lead = admin("POST", "/leads", {"name": "Ada"}, status=201)
    with in_tenant(env) as tenant:
        send_signal("survey_answered", tenant, lead_id=lead["id"], rating=2)
        send_signal("survey_answered", tenant, lead_id=lead["id"], rating=5)
    drain(env)
    assert seen == [("Ada", {"x": 1})]


def test_off_for_a_tenant_means_no_routes_no_nav_no_runs(env: Any) -> None:
    from tests.plugins.automation.conftest import api_for

    beta = api_for(env, make_user(env, "beta"), "beta")
    beta("GET", "/automation/rules", status=404)
    beta("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    assert all_runs() == []
    client = env.client("beta")
    env.login(client, slug="beta")
    assert "/app/automation" not in client.get("/app/").get_data(as_text=True)
    assert client.get("/app/automation/").status_code == 404


def test_retention_compacts_finished_runs_only(admin: Any, env: Any) -> None:
    admin("POST", "/automation/rules", rule_body(), status=201)
    admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    admin("POST", "/leads", {"name": "Bo", "source": "form"}, status=201)
    drain(env)
    with in_tenant(env) as tenant:
        old = utcnow() - dt.timedelta(days=31)
        first = AutomationRun.select().order_by(AutomationRun.id).first()
        AutomationRun.update(finished_at=old).where(AutomationRun.id == first.id).execute()
        assert runs.compact(tenant) == 1
        assert AutomationRun.select().count() == 1


def test_hot_lead_template_with_the_scoring_plugins_threshold_signal(env: Any) -> None:
    """The issue's example: a lead scores above 80: notify its owner, create a call task."""
    from crm_plugins.automation.templates import TEMPLATES
    from crmcore.sdk import send_signal
    from tests.plugins.automation.conftest import api_for

    owner = make_user(env, "gamma", role="manager")
    gamma = api_for(env, owner, "gamma")
    template = next(t for t in TEMPLATES if t["key"] == "hot_lead")
    rule = gamma("POST", "/automation/rules", {**{k: template[k] for k in ("name", "entity", "trigger", "conditions", "steps")}, "status": "active"}, status=201)
    lead = gamma("POST", "/leads", {"name": "Hedy", "owner_id": owner.id}, status=201)
    with in_tenant(env, "gamma") as tenant:
        send_signal("lead_score_threshold_crossed", tenant, lead_id=lead["id"], threshold=50, old=40, new=60, grade="C")  # not 80
        send_signal("lead_score_threshold_crossed", tenant, lead_id=lead["id"], threshold=80, old=60, new=85, grade="A")
    drain(env)
    runs_of_rule = [r for r in all_runs() if r.rule_id == rule["id"]]
    assert [(r.status, r.trigger) for r in runs_of_rule] == [("done", "lead_score_crossed")]
    with in_tenant(env, "gamma"):
        assert [n.title for n in Notification.select().where(Notification.user == owner.id)] == ["Hedy is hot"]
        assert [(t.title, t.assignee_id) for t in Task.select()] == [("Call Hedy", owner.id)]


def test_a_matching_fact_is_one_start_task_in_its_transaction_and_a_rollback_leaves_nothing(admin: Any, env: Any) -> None:
    """The outbox: the receiver writes one task row in the sender's transaction (not the
    run itself); a write that rolls back leaves no task and so starts no run."""
    from crmcore.sdk import atomic, create_record

    admin("POST", "/automation/rules", rule_body(conditions={}, steps=[{"action": "add_tag", "params": {"tag": "seen"}}]), status=201)
    admin("POST", "/automation/rules", rule_body(name="Second", conditions={}, steps=[{"action": "add_tag", "params": {"tag": "again"}}]), status=201)
    with in_tenant(env):
        try:
            with atomic():
                create_record(Lead, {"name": "Rolled back"})
                assert QueuedTask.select().where(QueuedTask.kind == runs.START_TASK).count() == 1  # both rules, one row
                raise RuntimeError("the sender fails after the fact")
        except RuntimeError:
            pass
        assert QueuedTask.select().where(QueuedTask.kind == runs.START_TASK).count() == 0
    lead = admin("POST", "/leads", {"name": "Kept"}, status=201)
    drain(env)
    assert sorted((r.record_id, r.status) for r in all_runs()) == [(lead["id"], "done"), (lead["id"], "done")]
    with in_tenant(env):
        assert tag_names("lead", [lead["id"]])[lead["id"]] == ["again", "seen"]
