"""The forecast by expected close period and the run rate's back-test, on the data of
conftest.py plus expected close dates and one deal in commit (worked out by hand)."""

from __future__ import annotations

import datetime as dt

from crmcore import db
from crmcore.sdk import Deal


def _plan(world) -> None:
    """Expected close dates of the open EUR deals, and D8: 4000 at 80% in March."""
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        for name, day in (("D3", "2026-03-15"), ("D6", "2026-03-31"), ("D4", "2026-04-02"), ("D7", "2026-03-10")):
            Deal.update(expected_close_date=dt.date.fromisoformat(day)).where(Deal.id == world.deals[name]).execute()
        world.deals["D8"] = Deal.create(
            title="D8", value=4000, currency="EUR", probability=80, pipeline=world.pipeline, stage=world.stages["Proposal"],
            created_at=dt.datetime(2026, 2, 20, 9), expected_close_date=dt.date(2026, 3, 20),
        ).id


def test_forecast_by_month_in_categories_with_the_run_rate(world):
    _plan(world)
    rows = world.rows("forecast", date_from="2026-02-01", date_to="2026-04-30", as_of="2026-04-15")
    assert list(rows) == ["2026-02", "2026-03", "2026-04", "Total"]
    # February: D1 and D5 won (D5 on 28 February in New York, 1 March in UTC).
    assert rows["2026-02"] == {"open_deals": 0, "pipeline": "0.00", "best_case": "0.00", "commit": "0.00", "weighted": "0.00", "closed_won": "1700.00", "run_rate": "283.33"}
    assert rows["2026-03"] == {"open_deals": 3, "pipeline": "14500.00", "best_case": "4000.00", "commit": "4000.00", "weighted": "4350.00", "closed_won": "0.00", "run_rate": "283.33"}
    assert rows["2026-04"]["pipeline"] == "300.00" and rows["2026-04"]["weighted"] == "30.00"
    assert rows["Total"] == {"open_deals": 4, "pipeline": "14800.00", "best_case": "4000.00", "commit": "4000.00", "weighted": "4380.00", "closed_won": "1700.00", "run_rate": "849.99"}
    march = world.get("/forecast/records", key="2026-03", date_from="2026-02-01", date_to="2026-04-30", as_of="2026-04-15")["ids"]
    assert march == sorted(world.deals[k] for k in ("D3", "D6", "D8"))


def test_forecast_by_quarter(world):
    _plan(world)
    rows = world.rows("forecast", date_from="2026-01-01", date_to="2026-06-30", period="quarter", as_of="2026-04-15")
    assert list(rows) == ["2026-Q1", "2026-Q2", "Total"]
    assert (rows["2026-Q1"]["open_deals"], rows["2026-Q1"]["pipeline"], rows["2026-Q1"]["closed_won"]) == (3, "14500.00", "1700.00")
    assert rows["2026-Q2"]["pipeline"] == "300.00" and rows["2026-Q2"]["run_rate"] == "849.99"


def test_the_run_rate_is_back_tested_month_by_month(world):
    rows = world.rows("forecast-accuracy", as_of="2026-04-15")
    assert list(rows) == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "Mean (MAPE)"]
    assert rows["2026-02"] == {"predicted": "0.00", "actual": "1700.00", "error": "-1700.00", "abs_pct_error": 1.0}
    assert rows["2026-03"] == {"predicted": "283.33", "actual": "0.00", "error": "283.33", "abs_pct_error": None}
    assert rows["Mean (MAPE)"]["abs_pct_error"] == 1.0
    assert world.get("/forecast-accuracy/records", key="2026-02", as_of="2026-04-15")["ids"] == [world.deals["D1"], world.deals["D5"]]
