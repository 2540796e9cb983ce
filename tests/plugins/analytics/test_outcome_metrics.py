"""Win/loss reasons and pipeline velocity on the data of conftest.py plus two lost deals,
worked out by hand (February 2026 in New York, EUR)."""

from __future__ import annotations

import pytest

from crmcore import db
from tests.plugins.analytics.conftest import FEBRUARY, _deal


@pytest.fixture
def more(world):
    """D8: Alice lost 400 for "Timing" on 20 Feb; D9: Bob lost 600 for "Price " (a trailing
    space, same reason as D2's "Price") on 21 Feb."""
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        d8 = _deal(world.stages, world.pipeline, "D8", "02-18 10:00", "Lost", 400, world.users["alice"], 0, closed="02-20 10:00")
        d9 = _deal(world.stages, world.pipeline, "D9", "02-19 10:00", "Lost", 600, world.users["bob"], 0, closed="02-21 10:00")
        from crmcore.sdk import Deal

        Deal.update(lost_reason="Timing").where(Deal.id == d8).execute()
        Deal.update(lost_reason="Price ").where(Deal.id == d9).execute()
    world.deals.update(D8=d8, D9=d9)
    return world


def test_win_loss_reasons(more):
    # Closed in February local: D1 won, D5 won (28 Feb local), D2 lost "Price", D8 lost "Timing", D9 lost "Price ".
    result = more.get("/win-loss-reasons", **FEBRUARY)
    rows = [(r["label"], r["values"]["won"], r["values"]["lost"], str(r["values"]["lost_value"]), r["cells"][4]) for r in result["rows"]]
    assert rows == [
        ("Price", 0, 2, "2600.00", "66.7%"),
        ("Timing", 0, 1, "400.00", "33.3%"),
        ("(no reason given)", 2, 0, "0.00", "0.0%"),
        ("Total", 2, 3, "3000.00", "100.0%"),
    ]
    price = next(r["key"] for r in result["rows"] if r["label"] == "Price")
    ids = more.get("/win-loss-reasons/records", key=price, **FEBRUARY)["ids"]
    assert ids == sorted([more.deals["D2"], more.deals["D9"]])
    assert more.get("/win-loss-reasons/records", key="none", **FEBRUARY)["ids"] == sorted([more.deals["D1"], more.deals["D5"]])
    bad = more.client.get("/api/v1/analytics/win-loss-reasons/records", query_string={"key": "0123456789ab", **FEBRUARY}, headers=more.headers)
    assert bad.status_code == 422


def test_pipeline_velocity(more):
    # Open now in EUR: D3 (Alice), D6 (Alice), D4 (no owner); D7 is USD.
    # Alice: 2 open × 1/2 (D1 won, D8 lost) × 1000 ÷ 8 days (D1: 2 Feb 10:00 → 10 Feb 10:00) = 125.00 a day.
    # Bob: no open deal: 0.00. No owner: nothing closed, no figure.
    # Total: 3 × 2/5 × 850 ÷ ((8 + 1/24) ÷ 2 = 193/48 days) = 48960/193 = 253.68.
    rows = {r["label"]: r["values"] for r in more.get("/velocity", **FEBRUARY)["rows"]}
    assert (rows["Alice"]["open_deals"], rows["Alice"]["win_rate"], str(rows["Alice"]["velocity"])) == (2, 0.5, "125.00")
    assert (rows["Bob"]["open_deals"], str(rows["Bob"]["velocity"])) == (0, "0.00")
    assert (rows["(no owner)"]["open_deals"], rows["(no owner)"]["velocity"]) == (1, None)
    assert (rows["Total"]["open_deals"], rows["Total"]["win_rate"], str(rows["Total"]["average_value"]), rows["Total"]["cycle_days"], str(rows["Total"]["velocity"])) == (3, 0.4, "850.00", 4.02, "253.68")
    assert more.get("/velocity/records", key=str(more.users["alice"]), **FEBRUARY)["ids"] == sorted([more.deals["D3"], more.deals["D6"]])
