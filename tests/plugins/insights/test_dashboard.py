"""The insights dashboard, the dashboard widget, jobs and privacy (export, erase, merge)."""

from __future__ import annotations

from crmcore.jobs import Scheduler
from tests.plugins.insights.conftest import days_ago, in_tenant, make_deal


def _story(env):
    from crm_plugins.insights import health, interactions, risk
    from crmcore.sdk import Activity, Contact, Deal, Lead, create_record

    with in_tenant(env) as tenant:
        ann = create_record(Contact, {"first_name": "Ann", "last_name": "Lee", "custom": {"satisfaction": 2}})
        lead = create_record(Lead, {"name": "Leo Lead", "contact": ann.id})
        Lead.update(created_at=days_ago(3)).where(Lead.id == lead.id).execute()
        make_deal("Renewal", "Closed Won", contact=ann.id)
        stuck = make_deal("Stuck deal", "Negotiation", contact=ann.id)
        Deal.update(stage_entered_at=days_ago(40), created_at=days_ago(40)).where(Deal.id == stuck.id).execute()
        create_record(Activity, {"kind": "email", "subject": "Re: contract", "content": "We are unhappy and frustrated with the delays.", "deal": stuck.id, "contact": ann.id, "lead": lead.id, "occurred_at": days_ago(40)})
        interactions.backfill(tenant, inline=True)
        risk.recompute(tenant)
        health.recompute(tenant)
        return ann.id, lead.id, stuck.id


def test_dashboard_shows_risks_health_and_actions(env):
    ann, lead, stuck = _story(env)
    client = env.client("acme")
    env.login(client, "acme", role="manager")
    page = client.get("/app/insights/").get_data(as_text=True)
    assert "Stuck deal" in page and "In Negotiation for 40 days (expected 14)" in page
    assert 'data-band="red">red: 1' in page and "Ann Lee" in page
    assert "Make the first contact" in page and "Leo Lead" in page
    home = client.get("/app/").get_data(as_text=True)
    assert "deals at high risk" in home and 'href="/app/insights/"' in home
    # a decision from the page's button (a form post with the CSRF token)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post("/app/insights/actions", data={"csrf_token": token, "entity": "lead", "record_id": lead, "action": "first_contact", "decision": "dismissed", "next": "/app/insights/"})
    assert answer.status_code == 302
    assert "Make the first contact" not in client.get("/app/insights/").get_data(as_text=True)
    assert client.post("/app/insights/actions", data={"csrf_token": token, "entity": "lead", "record_id": "x", "action": "a", "decision": "done"}).status_code == 422


def test_jobs_run_only_for_tenants_with_the_plugin(env):
    from crm_plugins.insights.models import InsightAlert
    from crmcore.sdk import Lead, create_record

    with in_tenant(env):
        hot = create_record(Lead, {"name": "Hot one", "priority": "high"})
        create_record(Lead, {"name": "Hot but new", "priority": "high"})
        create_record(Lead, {"name": "Old but low", "priority": "low"})
        Lead.update(created_at=days_ago(2)).where(Lead.name != "Hot but new").execute()
    with in_tenant(env, "beta"):
        create_record(Lead, {"name": "Beta hot", "priority": "high", "created_at": days_ago(2)})
    assert Scheduler(env.crm, holder="test").run_job("insights:risk") == ["acme"]
    assert Scheduler(env.crm, holder="test").run_job("insights:risk") == ["acme"]  # once per lead
    with in_tenant(env):
        assert [(a.kind, a.record_id) for a in InsightAlert.select()] == [("lead_not_contacted", hot.id)]
    assert Scheduler(env.crm, holder="test").run_job("insights:health") == ["acme"]


def test_privacy_export_erase_and_merge(env):
    from crm_plugins.insights import privacy
    from crm_plugins.insights.models import CustomerHealth, InteractionSentiment
    from crmcore.sdk import Contact, create_record

    ann, lead, stuck = _story(env)
    with in_tenant(env):
        data = privacy.export([lead], [ann])[0].data
        assert len(data["sentiments"]) == 1 and data["contact_health"][0]["band"] == "red"
        other = create_record(Contact, {"first_name": "Ann", "last_name": "Dup"})
        assert privacy.merge("contact", other.id, ann)["insights_sentiment"] == 1
        assert InteractionSentiment.get().contact_id == other.id
        assert not CustomerHealth.select().where(CustomerHealth.record_id == ann).exists()
        erased = privacy.erase([lead], [other.id])
        assert erased["insights_sentiment"] == 1 and InteractionSentiment.select().count() == 0


def test_cli_backfill_and_recompute(env):
    from tests.core.test_cli import invoke, ok

    with in_tenant(env) as tenant:
        from crmcore.sdk import Activity

        Activity.insert_many([{"tenant": tenant.id, "kind": "call", "subject": "Call", "content": "Lovely chat, they are delighted."}] * 2).execute()
    assert ok(invoke(env.config_dir, "insights", "backfill", "acme", "--now")).strip() == "2 activity scored, 0 note scored"
    assert "assessed" in ok(invoke(env.config_dir, "insights", "recompute", "acme"))
    refused = invoke(env.config_dir, "insights", "backfill", "beta")
    assert refused.exit_code != 0 and "off for beta" in refused.output
