"""The core's teams in analytics: the ``team_id`` filter (a team's members' deals, leads
and activities), goals per team, and saved reports keeping the team filter. On the data
of conftest.py, worked out by hand: Alice is in team North, Bob in no team."""

from __future__ import annotations

import re

import pytest

from crmcore import db
from crmcore.sdk import Team, User
from tests.plugins.analytics.conftest import FEBRUARY


@pytest.fixture
def north(world):
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        team = Team.create(name="North")
        User.update(team=team).where(User.id == world.users["alice"]).execute()
    return team.id


def test_the_team_filter_counts_the_members_records_only(world, north):
    # Deals won in February local by North (Alice): D1 only; Bob's D5 is left out.
    size = world.rows("deal-size", team_id=north, **FEBRUARY)
    assert set(size) == {"Alice", "Total"} and size["Total"] == {"won": 1, "won_value": "1000.00", "average_value": "1000.00"}
    # Leads created in February local by Alice: L1 and L2, both referral.
    assert world.rows("lead-sources", team_id=north, **FEBRUARY)["referral"]["leads"] == 2
    # Activities: Alice's call and email.
    assert world.rows("activities", team_id=north, **FEBRUARY)["Total"]["activities"] == 2
    # Owner and team together: Bob is not in North, so nothing.
    assert world.get("/deal-size", team_id=north, owner_id=world.users["bob"], **FEBRUARY)["empty"]
    # The drill-down agrees with the figure.
    ids = world.get("/deal-size/records", key="all", team_id=north, **FEBRUARY)["ids"]
    assert ids == [world.deals["D1"]]
    assert world.client.get("/api/v1/analytics/deal-size", query_string={"team_id": "x"}, headers=world.headers).status_code == 422


def test_a_team_goal_counts_its_members_records(world, north):
    body = {"team_id": north, "kind": "revenue_won", "target": "2000", "first_day": "2026-02-01", "last_day": "2026-02-28"}
    made = world.client.post("/api/v1/analytics/goals", json=body, headers=world.headers)
    assert made.status_code == 201, made.get_json()
    goal = made.get_json()
    # D1 (Alice, 1000) counts; D5 (Bob, 700, 28 Feb local) does not.
    assert (goal["who"], goal["team_id"], goal["actual"], goal["attainment"]) == ("Team North", north, "1000.00", 0.5)
    both = world.client.post("/api/v1/analytics/goals", json={**body, "user_id": world.users["bob"]}, headers=world.headers)
    assert both.status_code == 422 and "team_id" in both.get_json()["errors"]["json"]
    unknown = world.client.post("/api/v1/analytics/goals", json={**body, "team_id": 999999}, headers=world.headers)
    assert unknown.status_code == 422


def test_a_saved_report_keeps_its_team_filter(world, north):
    world.env.login(world.client, "acme", role="manager", email="m@acme.test")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    assert 'name="team_id"' in page and ">North<" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    saved = world.client.post("/app/analytics/reports", data={"csrf_token": token, "name": "North in Feb", "metric": "deal-size", "team_id": str(north), **FEBRUARY})
    assert saved.status_code == 302
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        from crm_plugins.analytics.models import SavedReport

        report = SavedReport.get(SavedReport.name == "North in Feb")
        assert report.team_filter == north
    ran = world.client.get(f"/api/v1/analytics/reports/{report.id}/run")  # the session of the report's owner
    assert ran.status_code == 200 and [r["label"] for r in ran.get_json()["rows"]] == ["Alice", "Total"]
