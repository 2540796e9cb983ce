"""Every metric on the constructed data of conftest.py, against figures worked out by
hand (February 2026 in America/New_York unless said)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from crm_plugins.analytics.filters import local_midnight_utc
from tests.plugins.analytics.conftest import FEBRUARY


def test_time_zone_days_become_utc_bounds_across_daylight_saving():
    zone = zoneinfo.ZoneInfo("America/New_York")
    assert local_midnight_utc(dt.date(2026, 2, 1), zone) == dt.datetime(2026, 2, 1, 5, 0)
    assert local_midnight_utc(dt.date(2026, 3, 9), zone) == dt.datetime(2026, 3, 9, 4, 0)  # EDT from 8 March


def test_open_pipeline_by_stage_with_weighted_value(world):
    # D3 (Qualified, 500 at 30%) and D4 (Lead-in, 300 at 10%); D6 was created on 31 January
    # local time (1 February UTC), D7 is in USD.
    rows = world.rows("pipeline", pipeline_id=world.pipeline, **FEBRUARY)
    assert list(rows) == ["Lead-in", "Qualified", "Proposal", "Total"]
    assert rows["Lead-in"] == {"deals": 1, "value": "300.00", "weighted": "30.00"}
    assert rows["Qualified"] == {"deals": 1, "value": "500.00", "weighted": "150.00"}
    assert rows["Proposal"] == {"deals": 0, "value": "0.00", "weighted": "0.00"}
    assert rows["Total"] == {"deals": 2, "value": "800.00", "weighted": "180.00"}
    # Without a range D6 counts; in USD only D7.
    assert world.rows("pipeline", pipeline_id=world.pipeline)["Total"] == {"deals": 3, "value": "10800.00", "weighted": "1180.00"}
    assert world.rows("pipeline", pipeline_id=world.pipeline, currency="USD")["Total"] == {"deals": 1, "value": "9999.00", "weighted": "5999.40"}


def test_every_pipeline_is_shown_without_a_pipeline_filter(world):
    labels = list(world.rows("pipeline", **FEBRUARY))
    assert "Funnel · Lead-in" in labels and any(label.startswith("Sales · ") for label in labels)


def test_funnel_counts_skipped_stages_as_passed_and_reopened_ones_once(world):
    # Furthest stage: D1 Won (skipped Qualified), D2 Qualified (reopened, then lost),
    # D3 Qualified, D4 Lead-in, D5 Won (skipped two; 28 February local).
    rows = world.rows("funnel", pipeline_id=world.pipeline, **FEBRUARY)
    assert list(rows) == ["Lead-in", "Qualified", "Proposal", "Won"]
    assert rows["Lead-in"] == {"reached": 5, "conversion": None, "drop_off": None, "drop_off_rate": None}
    assert rows["Qualified"] == {"reached": 4, "conversion": 0.8, "drop_off": 1, "drop_off_rate": 0.2}
    assert rows["Proposal"] == {"reached": 2, "conversion": 0.5, "drop_off": 2, "drop_off_rate": 0.5}
    assert rows["Won"] == {"reached": 2, "conversion": 1.0, "drop_off": 0, "drop_off_rate": 0.0}


def test_time_in_stage_adds_up_the_visits_of_a_reopened_stage(world):
    rows = world.rows("time-in-stage", pipeline_id=world.pipeline, **FEBRUARY)
    # Lead-in: D1 3 d, D2 1 d + 2 d, D3 1 d, D5 1 h -> (3 + 3 + 1 + 1/24) / 4 days.
    assert rows["Lead-in"] == {"deals": 4, "visits": 5, "avg_days": round((7 + 1 / 24) / 4, 2)}
    assert rows["Qualified"] == {"deals": 1, "visits": 2, "avg_days": 3.0}
    assert rows["Proposal"] == {"deals": 1, "visits": 1, "avg_days": 5.0}


def test_win_rate_deal_size_and_sales_cycle_per_owner(world):
    win = world.rows("win-rate", **FEBRUARY)
    assert win["Alice"] == {"won": 1, "lost": 0, "win_rate": 1.0}
    assert win["Bob"] == {"won": 1, "lost": 1, "win_rate": 0.5}
    assert win["Total"] == {"won": 2, "lost": 1, "win_rate": 0.6667}
    size = world.rows("deal-size", **FEBRUARY)
    assert size["Total"] == {"won": 2, "won_value": "1700.00", "average_value": "850.00"}
    assert size["Bob"]["average_value"] == "700.00"
    cycle = world.rows("sales-cycle", **FEBRUARY)
    assert cycle["Alice"]["avg_cycle_days"] == 8.0
    assert cycle["Bob"]["avg_cycle_days"] == 0.04
    assert cycle["Total"]["avg_cycle_days"] == 4.02


def test_the_time_zone_decides_which_month_a_deal_closes_in(world):
    # D5 won at 2026-03-01 04:00 UTC: still 28 February in New York.
    assert world.rows("win-rate", date_from="2026-03-01", date_to="2026-03-31")["Total"]["won"] == 0
    world.env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "UTC"}})
    world.env.reload()
    assert world.rows("win-rate", date_from="2026-03-01", date_to="2026-03-31")["Total"] == {"won": 1, "lost": 0, "win_rate": 1.0}
    assert world.rows("win-rate", **FEBRUARY)["Total"] == {"won": 1, "lost": 1, "win_rate": 0.5}


def test_leads_by_source_and_conversion(world):
    rows = world.rows("lead-sources", **FEBRUARY)
    assert list(rows) == ["referral", "web", "Total"]
    assert rows["referral"] == {"leads": 2, "converted": 1, "conversion": 0.5}
    assert rows["web"] == {"leads": 2, "converted": 1, "conversion": 0.5}
    assert rows["Total"] == {"leads": 4, "converted": 2, "conversion": 0.5}
    assert world.rows("lead-sources", source="web", **FEBRUARY)["Total"]["leads"] == 2


def test_lead_response_time_from_creation_to_first_activity(world):
    rows = world.rows("response-time", **FEBRUARY)
    assert rows["Alice"] == {"leads": 2, "responded": 2, "not_responded": 0, "avg_hours": 3.0}
    assert rows["Bob"] == {"leads": 2, "responded": 1, "not_responded": 1, "avg_hours": 6.0}
    assert rows["Total"] == {"leads": 4, "responded": 3, "not_responded": 1, "avg_hours": 4.0}


def test_activities_per_rep_per_day_and_week(world):
    rows = world.rows("activities", **FEBRUARY)
    assert rows["Alice"] == {"activities": 2, "calls": 1, "emails": 1, "meetings": 0, "per_day": 0.07, "per_week": 0.5}
    assert rows["Bob"] == {"activities": 1, "calls": 0, "emails": 0, "meetings": 1, "per_day": 0.04, "per_week": 0.25}
    assert rows["Total"]["activities"] == 3
    assert world.rows("activities", owner_id=world.users["bob"], **FEBRUARY)["Total"]["activities"] == 1


def test_summary_figures_are_the_metrics_totals(world):
    figures = {f["name"]: f for f in world.get("/summary", **FEBRUARY)["figures"]}
    assert figures["win_rate"]["text"] == "66.7%"
    assert figures["average_deal_size"]["text"] == "850.00"
    assert figures["leads"]["value"] == 4
    assert figures["response_hours"]["text"] == "4.0"
    assert figures["win_rate"]["definition"].startswith("Deals closed in the range")


def test_each_metric_takes_a_constant_number_of_queries(world):
    from crm_plugins.analytics.metrics import METRICS
    from crmcore import db
    from crmcore.sdk import Activity, Deal, Lead

    def statements() -> dict[str, int]:
        counts: dict[str, int] = {}
        with world.env.app.app_context():
            database = db.database.obj
        original = database.execute_sql
        for name in METRICS:
            seen: list[str] = []

            def counting(sql, params=None, *args, **kwargs):
                if "crm_api_tokens" not in sql:  # the token's own lookup and touch
                    seen.append(sql)
                return original(sql, params, *args, **kwargs)

            database.execute_sql = counting
            try:
                world.get(f"/{name}", pipeline_id=world.pipeline, **FEBRUARY)
            finally:
                del database.execute_sql
            counts[name] = len(seen)
        return counts

    before = statements()
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        for i in range(30):  # more deals, leads and activities of every kind
            deal = Deal.create(title=f"More {i}", value=10, pipeline=world.pipeline, stage=world.stages["Lead-in"], owner=world.users["alice" if i % 2 else "bob"], created_at=dt.datetime(2026, 2, 10))
            lead = Lead.create(name=f"More {i}", source=f"s{i % 7}", created_at=dt.datetime(2026, 2, 10), owner=world.users["bob"])
            Activity.create(kind="call", user=world.users["alice"], lead=lead, deal=deal, occurred_at=dt.datetime(2026, 2, 11))
    assert statements() == before
    assert max(before.values()) <= 4, before
