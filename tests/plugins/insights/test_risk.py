"""Deal risk: each factor on constructed deals, levels and remedies, constant queries,
the deal page, the list column, the kanban badge, the API, and a tenant without it."""

from __future__ import annotations

import datetime as dt

from tests.plugins.insights.conftest import NOW, days_ago, in_tenant, make_deal, stage


def _deals(env):
    from crm_plugins.insights.models import InteractionSentiment
    from crmcore.sdk import Activity, Contact, Deal, Task, create_record

    with in_tenant(env) as tenant:
        stale = make_deal("Stale one", "Proposal", expected_close_date=(NOW - dt.timedelta(days=3)).date())
        Deal.update(stage_entered_at=days_ago(30), created_at=days_ago(40)).where(Deal.id == stale.id).execute()
        ann, bob = create_record(Contact, {"first_name": "Ann", "last_name": "A"}), create_record(Contact, {"first_name": "Bob", "last_name": "B"})
        healthy = make_deal("Healthy one", "Qualified", contact=ann.id, expected_close_date=(NOW + dt.timedelta(days=20)).date())
        create_record(Activity, {"kind": "call", "subject": "Call", "deal": healthy.id, "contact": bob.id, "occurred_at": days_ago(1)})
        create_record(Task, {"title": "Send proposal", "deal": healthy.id, "due_at": NOW + dt.timedelta(days=2)})
        sour = make_deal("Sour one", "Qualified", contact=ann.id)
        create_record(Activity, {"kind": "call", "subject": "Call", "deal": sour.id, "contact": bob.id, "occurred_at": days_ago(2)})
        create_record(Task, {"title": "Call back", "deal": sour.id})
        InteractionSentiment.insert_many([
            {"tenant": tenant.id, "entity": "note", "record_id": 900, "deal_id": sour.id, "score": 0.6, "status": "scored", "occurred_at": days_ago(45)},
            {"tenant": tenant.id, "entity": "note", "record_id": 901, "deal_id": sour.id, "score": -0.5, "status": "scored", "occurred_at": days_ago(3)},
        ]).execute()
        won = make_deal("Won one", "Closed Won")
        return stale.id, healthy.id, sour.id, won.id


def test_factors_levels_and_remedies(env, captured_signals):
    from crm_plugins.insights import risk
    from crm_plugins.insights.models import DealRisk

    stale, healthy, sour, won = _deals(env)
    with in_tenant(env) as tenant:
        with captured_signals("deal_risk_changed") as sent:
            result = risk.recompute(tenant)
        assert result["assessed"] == 3  # the won deal is not open
        rows = {r.deal_id: r for r in DealRisk.select()}
        assert set(rows) == {stale, healthy, sour}
        keys = {d: [f["key"] for f in r.factors] for d, r in rows.items()}
        assert keys[stale] == ["close_date_passed", "stale_in_stage", "no_activity", "single_contact", "no_next_task"]
        assert rows[stale].level == "high" and rows[stale].points == 9
        assert "In Proposal for 30 days (expected 21)" in [f["reason"] for f in rows[stale].factors]
        assert keys[healthy] == [] and rows[healthy].level == "low"
        assert keys[sour] == ["negative_sentiment"] and rows[sour].level == "medium"
        assert rows[sour].factors[0]["reason"] == "Recent sentiment -0.50 (was +0.60)"
        tips = risk.explain(rows[sour].points, rows[sour].factors, {"high_points": 5, "medium_points": 2})
        assert tips == ["Call to address the concerns raised (risk medium -> low)"]
        assert sent == []  # the tenant's first assessment announces no deal (no signal storm)
        DealRisk.delete().where(DealRisk.deal.in_([stale, sour])).execute()
        with captured_signals("deal_risk_changed") as sent:
            risk.recompute(tenant)  # deals assessed for the first time later are announced
        assert {data["deal_id"]: data["level"] for _n, _s, data in sent} == {stale: "high", sour: "medium"}


def test_rising_risk_raises_an_alert_and_closing_drops_the_row(env, captured_signals):
    from crm_plugins.insights import risk
    from crm_plugins.insights.models import DealRisk, InsightAlert
    from crmcore import auth
    from crmcore.notifications import Notification
    from crmcore.sdk import Deal, Task, change_deal

    stale, healthy, sour, won = _deals(env)
    with in_tenant(env) as tenant:
        manager = auth.create_user(tenant, "manager@acme.test", "secret-pw", role="manager")
        auth.create_user(tenant, "agent@acme.test", "secret-pw", role="agent")
        risk.recompute(tenant)
        assert InsightAlert.select().count() == 0  # first assessment: no alert storm
        Task.delete().where(Task.deal == healthy).execute()
        Deal.update(stage_entered_at=days_ago(60), expected_close_date=days_ago(2).date()).where(Deal.id == healthy).execute()
        with captured_signals("insight_alert", "deal_risk_changed") as sent:
            risk.recompute(tenant)
        alert = InsightAlert.get()
        assert (alert.kind, alert.record_id, alert.title) == ("deal_at_risk", healthy, "Deal at high risk")
        # handed to the core's notifications: the deal has no owner, so its managers
        notified = [(n.user_id, n.kind, n.title, n.link) for n in Notification.select()]
        assert notified == [(manager.id, "insights", "Deal at high risk", f"/app/deals/{healthy}")]
        assert ("deal_risk_changed", "low") in {(n, d.get("previous")) for n, _s, d in sent}
        change_deal(Deal.get_by_id(stale), {"stage_id": stage("Closed Lost").id, "lost_reason": "price"})
        risk.recompute(tenant)
        assert not DealRisk.select().where(DealRisk.deal == stale).exists()


def test_constant_number_of_queries(env):
    from crm_plugins.insights import risk
    from tests.plugins.scoring.conftest import QueryCounter

    _deals(env)
    with in_tenant(env) as tenant:
        with QueryCounter().counting() as few:
            risk.recompute(tenant)
        for i in range(40):
            make_deal(f"More {i}", "Lead")
        with QueryCounter().counting() as many:
            risk.recompute(tenant)
    reads = lambda c: [s for s in c.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads(few)) == len(reads(many)) <= 3
    assert len(many.statements) <= 10


def test_pages_column_badge_api_and_disabled_tenant(env):
    from crm_plugins.insights import risk
    from crmcore import sdk

    stale, healthy, sour, won = _deals(env)
    with in_tenant(env) as tenant:
        risk.recompute(tenant)
        badges = dict(sdk.call_hook(tenant, "crm_kanban_card_badges", tenant=tenant, entity="deal", record_ids=[stale, healthy, sour]))["insights"]
        assert {(b.record_id, b.label, b.tone) for b in badges} == {(stale, "high risk", "bad"), (sour, "medium risk", "warn")}
    client = env.client("acme")
    env.login(client, "acme", role="manager")
    page = client.get(f"/app/deals/{stale}").get_data(as_text=True)
    assert 'data-risk="high"' in page and "In Proposal for 30 days" in page and "What would lower it" in page
    listing = client.get("/app/deals/").get_data(as_text=True)
    assert "insights-risk-high" in listing and "insights-risk-medium" in listing
    filtered = client.get("/app/deals/?insights:risk=high").get_data(as_text=True)
    assert "Stale one" in filtered and "Sour one" not in filtered
    headers = {"Authorization": f"Bearer {env.token('acme', 'viewer')}"}
    body = client.get("/api/v1/insights/risks", headers=headers).get_json()
    assert [r["deal_id"] for r in body] == [stale, sour, healthy]
    assert body[0]["lower_it"][0].startswith("Agree a new close date")
    assert client.get(f"/api/v1/insights/deals/{won}/risk", headers=headers).status_code == 404
    assert "Closed: no risk to assess." in client.get(f"/app/deals/{won}").get_data(as_text=True)
    assert client.get("/api/v1/insights/risks?level=extreme", headers=headers).status_code == 422
    assert "/api/v1/insights/risks" in client.get("/api/v1/openapi.json").get_json()["paths"]

    beta = env.client("beta")
    beta_headers = {"Authorization": f"Bearer {env.token('beta', 'admin')}"}
    assert beta.get("/api/v1/insights/risks", headers=beta_headers).status_code == 404
    env.login(beta, "beta", role="admin")
    assert beta.get("/app/insights/").status_code == 404
    assert "Insights" not in beta.get("/app/").get_data(as_text=True)
    assert "insights-risk" not in beta.get("/app/deals/").get_data(as_text=True)


def test_sentiment_factor_edges():
    """Negative now, or fallen by 0.3 to neutral; a cooler but positive mood is no risk."""
    from crm_plugins.insights.risk import assess

    settings = {"default_stage_days": 21, "no_activity_days": 14, "negative_sentiment": -0.05, "risk_points": {}}
    row = lambda recent, previous: (1, 0, None, None, "Lead", 14, True, 0, 2, 1, recent, previous, 1000, None, 0)
    keys = lambda recent, previous: [f["key"] for f in assess(row(recent, previous), settings)[1]]
    assert keys(-0.05, None) == ["negative_sentiment"]
    assert keys(-0.04, None) == []
    assert keys(0.0, 0.4) == ["negative_sentiment"]  # fell to neutral
    assert keys(0.4, 0.75) == []  # cooled, still positive
    assert keys(0.0, 0.25) == []  # a small dip
    assert keys(None, 0.9) == []  # nothing recent: no verdict


def test_value_lowered_and_close_date_pushed_from_the_audit_log(env):
    """The deal's change history (the core's audit log): a value below one it had in the
    window, and a close date moved later ``close_date_pushes`` times."""
    import json

    from crm_plugins.insights import risk
    from crm_plugins.insights.models import DealRisk
    from crmcore import sdk
    from crmcore.sdk import AuditEntry, Deal, update_record

    with in_tenant(env) as tenant:
        day = lambda n: (NOW + dt.timedelta(days=n)).date()
        shrunk = make_deal("Shrunk", "Qualified", value=5000, expected_close_date=day(20))
        update_record(Deal.get_by_id(shrunk.id), {"value": 8000})
        update_record(Deal.get_by_id(shrunk.id), {"value": 3000})
        grown = make_deal("Grown", "Qualified", value=5000, expected_close_date=day(20))
        update_record(Deal.get_by_id(grown.id), {"value": 2000})
        update_record(Deal.get_by_id(grown.id), {"value": 9000})  # back above every earlier value
        slipping = make_deal("Slipping", "Qualified", expected_close_date=day(5))
        update_record(Deal.get_by_id(slipping.id), {"expected_close_date": day(15)})
        update_record(Deal.get_by_id(slipping.id), {"expected_close_date": day(10)})  # earlier: not a push
        update_record(Deal.get_by_id(slipping.id), {"expected_close_date": day(40)})
        once = make_deal("Moved once", "Qualified", expected_close_date=day(5))
        update_record(Deal.get_by_id(once.id), {"expected_close_date": day(25)})
        old = make_deal("Old history", "Qualified", value=5000, expected_close_date=day(5))
        update_record(Deal.get_by_id(old.id), {"value": 1000})
        AuditEntry.update(at=days_ago(120)).where(AuditEntry.entity == "deal", AuditEntry.entity_id == old.id).execute()
        risk.recompute(tenant)
        factors = {r.deal_id: {f["key"]: f for f in r.factors} for r in DealRisk.select()}
        assert factors[shrunk.id]["value_lowered"]["reason"] == "Value lowered from 8,000 to 3,000 in the last 90 days"
        assert factors[shrunk.id]["value_lowered"]["remedy"].startswith("Ask what changed")
        assert "value_lowered" not in factors[grown.id]
        assert factors[slipping.id]["close_date_pushed"]["reason"] == "Close date pushed back 2 times in the last 90 days"
        assert factors[slipping.id]["close_date_pushed"]["points"] == 2
        assert "close_date_pushed" not in factors[once.id]  # once is not "repeatedly"
        assert "value_lowered" not in factors[old.id]  # outside history_window_days
        # the factors are written as JSONText writes them (so "unchanged" compares equal)
        raw = dict(sdk.database.execute_sql("SELECT deal_id, factors FROM insights_deal_risk").fetchall())
        assert raw and all(raw[r.deal_id] == json.dumps(r.factors, default=str, sort_keys=True) for r in DealRisk.select())
        assert risk.recompute(tenant)["changed"] == 0
        from crm_plugins.insights import actions

        assert "requalify" in [a.key for a in actions.for_record("deal", shrunk.id)]


def test_risk_points_setting_refuses_unknown_factors(crm_env):
    import pytest

    from crmcore.config import ConfigError

    crm_env.write_tenant("acme", plugins=["insights"], settings={"insights": {"risk_points": {"no_activity": 5, "moon_phase": 1}}})
    with pytest.raises(ConfigError, match="risk_points"):
        crm_env.create_app()
