"""Rescoring in SQL (bulk.py) against the rules in Python (engine.compute): the same
scores, grades, components and — written out when read — the same reasons, for leads
that exercise every rule, with default and with changed settings; the factors of other
plugins and job-title seniority included."""

from __future__ import annotations

import random

import pytest

from crmcore import hookimpl

from .conftest import NOW, days_ago, in_tenant, make_deal, make_lead


class Portal:
    @hookimpl
    def crm_scoring_factors(self, tenant):
        from crm_plugins.scoring.contrib import ScoreFactor

        def compute(tenant, lead_ids):
            return {lid: (3.5 if lid % 2 else -2.0, f"Portal visits of lead {lid}") for lid in lead_ids if lid % 3}

        return [
            ScoreFactor(name="portal:visits", label="Portal visits", compute=compute, component="engagement"),
            ScoreFactor(name="portal:badge", label="Badge", compute=lambda tenant, ids: {i: (1, "Has a “badge”, \"quoted\"") for i in ids[:2]}, component="weird"),
        ]


def varied_leads(rng: random.Random) -> list[int]:
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    companies = [service.create(Company, {"name": f"Co {i}", "size": size, "industry": industry}) for i, (size, industry) in enumerate([("51-200", "Software"), ("1-10", None), ("1000+", "retail"), ("11-50", "Banking")])]
    contacts = [service.create(Contact, {"first_name": f"C{i}", "job_title": title}) for i, title in enumerate(["Chief Revenue Officer", "VP Sales", "intern", "Head of IT", ""])]
    ids = []
    for i in range(40):
        data = {
            "name": f"Lead {i}",
            "status": rng.choice(["new", "contacted", "qualified", "unqualified", "converted"]),
            "estimated_value": rng.choice([None, 1000, 25000, 25001, 50000, 60000.5, 123456.78]),
            "last_contact_at": rng.choice([None, days_ago(0.2), days_ago(3), days_ago(7.5), days_ago(30)]),
            "budget": rng.choice([None, "", "10k"]), "need": rng.choice([None, "CRM"]), "authority": rng.choice([None, "CEO"]), "timeline": rng.choice([None, "Q3"]),
        }
        if rng.random() < 0.6:
            data["company"] = rng.choice(companies).id
        if rng.random() < 0.5:
            data["contact"] = rng.choice(contacts).id
        lead = make_lead(**data)
        if rng.random() < 0.4:
            make_deal(lead, rng.choice([0, 10, 35, 80]), rng.choice([100, 30000, 75000]))
        for _ in range(rng.randrange(0, 14)):
            service.log_activity({"lead": lead.id, "kind": rng.choice(["call", "email", "chat"]), "direction": rng.choice(["in", "out"]), "subject": "x", "occurred_at": days_ago(rng.choice([0.1, 2, 5, 10, 20, 29, 40]))})
        ids.append(lead.id)
    return ids


SETTINGS = [
    {},
    {"weights": {"base": 0.5, "fit": 1.3, "engagement": 2, "recency": 0.7, "other": 3}, "grades": {"A": 70, "B": 45, "C": 20},
     "base": {"probability_weight": 0.8, "value_high": 60000, "value_mid": 20000, "recent_contact_days": 3, "status_probability": {"new": 5, "contacted": 33}},
     "fit": {"industry": {"software": 4, "Retail": -3}, "bant_points": 1.5, "company_size": {"51-200": 5, "1000+": 9}},
     "engagement": {"window_days": 14, "activity_points": 1.5, "activity_cap": 6, "inbound_points": -1, "inbound_cap": 3, "chat_points": 0},
     "recency": {"points": 7, "full_days": 1, "zero_days": 21}},
    {"base": {"use_probability": False}, "recency": {"points": 0}, "fit": {"seniority": {}, "bant_points": 0}, "engagement": {"activity_points": 0}},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "changed", "rules-off"])
def test_sql_rescore_equals_python_rules(env, register_plugin, settings):
    from crm_plugins.scoring import bulk, engine
    from crm_plugins.scoring.models import LeadScore

    register_plugin(Portal(), name="portal")
    env.write_tenant("acme", name="Acme Ltd", plugins=["scoring"], settings={"scoring": {"debounce_seconds": 0, **settings}})
    env.reload()
    with in_tenant(env) as tenant:
        ids = varied_leads(random.Random(7))
        expected = engine.compute(tenant, None, now=NOW)
        assert engine.rescore(tenant, now=NOW) == len(ids)
        stored = {row.lead_id: row for row in LeadScore.select()}
        # a batch of ids takes the same path
        LeadScore.delete().where(LeadScore.lead.in_(ids[:5])).execute()
        assert engine.rescore(tenant, ids[:5], now=NOW) == 5
        stored.update({row.lead_id: row for row in LeadScore.select().where(LeadScore.lead.in_(ids[:5]))})
    assert set(stored) == set(ids)
    kinds = set()
    for lid in ids:
        want, row = expected[lid], stored[lid]
        assert (row.score, row.rule_score, row.grade, row.probability) == (want.score, want.rule_score, want.grade, None), __import__("json").dumps([lid, row.components, want.components, row.factors, want.factors])
        assert bulk.explain(row.factors) == want.factors, lid
        assert row.components == {} and bulk.components_of(row.components, want.factors) == want.components, lid
        assert all(isinstance(f, list) for f in row.factors)  # compact: no reasons stored
        kinds.update(f["name"] for f in want.factors)
    if settings is SETTINGS[2]:  # rules switched off leave their factors out
        assert kinds.isdisjoint({"probability", "recency", "seniority", "bant", "activities"}) and {"value", "inbound", "chat"} <= kinds
        return
    # every rule was exercised
    assert {"probability", "value", "recent_contact", "company_size", "seniority", "bant", "activities", "inbound", "recency", "portal:visits", "portal:badge"} <= kinds
    if settings:
        assert "industry" in kinds and "chat" not in kinds
    else:
        assert "chat" in kinds


def test_sql_rescore_writes_only_changes(env):
    from crm_plugins.scoring import engine
    from crm_plugins.scoring.models import LeadScore, ScoreHistory
    from crmcore import signals

    seen = []

    def receiver(sender, **data):
        seen.append(data)

    signals.signal("lead_score_changed").connect(receiver)
    try:
        with in_tenant(env) as tenant:
            a = make_lead(name="A", status="qualified", estimated_value=60000)  # 50
            b = make_lead(name="B", status="new")  # 10
            engine.rescore(tenant, now=NOW)
            assert sorted((d["lead_id"], d["old"], d["new"], d["grade"]) for d in seen) == [(a.id, None, 50, "C"), (b.id, None, 10, "D")]
            first = {r.lead_id: (r.score, r.computed_at) for r in LeadScore.select()}
            seen.clear()
            later = days_ago(-0.01)
            engine.rescore(tenant, now=later)  # nothing changed: no history, no signal, computed_at moves
            assert seen == [] and ScoreHistory.select().count() == 2
            assert {r.lead_id: r.computed_at for r in LeadScore.select()} == {lid: later for lid in first}
            from crmcore.entities import service

            service.update(b, {"status": "qualified"})
            engine.rescore(tenant, now=later)
            assert [(d["lead_id"], d["old"], d["new"]) for d in seen] == [(b.id, 10, 40)]
            assert ScoreHistory.select().where(ScoreHistory.lead == b.id).count() == 2
    finally:
        signals.signal("lead_score_changed").disconnect(receiver)


def test_sql_rescore_with_a_trained_model_equals_python(env, register_plugin):
    """With a model: probability, blended score, grade and top features as engine.compute."""
    from crm_plugins.scoring import bulk, engine, predictive
    from crm_plugins.scoring.models import LeadScore

    from .test_predictive import history

    register_plugin(Portal(), name="portal")
    with in_tenant(env) as tenant:
        history(80, random.Random(3))
        assert predictive.train(tenant).params is not None
        ids = varied_leads(random.Random(11))
        expected = engine.compute(tenant, None, now=NOW)
        engine.rescore(tenant, now=NOW)
        stored = {row.lead_id: row for row in LeadScore.select()}
    assert len(stored) == len(expected) == len(ids) + 80
    with_top = 0
    for lid, want in expected.items():
        row = stored[lid]
        assert (row.score, row.rule_score, row.grade) == (want.score, want.rule_score, want.grade), lid
        assert row.probability == pytest.approx(want.probability, abs=1e-6), lid
        assert bulk.explain(row.factors) == want.factors, lid
        with in_tenant(env):
            top = bulk.top_features_of(row.top_features)
        assert [t["feature"] for t in top] == [t["feature"] for t in want.top_features], lid
        assert [t["contribution"] for t in top] == pytest.approx([t["contribution"] for t in want.top_features], abs=1e-3), lid
        with_top += bool(top)
    assert with_top > len(ids) // 2
    # the API shows them
    client = env.client("acme")
    body = client.get(f"/api/v1/scoring/leads/{ids[0]}", headers={"Authorization": f"Bearer {env.token('acme', 'viewer')}"}).get_json()
    assert body["probability"] == pytest.approx(expected[ids[0]].probability, abs=1e-6)
    assert [t["feature"] for t in body["top_features"]] == [t["feature"] for t in expected[ids[0]].top_features]
