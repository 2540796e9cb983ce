"""Customer health: band edges, factors from constructed customers, history, signals and
alerts, the API and the pages."""

from __future__ import annotations

import pytest

from tests.plugins.insights.conftest import days_ago, in_tenant, make_deal

SETTINGS = {"health_window_days": 30, "engagement_target": 4, "satisfaction_field": "satisfaction", "satisfaction_max": 10}


@pytest.mark.parametrize(("score", "band"), [(0, "red"), (49, "red"), (50, "yellow"), (74, "yellow"), (75, "green"), (100, "green")])
def test_band_edges(score, band):
    from crm_plugins.insights.health import band as band_of

    assert band_of(score) == band


def test_scores_at_the_band_edges_from_factors():
    from crm_plugins.insights.health import assess, band

    now = days_ago(0)
    # recency 20 (12 days), engagement 12.5 (2 of 4), sentiment 12.5 (none): 45/80 -> 56
    score, factors = assess(days_ago(12), 2, None, None, now, SETTINGS)
    assert (score, band(score)) == (56, "yellow")
    assert factors[-1]["points"] is None and "count for 100" in factors[-1]["reason"]
    # 30 + 25 + 25 * (0.2 + 1) / 2 = 70, satisfaction 4/10 -> 8: 78
    assert assess(days_ago(1), 6, 0.2, 4, now, SETTINGS)[0] == 78
    # exactly at the edges: recency 20 + engagement 25*1/4 + sentiment 12.5 = 38.75, + satisfaction 5.5 -> 11 = 49.75 -> 50
    assert assess(days_ago(20), 1, 0.0, 5.5, now, SETTINGS)[0] == 50
    assert assess(days_ago(20), 1, 0.0, 5.0, now, SETTINGS)[0] == 49
    # recency 30 + engagement 12.5 + sentiment 12.5 = 55, + satisfaction 9.5 -> 19 = 74; 10 -> 20 = 75
    assert band(assess(days_ago(3), 2, 0.0, 9.5, now, SETTINGS)[0]) == "yellow"
    assert assess(days_ago(3), 2, 0.0, 9.5, now, SETTINGS)[0] == 74
    assert assess(days_ago(3), 2, 0.0, 10, now, SETTINGS)[0] == 75


def test_recompute_history_signals_and_alert(env, captured_signals):
    from crm_plugins.insights import health
    from crm_plugins.insights.models import CustomerHealth, HealthHistory, InsightAlert
    from crmcore.sdk import Activity, Company, Contact, create_record

    with in_tenant(env) as tenant:
        acme = create_record(Company, {"name": "Acme Buyer"})
        happy = create_record(Contact, {"first_name": "Hap", "last_name": "Py", "company": acme.id, "custom": {}})
        prospect = create_record(Contact, {"first_name": "Pro", "last_name": "Spect"})
        make_deal("Won", "Closed Won", contact=happy.id, company=acme.id)
        make_deal("Open", "Proposal", contact=prospect.id)
        for days in (1, 5, 9, 12):
            create_record(Activity, {"kind": "call", "subject": "Check-in", "contact": happy.id, "company": acme.id, "occurred_at": days_ago(days)})
        with captured_signals("customer_health_changed") as sent:
            assert health.recompute(tenant) == {"contact": 1, "company": 1}
        row = CustomerHealth.get(CustomerHealth.entity == "contact")
        assert (row.record_id, row.score, row.band) == (happy.id, 100 * 67 // 80 + 1, "green")  # 30 + 25 + 12.5 = 67.5/80 -> 84
        assert {d["entity"]: d["band"] for _n, _s, d in sent} == {"contact": "green", "company": "green"}
        assert HealthHistory.select().count() == 2
        # a bad quarter: activity stopped, low satisfaction
        Activity.delete().execute()
        Contact.update(custom={"satisfaction": 1}).where(Contact.id == happy.id).execute()
        with captured_signals("customer_health_changed", "insight_alert") as sent:
            health.recompute(tenant)
        row = CustomerHealth.get(CustomerHealth.entity == "contact")
        assert row.band == "red" and row.score == 15  # 0 + 0 + 12.5 + 2
        assert HealthHistory.select().count() == 2  # today's row replaced, not added
        assert InsightAlert.select().where(InsightAlert.kind == "health_declined").count() == 2
        assert {n for n, _s, _d in sent} == {"customer_health_changed", "insight_alert"}

    client = env.client("acme")
    headers = {"Authorization": f"Bearer {env.token('acme', 'viewer')}"}
    listed = client.get("/api/v1/insights/health?band=red", headers=headers).get_json()
    assert {(r["entity"], r["name"]) for r in listed} == {("contact", "Hap Py"), ("company", "Acme Buyer")}
    assert client.get(f"/api/v1/insights/health/contact/{happy.id}/history", headers=headers).get_json()[0]["band"] == "red"
    env.login(client, "acme", role="manager")
    page = client.get(f"/app/contacts/{happy.id}").get_data(as_text=True)
    assert 'data-band="red"' in page and "Satisfaction 1 of 10" in page
