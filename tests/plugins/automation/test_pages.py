"""The pages: the rule list, the editor (plain form fields, no JSON), a rule's page with
its dry run, activation and the run log; agents are kept out."""

from __future__ import annotations

import re
from typing import Any

from crm_plugins.automation.models import AutomationRule
from tests.plugins.automation.conftest import drain, in_tenant, make_user


def test_build_test_activate_and_watch_a_rule_in_the_pages(env: Any, admin: Any) -> None:
    client = env.client("acme")
    me = env.login(client, role="manager")
    rep = make_user(env, role="agent")
    index = client.get("/app/automation/").get_data(as_text=True)
    assert "Assign new leads" in index and 'href="/app/automation/"' in index  # nav item
    page = client.get("/app/automation/new?template=assign_new_leads").get_data(as_text=True)
    assert 'value="First call: {name}"' in page and 'data-step-row' in page
    csrf = env.csrf(client)
    form = {
        "csrf_token": csrf, "name": "Web leads", "description": "", "entity": "lead", "trigger_type": "record_created",
        "match": "all", "cond_field": ["source", ""], "cond_op": ["eq", "eq"], "cond_value": ["form", ""],
        "step_action": ["assign_owner", "wait", "create_task"],
        "p_user_ids": [f"{rep.id}", "", ""], "p_only_if_unassigned": ["yes", "", ""], "p_days": ["", "x", ""],
        "p_title": ["", "", "Call {name}"], "p_due_in_days": ["", "", "2"], "p_assignee_id": ["", "", ""],
        "p_tag": ["", "", ""], "p_field": ["", "", ""], "p_value": ["", "", ""], "p_stage_id": ["", "", ""],
        "p_text": ["", "", ""], "p_to_owner": ["", "", ""], "p_hours": ["", "", ""], "p_minutes": ["", "", ""], "p_seconds": ["", "", ""],
    }
    refused = client.post("/app/automation/", data=form)
    assert refused.status_code == 422 and "steps[1].params.days" in refused.get_data(as_text=True)
    form["p_days"] = ["", "1", ""]
    saved = client.post("/app/automation/", data=form)
    assert saved.status_code == 302
    with in_tenant(env):
        rule = AutomationRule.get()
    assert rule.status == "draft" and rule.conditions == {"all": [{"field": "source", "op": "eq", "value": "form"}]}
    assert [s["action"] for s in rule.steps] == ["assign_owner", "wait", "create_task"]
    assert rule.steps[0]["params"] == {"user_ids": [rep.id], "only_if_unassigned": True}
    admin("POST", "/leads", {"name": "Ada", "source": "form"}, status=201)
    admin("POST", "/leads", {"name": "Bob", "source": "manual"}, status=201)
    shown = client.get(f"/app/automation/{rule.id}?dry_run=1").get_data(as_text=True)
    assert "1 of the 2 most recent leads match" in shown and "Assign the owner" in shown
    client.post(f"/app/automation/{rule.id}/status", data={"csrf_token": csrf, "status": "active"})
    cy = admin("POST", "/leads", {"name": "Cy", "source": "form"}, status=201)
    drain(env)
    panel = client.get(f"/app/leads/{cy['id']}").get_data(as_text=True)  # the record's part of the run log
    assert re.search(r'class="automation-runs"><li><a href="/app/automation/\d+">Web leads</a>: waiting', panel)
    log = client.get(f"/app/automation/{rule.id}").get_data(as_text=True)
    assert re.search(r"waiting\s*<br><span class=\"muted small\">until", log) and "owner set to user" in log
    listed = client.get("/app/automation/").get_data(as_text=True)
    assert re.search(r"<td data-runs>1</td>", listed)
    # the edit form shows the saved rule, and saving again is version 2
    edit = client.get(f"/app/automation/{rule.id}/edit").get_data(as_text=True)
    assert 'value="Call {name}"' in edit
    form["p_days"] = ["", "2", ""]
    client.post(f"/app/automation/{rule.id}/edit", data=form)
    with in_tenant(env):
        assert AutomationRule.get().version == 2
    assert me.role == "manager"


def test_agents_see_no_automation(env: Any) -> None:
    client = env.client("acme")
    env.login(client, role="agent")
    assert client.get("/app/automation/").status_code == 403
    assert "/app/automation/" not in client.get("/app/").get_data(as_text=True)


def test_privacy_export_erase_and_merge_take_the_runs_along(env: Any, admin: Any) -> None:
    from tests.plugins.automation.conftest import rule_body

    admin("POST", "/automation/rules", rule_body(), status=201)
    ada = admin("POST", "/leads", {"name": "Ada", "source": "form", "email": "ada@example.com"}, status=201)
    dup = admin("POST", "/leads", {"name": "Ada too", "source": "form", "email": "ada2@example.com"}, status=201)
    drain(env)
    export = admin("GET", f"/leads/{ada['id']}/export")
    assert [r["rule"] for r in export["plugins"]["automation_runs"]] == ["Tag web leads"]
    admin("POST", f"/leads/{ada['id']}/merge", {"other_id": dup["id"]})
    assert len(admin("GET", f"/automation/runs?record_id={ada['id']}&entity=lead")["items"]) == 2
    admin("POST", f"/leads/{ada['id']}/erase", {})
    assert admin("GET", f"/automation/runs?record_id={ada['id']}&entity=lead")["items"] == []
