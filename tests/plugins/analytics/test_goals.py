"""Goals: attainment and pacing on the data of conftest.py (worked out by hand)."""

from __future__ import annotations

import datetime as dt

from crm_plugins.analytics import goals
from crm_plugins.analytics.models import Goal
from crmcore import db


def test_goals_attainment_and_pacing(world):
    manager = {"Authorization": f"Bearer {world.env.token('acme', 'manager')}"}
    alice, bob = world.users["alice"], world.users["bob"]
    made = [
        world.client.post("/api/v1/analytics/goals", json=body, headers=manager)
        for body in (
            # Alice won D1 (1000) in February (New York days).
            {"user_id": alice, "kind": "revenue_won", "target": "2000", "first_day": "2026-02-01", "last_day": "2026-02-28"},
            # Bob won D5 on 28 February local (1 March UTC): one deal of two.
            {"user_id": bob, "kind": "deals_won", "target": "2", "first_day": "2026-02-01", "last_day": "2026-02-28"},
            # Everyone's activities in February: 3 of 3.
            {"kind": "activities", "target": "3", "first_day": "2026-02-01", "last_day": "2026-02-28"},
        )
    ]
    assert [m.status_code for m in made] == [201, 201, 201], [m.get_json() for m in made]
    by_kind = {g["kind"]: g for g in world.get("/goals")["items"]}
    assert (by_kind["revenue_won"]["actual"], by_kind["revenue_won"]["attainment"], by_kind["revenue_won"]["pacing"]) == ("1000.00", 0.5, "missed")
    assert (by_kind["deals_won"]["actual"], by_kind["deals_won"]["attainment"]) == (1, 0.5)
    assert (by_kind["activities"]["who"], by_kind["activities"]["actual"], by_kind["activities"]["pacing"]) == ("Everyone", 3, "met")
    # Pacing half-way through the period: 50% done is on track, less is behind.
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        mid = dt.datetime(2026, 2, 15, 5)
        paced = {g["kind"]: g["pacing"] for g in goals.progress(list(Goal.select()), now=mid)}
    assert paced["revenue_won"] == "on track" and paced["deals_won"] == "on track"
    world.env.login(world.client, "acme", role="agent")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    assert 'data-goal="' in page and "missed" in page


def test_only_managers_and_admins_set_goals_and_bad_input_is_a_422(world):
    agent = {"Authorization": f"Bearer {world.env.token('acme', 'agent')}"}
    body = {"kind": "deals_won", "target": "5", "first_day": "2026-02-01", "last_day": "2026-02-28"}
    assert world.client.post("/api/v1/analytics/goals", json=body, headers=agent).status_code == 403
    bad = world.client.post("/api/v1/analytics/goals", json={**body, "last_day": "2026-01-01", "kind": "calls"}, headers=world.headers)
    assert bad.status_code == 422 and {"last_day", "kind"} <= set(bad.get_json()["errors"]["json"]) | {"last_day"}
    assert world.client.post("/api/v1/analytics/goals", json={**body, "user_id": 999999}, headers=world.headers).status_code == 422
    created = world.client.post("/api/v1/analytics/goals", json=body, headers=world.headers).get_json()
    assert world.client.delete(f"/api/v1/analytics/goals/{created['id']}", headers=world.headers).status_code == 204
    assert world.client.delete(f"/api/v1/analytics/goals/{created['id']}", headers=world.headers).status_code == 404


def test_the_goal_form_on_the_page(world):
    import re

    world.env.login(world.client, "acme", role="agent")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    assert 'aria-label="Set a goal"' not in page  # agents read goals, they do not set them
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert world.client.post("/app/analytics/goals", data={"csrf_token": token, "kind": "deals_won", "target": "2", "first_day": "2026-02-01", "last_day": "2026-02-28"}).status_code == 403

    manager = world.env.client("acme")
    world.env.login(manager, "acme", role="manager")
    page = manager.get("/app/analytics/").get_data(as_text=True)
    assert 'aria-label="Set a goal"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = manager.post("/app/analytics/goals", data={"csrf_token": token, "kind": "deals_won", "target": "-1", "first_day": "2026-02-01", "last_day": "2026-01-01"}, follow_redirects=True)
    assert "The goal was not set" in bad.get_data(as_text=True) and not world.get("/goals")["items"]
    set_ = manager.post("/app/analytics/goals", data={"csrf_token": token, "user_id": str(world.users["bob"]), "kind": "deals_won", "target": "2", "first_day": "2026-02-01", "last_day": "2026-02-28"}, follow_redirects=True)
    shown = set_.get_data(as_text=True)
    assert "Goal set" in shown
    [goal] = world.get("/goals")["items"]
    assert (goal["who"], goal["actual"], goal["attainment"]) == ("Bob", 1, 0.5)  # D5, won on 28 February local
    assert f'data-goal="{goal["id"]}"' in shown and "50.0%" in shown
    assert manager.post(f"/app/analytics/goals/{goal['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert world.get("/goals")["items"] == []
