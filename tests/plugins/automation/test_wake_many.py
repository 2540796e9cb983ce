"""Waiting runs woken in bulk: one UPDATE claims them, their step tasks are queued with
``sdk.enqueue_many`` (one INSERT per 500), and each resumes once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crm_plugins.automation import runs
from crm_plugins.automation.models import AutomationRule, AutomationRun
from crmcore.sdk import Lead, enqueue_many, utcnow
from crmcore.tasks import Task
from tests.plugins.automation.conftest import drain, in_tenant, rule_body


def test_many_waiting_runs_resume_once_each(admin: Any, env: Any) -> None:
    rule = admin("POST", "/automation/rules", rule_body(name="Wait then tag", conditions={}, status="draft", steps=[
        {"action": "wait", "params": {"days": 1}}, {"action": "add_tag", "params": {"tag": "woke"}}]), status=201)
    with in_tenant(env) as tenant:
        version = AutomationRule.get_by_id(rule["id"]).version
        leads = Lead.insert_many([{"tenant": tenant.id, "name": f"Lead {i}"} for i in range(12)]).returning(Lead.id).tuples().execute()
        ids = [i for (i,) in leads]
        AutomationRun.insert_many([{"tenant": tenant.id, "rule": rule["id"], "version": version, "entity": "lead", "record_id": i,
                                    "trigger": "record_created", "status": "waiting", "step": 1, "tries": 1,
                                    "wake_at": utcnow() - dt.timedelta(seconds=5)} for i in ids]).execute()
        AutomationRun.update(wake_at=utcnow() + dt.timedelta(hours=1)).where(AutomationRun.record_id == ids[-1]).execute()  # not due yet
        assert runs.wake_due(tenant) == 11
        assert runs.wake_due(tenant) == 0
        steps = Task.select().where(Task.kind == runs.STEP_TASK)
        assert steps.count() == 11
        # the same keys again (a sweep repeated after a takeover) add nothing
        again = [({"run_id": t.id}, t.idempotency_key) for t in steps]
        assert enqueue_many(runs.STEP_TASK, again, tenant=tenant) == 0
    drain(env)
    with in_tenant(env):
        statuses = dict(AutomationRun.select(AutomationRun.record_id, AutomationRun.status).tuples())
        assert [statuses[i] for i in ids].count("done") == 11 and statuses[ids[-1]] == "waiting"
        assert all(len(r.log) == 1 for r in AutomationRun.select().where(AutomationRun.status == "done"))  # the tag step, once
    assert "woke" in admin("GET", f"/leads/{ids[0]}")["tags"]
