"""Schedules (cron triggers in the tenant's time zone, each firing claimed once per
record) and conditions on related records, custom fields and the score, evaluated in SQL
for sweeps with the same meaning as in Python."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from marshmallow import ValidationError

from crm_plugins.automation import (
    AutomationSettings,
    conditions,
    field_paths,
    schedules,
    sql_conditions,
    time_triggers,
)
from crm_plugins.automation.models import AutomationFired, AutomationRule, AutomationRun
from crmcore.sdk import Company, CustomField, Deal, Lead, create_record, tag_names, utcnow
from tests.plugins.automation.conftest import drain, in_tenant, rule_body


def test_phrases_and_crontabs_fire_in_the_tenants_time_zone() -> None:
    assert schedules.to_crontab("Every weekday at 9:00") == "0 9 * * mon-fri"
    assert schedules.to_crontab("every sunday 18:30") == "30 18 * * sun"
    assert schedules.to_crontab("every hour") == "0 * * * *"
    thursday_noon_utc = dt.datetime(2026, 12, 3, 15, 0)  # 10:00 in New York (EST)
    day_before = thursday_noon_utc - dt.timedelta(hours=24)
    assert schedules.latest_occurrence("every weekday 9:00", "America/New_York", day_before, thursday_noon_utc) == dt.datetime(2026, 12, 3, 14, 0)
    summer = dt.datetime(2026, 7, 2, 15, 0)  # EDT: nine is 13:00 UTC
    assert schedules.latest_occurrence("0 9 * * mon-fri", "America/New_York", summer - dt.timedelta(hours=24), summer) == dt.datetime(2026, 7, 2, 13, 0)
    saturday = dt.datetime(2026, 12, 5, 15, 0)
    assert schedules.latest_occurrence("every weekday 9:00", "America/New_York", saturday - dt.timedelta(hours=24), saturday) is None
    # the newest of many firings, even every minute over a whole day
    assert schedules.latest_occurrence("* * * * *", "UTC", day_before, thursday_noon_utc) == thursday_noon_utc
    with pytest.raises(ValidationError):
        AutomationSettings().load({"timezone": "Mars/Olympus"})
    assert AutomationSettings().load({})["timezone"] == "UTC"


def test_bad_schedule_is_a_422_naming_the_option(admin: Any) -> None:
    for bad in ("every fortnight 9:00", "61 9 * * *", "0 9 * *", "every day 25:00", ""):
        body = rule_body(trigger={"type": "schedule", "options": {"cron": bad}}, conditions={})
        errors = admin("POST", "/automation/rules", body, status=422)
        assert "trigger.options.cron" in str(errors), bad


def test_schedule_fires_once_per_firing_for_every_matching_record(admin: Any, env: Any) -> None:
    rule = admin("POST", "/automation/rules", rule_body(
        name="Nudge new leads", trigger={"type": "schedule", "options": {"cron": "* * * * *"}},
        conditions={"all": [{"field": "status", "op": "eq", "value": "new"}]},
        steps=[{"action": "add_tag", "params": {"tag": "nudged"}}]), status=201)
    with in_tenant(env) as tenant:
        # saved an hour ago: the sweep finds this minute's firing
        AutomationRule.update(updated_at=utcnow() - dt.timedelta(hours=1)).where(AutomationRule.id == rule["id"]).execute()
        fresh = [create_record(Lead, {"name": f"New {i}"}) for i in range(3)]
        create_record(Lead, {"name": "Won", "status": "qualified"})
        # another process claimed this firing for one record already: it is not started twice
        firing = schedules.latest_occurrence("* * * * *", "UTC", utcnow() - dt.timedelta(hours=1), utcnow())
        AutomationFired.create(rule=rule["id"], record_id=fresh[0].id, occurrence=firing.isoformat(sep=" "))
        started = time_triggers.sweep(tenant)
        again = time_triggers.sweep(tenant)
        ran_for = sorted(r.record_id for r in AutomationRun.select())
    # a new minute may have begun between the claim above and the sweep: then all three fire for it
    assert (started, ran_for) in ((2, [fresh[1].id, fresh[2].id]), (3, sorted(f.id for f in fresh)))
    assert again == 0
    drain(env)
    assert "nudged" in admin("GET", f"/leads/{fresh[1].id}")["tags"]


def test_time_sweep_conditions_on_related_records_custom_fields_and_score(admin: Any, admin_user: Any, env: Any) -> None:
    with in_tenant(env):
        CustomField.create(entity="deal", key="seats", label="Seats", kind="number")
    rule = admin("POST", "/automation/rules", rule_body(
        name="Big SaaS deals", entity="deal", trigger={"type": "schedule", "options": {"cron": "every hour"}},
        conditions={"all": [{"field": "company.industry", "op": "eq", "value": "SaaS"}, {"field": "custom.seats", "op": "gte", "value": "10"},
                            {"field": "owner.email", "op": "is_not_empty"}]},
        steps=[{"action": "add_tag", "params": {"tag": "big"}}]), status=201)
    assert "conditions.all[0].field" in str(admin("POST", "/automation/rules", rule_body(conditions={"all": [{"field": "company.nope", "op": "eq", "value": 1}]}), status=422))
    assert "conditions.all[0].field" in str(admin("POST", "/automation/rules", rule_body(conditions={"all": [{"field": "custom.nope", "op": "eq", "value": 1}]}), status=422))
    # the score is offered where the scoring plugin is on, not here
    assert "conditions.all[0].field" in str(admin("POST", "/automation/rules", rule_body(conditions={"all": [{"field": "score", "op": "gt", "value": 80}]}), status=422))
    offered = admin("GET", "/automation/catalogue")["fields"]["deal"]
    assert {"company.industry", "owner.email", "stage.name", "custom.seats", "tags"} <= set(offered) and "score" not in offered
    saas = admin("POST", "/companies", {"name": "Cloudy", "industry": "SaaS"}, status=201)
    shop = admin("POST", "/companies", {"name": "Shop", "industry": "Retail"}, status=201)
    big = admin("POST", "/deals", {"title": "Big", "company_id": saas["id"], "custom": {"seats": 12}}, status=201)
    admin("POST", "/deals", {"title": "Small", "company_id": saas["id"], "custom": {"seats": 3}}, status=201)
    admin("POST", "/deals", {"title": "Retail", "company_id": shop["id"], "custom": {"seats": 50}}, status=201)
    unowned = admin("POST", "/deals", {"title": "Unowned", "company_id": saas["id"], "custom": {"seats": 50}}, status=201)
    with in_tenant(env) as tenant:
        Deal.update(owner=admin_user.id).execute()
        Deal.update(owner=None).where(Deal.id == unowned["id"]).execute()
        AutomationRule.update(updated_at=utcnow() - dt.timedelta(hours=2)).where(AutomationRule.id == rule["id"]).execute()
        assert time_triggers.sweep(tenant) == 1
        assert [r.record_id for r in AutomationRun.select()] == [big["id"]]
    drain(env)
    assert "big" in admin("GET", f"/deals/{big['id']}")["tags"]


CASES: list[dict[str, Any]] = [
    {},
    {"all": [{"field": "company.industry", "op": "eq", "value": "SaaS"}]},
    {"all": [{"field": "company.industry", "op": "ne", "value": "SaaS"}]},
    {"not": {"field": "company.annual_revenue", "op": "gt", "value": "1000"}},
    {"any": [{"field": "custom.seats", "op": "gte", "value": 10}, {"field": "tags", "op": "contains", "value": "vip"}]},
    {"all": [{"field": "custom.seats", "op": "is_empty"}]},
    {"all": [{"field": "custom.plan", "op": "in", "value": ["gold", "silver"]}]},
    {"all": [{"field": "custom.plan", "op": "not_in", "value": ["gold"]}]},
    {"all": [{"field": "title", "op": "contains", "value": "BIG"}, {"field": "value", "op": "lt", "value": 5000}]},
    {"all": [{"field": "title", "op": "not_contains", "value": "100%_"}]},
    {"all": [{"field": "tags", "op": "is_empty"}]},
    {"all": [{"field": "tags", "op": "not_in", "value": ["vip", "cold"]}]},
    {"all": [{"field": "owner.role", "op": "eq", "value": "admin"}, {"field": "stage.name", "op": "is_not_empty"}]},
    {"all": [{"field": "expected_close_date", "op": "lt", "value": "2027-01-01"}]},
    {"all": [{"field": "value", "op": "eq", "value": "abc"}]},
]


def test_sql_conditions_mean_what_python_conditions_mean(admin: Any, env: Any) -> None:
    """Each case over the same deals: the ids SQL selects are those Python matches."""
    with in_tenant(env):
        CustomField.create(entity="deal", key="seats", label="Seats", kind="number")
        CustomField.create(entity="deal", key="plan", label="Plan", kind="text")
    saas = admin("POST", "/companies", {"name": "Cloudy", "industry": "SaaS", "annual_revenue": "5000"}, status=201)
    bare = admin("POST", "/companies", {"name": "Bare"}, status=201)
    admin("POST", "/deals", {"title": "Big one", "value": "1000", "company_id": saas["id"], "custom": {"seats": 12, "plan": "gold"}, "tags": ["vip"]}, status=201)
    admin("POST", "/deals", {"title": "100%_ sure", "value": "9000", "company_id": bare["id"], "custom": {"seats": 3}, "expected_close_date": "2026-12-24"}, status=201)
    admin("POST", "/deals", {"title": "Nothing known", "tags": ["cold"]}, status=201)
    with in_tenant(env):
        records = list(Deal.select().order_by(Deal.id))
        names = conditions.record_fields(Deal)
        tags = tag_names("deal", [r.id for r in records])
        outcomes = set()
        for tree in CASES:
            extras = field_paths.extra_values("deal", records, tree)
            in_python = [r.id for r in records if conditions.evaluate(tree, conditions.values_of(r, names, tags[r.id], {}) | extras[r.id])]
            in_sql = [i for (i,) in Deal.select(Deal.id).where(sql_conditions.compile_tree(tree, Deal, "deal")).order_by(Deal.id).tuples()]
            assert in_sql == in_python, tree
            outcomes.add(tuple(in_sql))
        assert len(outcomes) >= 6  # the cases tell the deals apart (not all empty, not all full)


def test_score_conditions_where_scoring_is_on(env: Any) -> None:
    from tests.plugins.automation.conftest import api_for, make_user

    admin = api_for(env, make_user(env, "gamma"), "gamma")
    rule = admin("POST", "/automation/rules", rule_body(
        name="Hot and from a SaaS company", trigger={"type": "schedule", "options": {"cron": "every day 0:00"}},
        conditions={"all": [{"field": "score", "op": "gt", "value": 80}, {"field": "company.industry", "op": "eq", "value": "SaaS"}]},
        steps=[{"action": "add_tag", "params": {"tag": "hot"}}]), status=201)
    from crm_plugins.scoring.models import LeadScore

    with in_tenant(env, "gamma"):
        company = create_record(Company, {"name": "Cloudy", "industry": "SaaS"})
        hot, cold, unscored = (create_record(Lead, {"name": n, "company": company.id}) for n in ("Hot", "Cold", "Unscored"))
        LeadScore.delete().execute()
        LeadScore.insert_many([{"lead": hot.id, "score": 91}, {"lead": cold.id, "score": 20}]).execute()
        leads = list(Lead.select().order_by(Lead.id))
        tree = AutomationRule.get_by_id(rule["id"]).conditions
        assert [i for (i,) in Lead.select(Lead.id).where(sql_conditions.compile_tree(tree, Lead, "lead")).tuples()] == [hot.id]
        extras = field_paths.extra_values("lead", leads, tree)
        assert extras[unscored.id]["score"] is None and extras[hot.id] == {"score": 91, "company.industry": "SaaS"}
    dry = admin("POST", f"/automation/rules/{rule['id']}/dry-run", {"limit": 10})
    assert {r["record_id"] for r in dry["records"] if r["matches"]} == {hot.id}
