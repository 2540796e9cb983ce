"""Demo data for the board: the core's demo seeding gives the default pipeline ~150 deals;
this adds a second, smaller pipeline ("Partnerships") so the pipeline switcher has
something to switch to. Idempotent: nothing happens when that pipeline exists."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from crmcore import sdk
from crmcore.sdk import Company, Deal, Pipeline, Stage, User, tenant_context, utcnow

PIPELINE = "Partnerships"
STAGES = [
    ("Intro", 10, "#0891b2", False, False, 10),
    ("Pilot", 40, "#7c3aed", False, False, 30),
    ("Contract", 80, "#ca8a04", False, False, 14),
    ("Signed", 100, "#16a34a", True, False, None),
    ("Dropped", 0, "#dc2626", False, True, None),
]
DEALS = [  # title, stage index, value, days in stage
    ("Reseller programme Nordics", 0, "18000", 3),
    ("Integration partner: Atlas Systems", 0, "9500", 12),
    ("Co-marketing with Beacon Media", 1, "12000", 41),
    ("Referral deal: Summit Advisory", 1, "6000", 8),
    ("Channel partner Benelux", 2, "42000", 5),
    ("OEM licence Vertex Labs", 3, "65000", 2),
]


def seed(tenant: Any) -> None:
    # The core's demo records (users, companies, the default pipeline's deals) exist:
    # its crm_demo_data runs first.
    with tenant_context(tenant), sdk.atomic():
        if Pipeline.select().where(Pipeline.name == PIPELINE).exists():
            return
        pipeline = Pipeline.create(name=PIPELINE, is_default=False, order=1)
        stages = [
            Stage.create(pipeline=pipeline, name=n, order=i, probability=p, colour=c, is_won=w, is_lost=lost, expected_days=days)
            for i, (n, p, c, w, lost, days) in enumerate(STAGES)
        ]
        owners = [u.id for u in User.select(User.id).order_by(User.id).limit(3)]
        companies = [c.id for c in Company.select(Company.id).order_by(Company.id).limit(len(DEALS))]
        now = utcnow().replace(microsecond=0)
        for index, (title, stage_index, value, days) in enumerate(DEALS):
            stage = stages[stage_index]
            Deal.create(
                title=title,
                value=Decimal(value),
                currency="EUR",
                probability=stage.probability,
                pipeline=pipeline,
                stage=stage,
                position=float(index + 1),
                stage_entered_at=now - dt.timedelta(days=days),
                closed_at=now - dt.timedelta(days=days) if stage.is_won else None,
                owner=owners[index % len(owners)] if owners else None,
                company=companies[index] if index < len(companies) else None,
                created_at=now - dt.timedelta(days=days + 5),
            )
