"""Drill-down, the dashboard page and its CSV export, errors, the OpenAPI document, and a
tenant without the plugin (data of conftest.py)."""

from __future__ import annotations

import csv
import html
import io
import re

import openpyxl

from crmcore import auth, db
from crmcore.sdk import User
from tests.plugins.analytics.conftest import FEBRUARY


def ids_of(world, metric, key, **params):
    return world.get(f"/{metric}/records", key=key, **params)["ids"]


def test_every_figure_drills_down_to_its_records(world):
    d, ls, users = world.deals, world.leads, world.users
    feb = dict(pipeline_id=world.pipeline, **FEBRUARY)
    assert ids_of(world, "funnel", str(world.stages["Qualified"]), **feb) == [d["D1"], d["D2"], d["D3"], d["D5"]]
    assert ids_of(world, "funnel", str(world.stages["Won"]), **feb) == [d["D1"], d["D5"]]
    assert ids_of(world, "pipeline", str(world.stages["Lead-in"]), **feb) == [d["D4"]]
    assert ids_of(world, "time-in-stage", str(world.stages["Qualified"]), **feb) == [d["D2"]]
    assert ids_of(world, "win-rate", str(users["bob"]), **FEBRUARY) == [d["D2"], d["D5"]]
    assert ids_of(world, "deal-size", "all", **FEBRUARY) == [d["D1"], d["D5"]]
    assert ids_of(world, "lead-sources", "web", **FEBRUARY) == [ls["L3"], ls["L4"]]
    assert ids_of(world, "response-time", str(users["alice"]), **FEBRUARY) == [ls["L1"], ls["L2"]]
    assert world.get("/activities/records", key=str(users["bob"]), **FEBRUARY)["entity"] == "activity"
    assert len(ids_of(world, "activities", "all", **FEBRUARY)) == 3


def test_drill_down_pages_through_the_records(world):
    first = world.get("/funnel/records", key="all", limit=3, pipeline_id=world.pipeline, **FEBRUARY)
    assert len(first["ids"]) == 3 and first["next_cursor"]
    second = world.get("/funnel/records", key="all", limit=3, cursor=first["next_cursor"], pipeline_id=world.pipeline, **FEBRUARY)
    assert first["ids"] + second["ids"] == sorted(world.deals[k] for k in ("D1", "D2", "D3", "D4", "D5"))
    assert second["next_cursor"] is None


def test_bad_input_is_a_422_with_field_messages(world):
    bad = world.client.get("/api/v1/analytics/win-rate", query_string={"date_from": "2026-03-01", "date_to": "2026-02-01"}, headers=world.headers)
    assert bad.status_code == 422 and "date_to" in bad.get_json()["errors"]["query"]
    assert world.client.get("/api/v1/analytics/pipeline?currency=euro", headers=world.headers).status_code == 422
    assert world.client.get("/api/v1/analytics/win-rate/records?key=abc", headers=world.headers).status_code == 422
    assert world.client.get("/api/v1/analytics/win-rate/records?cursor=zzz", headers=world.headers).status_code == 422


def test_metrics_are_listed_with_definitions_in_the_openapi_document(world):
    listed = world.get("/metrics")["items"]
    assert {m["name"] for m in listed} >= {"pipeline", "funnel", "time-in-stage", "win-rate", "deal-size", "sales-cycle", "lead-sources", "response-time", "activities"}
    assert all(len(m["definition"]) > 60 for m in listed)
    spec = world.client.get("/api/v1/openapi.json", headers=world.headers).get_json()
    funnel = spec["paths"]["/api/v1/analytics/funnel"]["get"]
    assert funnel["x-crm-permission"] == "analytics:read" and "skipped" in funnel["description"]
    assert "/api/v1/analytics/funnel/records" in spec["paths"] and "/api/v1/analytics/summary" in spec["paths"]
    assert "/api/v1/analytics/leads" in spec["paths"]  # the core's stays


def _table(page: str, metric: str) -> list[list[str]]:
    section = re.search(rf'<section class="card metric" id="m-{metric}".*?</section>', page, re.S).group(0)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in rows]


def test_the_dashboard_shows_definitions_and_the_csv_is_the_table_on_screen(world):
    world.env.login(world.client, "acme", role="manager")
    query = {"pipeline_id": world.pipeline, **FEBRUARY}
    page = world.client.get("/app/analytics/", query_string=query)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "A deal reached a stage when it was ever in that stage or a later one" in text
    assert "America/New_York" in text
    for metric in ("funnel", "win-rate", "lead-sources", "activities"):
        exported = world.client.get(f"/app/analytics/{metric}.csv", query_string=query)
        assert exported.status_code == 200 and exported.mimetype == "text/csv"
        assert list(csv.reader(io.StringIO(exported.get_data(as_text=True)))) == _table(text, metric)
    assert _table(text, "win-rate")[-1] == ["Total", "2", "1", "66.7%"]
    workbook = world.client.get("/app/analytics/funnel.xlsx", query_string=query)
    assert workbook.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.data)).active
    assert [[cell if cell is not None else "" for cell in row] for row in sheet.iter_rows(values_only=True)] == _table(text, "funnel")
    drill = world.client.get("/app/analytics/funnel/records", query_string={**query, "key": world.stages["Won"]})
    assert drill.status_code == 200 and "D1" in drill.get_data(as_text=True) and "D5" in drill.get_data(as_text=True)
    leads = world.client.get("/app/analytics/lead-sources/records", query_string={**FEBRUARY, "key": "web"}).get_data(as_text=True)
    assert f'/app/leads/{world.leads["L3"]}' in leads and f'/app/leads/{world.leads["L4"]}' in leads
    calls = world.client.get("/app/analytics/activities/records", query_string={**FEBRUARY, "key": world.users["alice"]}).get_data(as_text=True)
    assert "call L1" in calls and "email L1" in calls and "meeting L2" not in calls
    assert world.client.get("/app/analytics/nope/records").status_code == 404


def test_empty_states_say_what_to_do(world):
    world.env.login(world.client, "acme")
    text = world.client.get("/app/analytics/", query_string={"date_from": "2020-01-01", "date_to": "2020-01-31"}).get_data(as_text=True)
    assert "No deals to count here yet" in text and "No leads in this range" in text and "No activities in this range" in text


def test_a_tenant_without_the_plugin_sees_none_of_it(world):
    beta = world.env.client("beta")
    headers = {"Authorization": f"Bearer {world.env.token('beta')}"}
    assert beta.get("/api/v1/analytics/funnel", headers=headers).status_code == 404
    assert beta.get("/api/v1/analytics/leads", headers=headers).status_code == 200  # the core's
    world.env.login(beta, "beta")
    assert beta.get("/app/analytics/").status_code == 404
    assert "/app/analytics/" not in beta.get("/app/").get_data(as_text=True)
    world.env.login(world.client, "acme")
    assert "/app/analytics/" in world.client.get("/app/").get_data(as_text=True)


def test_agents_restricted_to_their_own_records_get_their_own_figures(world):
    world.env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "America/New_York"}, "core": {"agents_see_own_only": True}})
    world.env.reload()
    acme = world.env.tenant("acme")
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(acme):
        token = auth.create_token(acme, "agent", name="bob", user=User.get_by_id(world.users["bob"]))[1]
    rows = {r["label"]: r["values"] for r in world.client.get("/api/v1/analytics/win-rate", query_string=FEBRUARY, headers={"Authorization": f"Bearer {token}"}).get_json()["rows"]}
    assert "Alice" not in rows and rows["Total"] == {"won": 1, "lost": 1, "win_rate": 0.5}


def test_hook_crm_dashboard_widgets_shows_this_months_win_rate(world):
    world.env.login(world.client, "acme", role="manager")
    text = world.client.get("/app/").get_data(as_text=True)
    assert "Win rate this month" in text and "0 won, 0 lost this month" in text
    assert 'data-widget="analytics-win-rate"' in text and "/app/analytics/?date_from=" in text
