"""The rule engine: the classic defaults as exact cases, components, weights, grades,
settings validation, and a constant number of queries per batch."""

from __future__ import annotations

import pytest

from crmcore.config import ConfigError

from .conftest import NOW, QueryCounter, days_ago, in_tenant, make_deal, make_lead


def scores(tenant, ids=None):
    from crm_plugins.scoring import engine

    return engine.compute(tenant, ids, now=NOW)


def test_classic_defaults_exact(env):
    with in_tenant(env) as tenant:
        plain = make_lead(name="Plain", status="new")  # status new: 10% -> 10
        big = make_lead(name="Big", status="new", last_contact_at=days_ago(2))
        make_deal(big, probability=40, value=60000)  # 40 + 10 (value > 50k) + 5 (contact 2 days ago)
        mid = make_lead(name="Mid", status="qualified", estimated_value=30000, last_contact_at=days_ago(8))  # 40 + 5, no contact bonus
        edge = make_lead(name="Edge", status="contacted", estimated_value=50000, last_contact_at=days_ago(7))  # 20 + 5 (not above 50k) + 5 (exactly 7 days)
        flat = make_lead(name="Flat", status="unqualified", estimated_value=25000)  # 0, 25k is not above 25k
        result = scores(tenant)
    assert result[plain.id].score == 10 and result[plain.id].grade == "D"
    assert result[big.id].score == 55 and result[big.id].grade == "C"
    assert result[mid.id].score == 45
    assert result[edge.id].score == 30
    assert result[flat.id].score == 0
    reasons = {f["name"]: f["reason"] for f in result[big.id].factors}
    assert reasons["probability"] == "Deal probability 40%"
    assert reasons["value"] == "Value 60,000 above 50,000"
    assert reasons["recent_contact"] == "Last contact 2 days ago (within 7)"
    assert [f["points"] for f in result[big.id].factors] == [40, 10, 5]
    assert result[big.id].components["base"] == 55


def test_fit_engagement_recency_components(env):
    from crmcore.entities import service
    from crmcore.entities.models import Activity, Company, Contact

    with in_tenant(env) as tenant:
        company = service.create(Company, {"name": "Initech", "size": "51-200", "industry": "Software"})
        contact = service.create(Contact, {"first_name": "Bill", "last_name": "L", "job_title": "VP of Sales", "company": company.id})
        lead = make_lead(name="Engaged", status="new", company=company.id, contact=contact.id, budget="10k", need="CRM")
        for i, (kind, direction, when) in enumerate((("call", "out", 1), ("email", "in", 5), ("chat", "in", 10), ("note", None, 40))):
            Activity.create(lead=lead.id, kind=kind, direction=direction, subject=f"a{i}", occurred_at=days_ago(when))
        r = scores(tenant)[lead.id]
    by_name = {f["name"]: f for f in r.factors}
    assert by_name["company_size"]["points"] == 4 and by_name["company_size"]["component"] == "fit"
    assert by_name["seniority"]["points"] == 6 and "(vp)" in by_name["seniority"]["reason"]
    assert by_name["bant"]["points"] == 5 and by_name["bant"]["reason"] == "2 of 4 BANT fields filled (budget, need)"
    # 3 activities within 30 days (the 40-day-old note is out), 2 inbound, 1 chat.
    assert by_name["activities"]["points"] == 3 and by_name["activities"]["reason"] == "3 activities in the last 30 days"
    assert by_name["inbound"]["points"] == 4
    assert by_name["chat"]["points"] == 1
    assert by_name["recency"]["points"] == 10 and by_name["recency"]["reason"] == "Last activity 1 day ago"
    assert r.components == {"base": 10, "fit": 15, "engagement": 8, "recency": 10, "other": 0}
    assert r.score == 43 and r.grade == "C"


def test_recency_decays_linearly(env):
    from crmcore.entities.models import Activity

    with in_tenant(env) as tenant:
        lead = make_lead(name="Fading", status="unqualified")
        Activity.create(lead=lead.id, kind="note", subject="x", occurred_at=days_ago(16.5))  # 16 whole days: 10 * (30-16)/27
        r = scores(tenant)[lead.id]
    assert r.components["recency"] == round(10 * 14 / 27, 2)


def test_weight_change_changes_score(env):
    with in_tenant(env) as tenant:
        lead = make_lead(name="Weighted", status="qualified", estimated_value=60000)
        assert scores(tenant)[lead.id].score == 50
    env.write_tenant("acme", plugins=["scoring"], settings={"scoring": {"weights": {"base": 0.5}, "base": {"value_high_points": 20}, "grades": {"A": 90, "B": 70, "C": 30}}})
    env.reload()
    with in_tenant(env) as tenant:
        r = scores(tenant)[lead.id]
    assert r.score == 30  # (40 + 20) * 0.5
    assert r.grade == "C"


def test_bad_config_names_the_key(crm_env):
    crm_env.write_tenant("acme", plugins=["scoring"], settings={"scoring": {"grades": {"A": 50, "B": 60}, "engagement": {"window_days": 0}, "nonsense": 1}})
    with pytest.raises(ConfigError) as exc:
        crm_env.create_app()
    text = str(exc.value)
    assert "settings.scoring.grades.B" in text and "must be lower than A" in text
    assert "settings.scoring.engagement.window_days" in text
    assert "settings.scoring.nonsense" in text


def test_query_count_is_constant(env):
    from crm_plugins.scoring import engine
    from crm_plugins.scoring.models import LeadScore

    counter = QueryCounter()
    with in_tenant(env) as tenant:
        for i in range(3):
            make_deal(make_lead(name=f"small-{i}", estimated_value=1000 * i), 30, 100)
        with counter.counting():
            engine.rescore(tenant)
        small = len(counter.statements)
        for i in range(40):
            make_deal(make_lead(name=f"big-{i}", last_contact_at=days_ago(i)), 30, 1000 * i)
        LeadScore.delete().execute()  # both runs score every lead for the first time
        counter.statements.clear()
        with counter.counting():
            assert engine.rescore(tenant) == 43
        large = len(counter.statements)
        counter.statements.clear()
        with counter.counting():
            engine.compute(tenant, None)
    assert small == large, counter.statements
    # saved settings, leads, deals, activities, the model: nothing per lead.
    assert len(counter.statements) == 5, counter.statements
