"""Time triggers: a date field reached (± days) and inactivity, found by the sweep in SQL,
each occurrence firing once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crm_plugins.automation import time_triggers
from crm_plugins.automation.models import AutomationRun
from crmcore.jobs import Scheduler
from crmcore.sdk import Activity, Lead, create_record, log_activity, utcnow
from tests.plugins.automation.conftest import drain, in_tenant, rule_body


def test_date_reached_fires_once_on_its_day(admin: Any, env: Any) -> None:
    admin("POST", "/automation/rules", rule_body(name="Closing soon", entity="deal", conditions={},
                                                  trigger={"type": "date_reached", "options": {"field": "expected_close_date", "offset_days": -3}},
                                                  steps=[{"action": "add_tag", "params": {"tag": "closing-soon"}}]), status=201)
    admin("POST", "/automation/rules", rule_body(entity="deal", trigger={"type": "date_reached", "options": {"field": "title"}}), status=422)
    today = utcnow().date()
    soon = admin("POST", "/deals", {"title": "Soon", "expected_close_date": (today + dt.timedelta(days=3)).isoformat()}, status=201)
    admin("POST", "/deals", {"title": "Later", "expected_close_date": (today + dt.timedelta(days=10)).isoformat()}, status=201)
    admin("POST", "/deals", {"title": "Long past", "expected_close_date": (today - dt.timedelta(days=30)).isoformat()}, status=201)
    with in_tenant(env) as tenant:
        assert time_triggers.sweep(tenant) == 1
        assert time_triggers.sweep(tenant) == 0  # once per occurrence
        assert [(r.record_id, r.trigger) for r in AutomationRun.select()] == [(soon["id"], "date_reached")]
    drain(env)
    assert "closing-soon" in admin("GET", f"/deals/{soon['id']}")["tags"]
    assert Scheduler(env.crm, holder="t").jobs["automation:time_triggers"][1].trigger_args == {"seconds": 60}


def test_inactivity_fires_once_per_quiet_spell(admin: Any, env: Any) -> None:
    admin("POST", "/automation/rules", rule_body(name="Stale", conditions={"all": [{"field": "status", "op": "eq", "value": "new"}]},
                                                  trigger={"type": "inactive", "options": {"days": 14}},
                                                  steps=[{"action": "notify", "params": {"title": "{name} is stale"}}]), status=201)
    with in_tenant(env) as tenant:
        old = utcnow() - dt.timedelta(days=20)
        quiet = create_record(Lead, {"name": "Quiet"})
        busy = create_record(Lead, {"name": "Busy"})
        young = create_record(Lead, {"name": "Young"})
        Lead.update(created_at=old).where(Lead.id.in_([quiet.id, busy.id])).execute()
        log_activity({"kind": "call", "lead": busy.id, "subject": "talked", "occurred_at": utcnow() - dt.timedelta(days=2)})
        assert time_triggers.sweep(tenant) == 1
        assert time_triggers.sweep(tenant) == 0
        assert [r.record_id for r in AutomationRun.select()] == [quiet.id]
        # new activity, then another quiet spell: fires again
        log_activity({"kind": "email", "lead": quiet.id, "subject": "hello", "occurred_at": utcnow() - dt.timedelta(days=15)})
        assert Activity.select().count() == 2
        assert time_triggers.sweep(tenant) == 1
        assert young.id not in [r.record_id for r in AutomationRun.select()]


def test_shipped_templates_validate_once_their_blanks_are_filled(admin: Any, admin_user: Any, env: Any) -> None:
    from crm_plugins.automation.templates import TEMPLATES

    stage = admin("GET", "/pipelines")["items"][0]["stages"][-1]["id"]
    catalogue = admin("GET", "/automation/catalogue")  # the hot-lead template needs the scoring plugin
    assert "lead_score_crossed" not in {t["type"] for t in catalogue["triggers"]}
    for template in TEMPLATES:
        body = {k: template[k] for k in ("name", "entity", "trigger", "conditions", "steps")}
        if template["trigger"]["type"] == "lead_score_crossed":
            admin("POST", "/automation/rules", body, status=422)
            continue
        if "to_stage_id" in template["trigger"]["options"]:
            body["trigger"] = {"type": "deal_stage_changed", "options": {"to_stage_id": stage}}
        for step in body["steps"]:
            if step["action"] == "assign_owner":
                step["params"]["user_ids"] = [admin_user.id]
        admin("POST", "/automation/rules", body, status=201)
