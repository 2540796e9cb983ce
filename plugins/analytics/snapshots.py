"""The nightly pipeline snapshot: once per day of the tenant's time zone, the open deals
per pipeline, stage and currency (count, value, weighted value), in two queries.

The job runs every hour (``analytics:snapshot``) and takes the snapshot of the tenant's
local day when it has none yet, so each tenant's snapshot is taken shortly after its own
midnight whatever the server's time zone; running it again the same day does nothing.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from peewee import fn

from crm_plugins.analytics.deal_metrics import OPEN, in_stages
from crm_plugins.analytics.models import PipelineSnapshot
from crm_plugins.analytics.registry import money
from crmcore import sdk
from crmcore.sdk import Deal, Pipeline, Stage


def local_today(tenant: Any) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(sdk.settings(tenant, "analytics")["time_zone"])).date()


def take(tenant: Any, day: dt.date | None = None) -> int:
    """Snapshot the open pipeline as the tenant's ``day`` (default: its today) unless that
    day has one; returns the rows written (0 when it existed)."""
    day = day or local_today(tenant)
    with sdk.atomic():
        if PipelineSnapshot.select().where(PipelineSnapshot.day == day).exists():
            return 0
        figures = (
            Deal.select(Deal.pipeline, Deal.stage, Deal.currency, fn.COUNT(Deal.id), fn.SUM(Deal.value), fn.SUM(Deal.value * Deal.probability))
            .where(in_stages(OPEN))
            .group_by(Deal.pipeline, Deal.stage, Deal.currency)
            .tuples()
        )
        rows = [
            {"tenant": tenant.id, "day": day, "pipeline": pipeline, "stage": stage, "currency": currency, "deals": count, "value": money(value), "weighted": money((weighted or 0) / 100), "taken_at": sdk.utcnow()}
            for pipeline, stage, currency, count, value, weighted in figures
        ]
        if rows:
            PipelineSnapshot.insert_many(rows).execute()
        return len(rows)


def snapshot_job(tenant: Any) -> None:
    take(tenant)


def rows_of(day: dt.date, currency: str, pipeline_id: int | None) -> list[dict[str, Any]]:
    """The snapshot of ``day`` per stage (board order), with its total; [] when there is none."""
    query = (
        PipelineSnapshot.select(PipelineSnapshot, Stage.name.alias("stage_name"), Pipeline.name.alias("pipeline_name"))
        .join(Stage, on=(PipelineSnapshot.stage == Stage.id))
        .switch(PipelineSnapshot)
        .join(Pipeline, on=(PipelineSnapshot.pipeline == Pipeline.id))
        .where((PipelineSnapshot.day == day) & (PipelineSnapshot.currency == currency))
        .order_by(Pipeline.order, Pipeline.id, Stage.order, Stage.id)
    )
    if pipeline_id is not None:
        query = query.where(PipelineSnapshot.pipeline == pipeline_id)
    rows = [{"stage_id": s.stage_id, "label": f"{s.pipeline_name} · {s.stage_name}", "deals": s.deals, "value": money(s.value), "weighted": money(s.weighted), "taken_at": s.taken_at} for s in query.objects()]
    return rows
