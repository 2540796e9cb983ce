"""Next best actions: ranked and explained for deals and leads; create task, done and
dismiss recorded and shaping what comes next; the API."""

from __future__ import annotations

from tests.plugins.insights.conftest import days_ago, in_tenant, make_deal


def test_deal_and_lead_actions_ranked_and_decided(env):
    from crm_plugins.insights import actions, risk
    from crmcore.sdk import Deal, Lead, Task, create_record

    with in_tenant(env) as tenant:
        deal = make_deal("Quiet deal", "Proposal", priority="high")
        Deal.update(stage_entered_at=days_ago(30), created_at=days_ago(30)).where(Deal.id == deal.id).execute()
        fresh = create_record(Lead, {"name": "Fresh", "priority": "high"})
        Lead.update(created_at=days_ago(2)).where(Lead.id == fresh.id).execute()
        waiting = create_record(Lead, {"name": "Waiting", "status": "contacted"})
        Lead.update(last_contact_at=days_ago(9)).where(Lead.id == waiting.id).execute()
        create_record(Lead, {"name": "Just in"})  # not yet due for a first contact
        risk.recompute(tenant)

        found = actions.for_record("deal", deal.id)
        assert [a.key for a in found] == ["call_to_unblock", "send_follow_up", "add_stakeholder", "plan_next_step"]
        assert found[0].reason == "In Proposal for 30 days (expected 21)" and found[0].rank == 4  # 2 points + high priority
        due = actions.due()
        assert [(a.entity, a.key) for a in due][:2] == [("lead", "first_contact"), ("deal", "call_to_unblock")]
        assert ("lead", waiting.id, "send_follow_up") in {(a.entity, a.record_id, a.key) for a in due}
        assert "No contact for 9 days" in [a.reason for a in due]

        actions.decide("deal", deal.id, "call_to_unblock", "dismissed")
        decision = actions.decide("deal", deal.id, "plan_next_step", "task", title="Plan the next step")
        task = Task.get_by_id(decision.task_id)
        assert (task.title, task.deal_id, task.status) == ("Plan the next step", deal.id, "open")
        actions.decide("lead", fresh.id, "first_contact", "done")
        risk.recompute(tenant)  # the new task removes the "no next task" factor too
        assert [a.key for a in actions.for_record("deal", deal.id)] == ["send_follow_up", "add_stakeholder"]
        assert actions.for_record("lead", fresh.id) == []


def test_actions_api(env):
    from crm_plugins.insights import risk
    from crmcore.sdk import Lead, create_record

    with in_tenant(env) as tenant:
        lead = create_record(Lead, {"name": "Old"})
        Lead.update(created_at=days_ago(3)).where(Lead.id == lead.id).execute()
        risk.recompute(tenant)
    client = env.client("acme")
    agent = {"Authorization": f"Bearer {env.token('acme', 'agent')}"}
    viewer = {"Authorization": f"Bearer {env.token('acme', 'viewer')}"}
    listed = client.get(f"/api/v1/insights/actions?entity=lead&record_id={lead.id}", headers=viewer).get_json()
    assert [a["key"] for a in listed] == ["first_contact"]
    body = {"entity": "lead", "record_id": lead.id, "action": "first_contact", "decision": "task", "title": "Call Old"}
    assert client.post("/api/v1/insights/actions", json=body, headers=viewer).status_code == 403
    made = client.post("/api/v1/insights/actions", json=body, headers=agent)
    assert made.status_code == 201 and made.get_json()["task_id"]
    assert client.get(f"/api/v1/insights/actions?entity=lead&record_id={lead.id}", headers=viewer).get_json() == []
    bad = client.post("/api/v1/insights/actions", json={**body, "decision": "maybe"}, headers=agent)
    assert bad.status_code == 422 and "decision" in bad.get_json()["errors"]["json"]
    assert client.post("/api/v1/insights/actions", json={**body, "record_id": 99999}, headers=agent).status_code == 404
