"""The least-loaded assignment: the team member with the fewest open records of the kind
gets the record (one grouped query), ties in turn."""

from __future__ import annotations

from typing import Any

from crmcore.sdk import Lead, User, create_record
from tests.plugins.automation.conftest import drain, in_tenant, rule_body


def test_fewest_open_records_wins_and_ties_go_round(admin: Any, env: Any) -> None:
    with in_tenant(env):
        a, b, c = (User.create(email=f"agent{i}@acme.test", name=f"Agent {i}", role="agent") for i in range(3))
    with in_tenant(env):
        for name in ("A1", "A2"):
            create_record(Lead, {"name": name, "owner": a.id})
        create_record(Lead, {"name": "B done", "owner": b.id, "status": "converted"})  # not open: does not count
    admin("POST", "/automation/rules", rule_body(name="Spread new leads", conditions={}, steps=[
        {"action": "assign_least_loaded", "params": {"user_ids": [a.id, b.id, c.id]}}]), status=201)
    chosen = []
    for i in range(5):
        lead = admin("POST", "/leads", {"name": f"New {i}"}, status=201)
        drain(env)
        chosen.append(admin("GET", f"/leads/{lead['id']}")["owner_id"])
    # B and C have none open (B ties C, B first); then C; then B and C tie at 1 (B after C);
    # then C; then all three have 2 and A comes after C
    assert chosen == [b.id, c.id, b.id, c.id, a.id]
    body = rule_body(steps=[{"action": "assign_least_loaded", "params": {"user_ids": [c.id + 1000]}}])
    assert "steps[0].params.user_ids" in str(admin("POST", "/automation/rules", body, status=422))
    assert "steps[0].params.user_ids" in str(admin("POST", "/automation/rules", rule_body(steps=[{"action": "assign_least_loaded", "params": {}}]), status=422))


def test_least_loaded_is_one_query_whatever_the_team(admin: Any, env: Any) -> None:
    """The load of a team of 30 is read in one grouped query (counted on the connection)."""
    from crm_plugins.automation import actions
    from crm_plugins.automation.contrib import ActionCall
    from crmcore import sdk

    with in_tenant(env):  # users without a password (hashing one is slow; they never sign in)
        team = [User.create(email=f"agent{i}@acme.test", name=f"Agent {i}", role="agent") for i in range(30)]
    rule = admin("POST", "/automation/rules", rule_body(conditions={}, status="draft", steps=[
        {"action": "assign_least_loaded", "params": {"user_ids": [u.id for u in team]}}]), status=201)
    with in_tenant(env) as tenant:
        for i, user in enumerate(team[:-1]):
            create_record(Lead, {"name": f"Owned {i}", "owner": user.id})
        lead = create_record(Lead, {"name": "To assign"})
        statements: list[str] = []
        original = sdk.database.obj.execute_sql

        def counting(sql: str, *args: Any, **kwargs: Any) -> Any:
            statements.append(sql)
            return original(sql, *args, **kwargs)

        sdk.database.obj.execute_sql = counting
        try:
            with sdk.atomic():
                result = actions.assign_least_loaded(ActionCall(tenant, "lead", lead, {"user_ids": [u.id for u in team], "only_if_unassigned": False},
                                                                rule["id"], 0, 0))
        finally:
            del sdk.database.obj.execute_sql
        assert f"user {team[-1].id}" in result
        assert sum(1 for s in statements if "COUNT(" in s.upper()) == 1
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT") and "crm_users" in s]) == 1
