"""Constructed data whose figures are worked out by hand in the tests.

Tenant ``acme`` has the plugin on, in the time zone America/New_York (UTC-5 in
February), so February 2026 there is [2026-02-01 05:00, 2026-03-01 05:00) UTC. Tenant
``beta`` does not have the plugin. The pipeline "Funnel" has the stages Lead-in (10%),
Qualified (30%), Proposal (60%), Won and Lost.

Deals (EUR unless said):

====  ==========================  =====  =====  ==========================================
deal  created (UTC)               owner  value  stage history (UTC), seconds in previous
====  ==========================  =====  =====  ==========================================
D1    02-02 10:00                 alice  1000   Lead-in→Proposal 02-05 10:00 (3 d, skips
                                                Qualified), Proposal→Won 02-10 10:00 (5 d)
D2    02-03 12:00                 bob    2000   LI→Q 02-04 12:00 (1 d), Q→LI 02-05 12:00
                                                (1 d), LI→Q 02-07 12:00 (2 d, reopens
                                                Qualified), Q→Lost 02-09 12:00 (2 d)
D3    02-10 09:00                 alice  500    LI→Q 02-11 09:00 (1 d); open, 30%
D4    02-12 09:00                 --     300    none; open in Lead-in, 10%
D5    03-01 03:00 (Feb 28 local)  bob    700    LI→Won 03-01 04:00 (1 h)
D6    02-01 04:30 (Jan 31 local)  alice  10000  none; open in Lead-in, 10%
D7    02-15 09:00                 alice  9999   USD, open in Proposal
====  ==========================  =====  =====  ==========================================

Leads: L1 referral alice converted 02-02 14:00 (first activity 2 h later), L2 referral
alice new 02-03 15:00 (4 h), L3 web bob contacted 02-05 (none), L4 web bob converted
03-01 04:59 = Feb 28 23:59 local (first activity 6 h later, on 1 March local), L5 form
02-01 04:00 = Jan 31 local. Activities in February local: a call and an email by alice,
a meeting by bob.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.sdk import Activity, Deal, DealStageChange, Lead, Pipeline, Stage

FEBRUARY = {"date_from": "2026-02-01", "date_to": "2026-02-28"}
DAY = 86400


def t(text: str) -> dt.datetime:
    """A naive UTC time from ``MM-DD HH:MM`` of 2026."""
    return dt.datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M")


@dataclass
class World:
    env: Any
    client: Any
    headers: dict[str, str]
    pipeline: int
    stages: dict[str, int]
    users: dict[str, int]
    deals: dict[str, int] = field(default_factory=dict)
    leads: dict[str, int] = field(default_factory=dict)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"/api/v1/analytics{path}", query_string=params, headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def rows(self, metric: str, **params: Any) -> dict[str, dict[str, Any]]:
        """The metric's rows by label, values only."""
        return {r["label"]: r["values"] for r in self.get(f"/{metric}", **params)["rows"]}


def _deal(stages: dict[str, int], pipeline: int, title: str, created: str, stage: str, value: int, owner: int | None, probability: int, currency: str = "EUR", closed: str | None = None, history: list[tuple[str, str, str, int]] = ()) -> int:
    deal = Deal.create(
        title=title, value=value, currency=currency, probability=probability, pipeline=pipeline, stage=stages[stage], owner=owner,
        created_at=t(created), updated_at=t(created), closed_at=t(closed) if closed else None, lost_reason="Price" if stage == "Lost" else None,
    )
    for source, target, at, seconds in history:
        DealStageChange.create(deal=deal, from_stage=stages[source], to_stage=stages[target], changed_at=t(at), seconds_in_previous=seconds)
    return deal.id


def _lead(name: str, source: str, status: str, owner: int, created: str) -> int:
    return Lead.create(name=name, source=source, status=status, owner=owner, created_at=t(created), updated_at=t(created)).id


@pytest.fixture
def world(crm_env: Any) -> World:
    crm_env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "America/New_York"}})
    crm_env.write_tenant("beta")
    crm_env.create_app()
    acme = crm_env.tenant("acme")
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(acme):
        users = {name: auth.create_user(acme, f"{name}@acme.test", "secret-pw", role="agent", name=name.capitalize()).id for name in ("alice", "bob")}
        pipeline = Pipeline.create(name="Funnel", order=5)
        stages = {}
        for order, (name, probability, won, lost) in enumerate((("Lead-in", 10, False, False), ("Qualified", 30, False, False), ("Proposal", 60, False, False), ("Won", 100, True, False), ("Lost", 0, False, True))):
            stages[name] = Stage.create(pipeline=pipeline, name=name, order=order, probability=probability, is_won=won, is_lost=lost).id
        alice, bob = users["alice"], users["bob"]
        w = World(crm_env, crm_env.client("acme"), {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}, pipeline.id, stages, users)
        d = w.deals
        d["D1"] = _deal(stages, pipeline.id, "D1", "02-02 10:00", "Won", 1000, alice, 100, closed="02-10 10:00", history=[("Lead-in", "Proposal", "02-05 10:00", 3 * DAY), ("Proposal", "Won", "02-10 10:00", 5 * DAY)])
        d["D2"] = _deal(
            stages, pipeline.id, "D2", "02-03 12:00", "Lost", 2000, bob, 0, closed="02-09 12:00",
            history=[("Lead-in", "Qualified", "02-04 12:00", DAY), ("Qualified", "Lead-in", "02-05 12:00", DAY), ("Lead-in", "Qualified", "02-07 12:00", 2 * DAY), ("Qualified", "Lost", "02-09 12:00", 2 * DAY)],
        )
        d["D3"] = _deal(stages, pipeline.id, "D3", "02-10 09:00", "Qualified", 500, alice, 30, history=[("Lead-in", "Qualified", "02-11 09:00", DAY)])
        d["D4"] = _deal(stages, pipeline.id, "D4", "02-12 09:00", "Lead-in", 300, None, 10)
        d["D5"] = _deal(stages, pipeline.id, "D5", "03-01 03:00", "Won", 700, bob, 100, closed="03-01 04:00", history=[("Lead-in", "Won", "03-01 04:00", 3600)])
        d["D6"] = _deal(stages, pipeline.id, "D6", "02-01 04:30", "Lead-in", 10000, alice, 10)
        d["D7"] = _deal(stages, pipeline.id, "D7", "02-15 09:00", "Proposal", 9999, alice, 60, currency="USD")

        ls = w.leads
        ls["L1"] = _lead("L1", "referral", "converted", alice, "02-02 14:00")
        ls["L2"] = _lead("L2", "referral", "new", alice, "02-03 15:00")
        ls["L3"] = _lead("L3", "web", "contacted", bob, "02-05 10:00")
        ls["L4"] = _lead("L4", "web", "converted", bob, "03-01 04:59")
        ls["L5"] = _lead("L5", "form", "new", bob, "02-01 04:00")
        for kind, user, lead, at in (("call", alice, "L1", "02-02 16:00"), ("email", alice, "L1", "02-03 10:00"), ("meeting", bob, "L2", "02-03 19:00"), ("call", bob, "L4", "03-01 10:59")):
            Activity.create(kind=kind, user=user, lead=ls[lead], occurred_at=t(at), subject=f"{kind} {lead}")
    return w
