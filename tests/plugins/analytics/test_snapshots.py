"""The nightly pipeline snapshot job and "the pipeline on date X" (data of conftest.py)."""

from __future__ import annotations

from crm_plugins.analytics.models import PipelineSnapshot
from crmcore import db
from crmcore.jobs import Scheduler
from crmcore.sdk import Deal


def test_hook_crm_scheduled_jobs_snapshots_the_pipeline_once_a_local_day(world):
    scheduler = Scheduler(world.env.crm, holder="test")
    assert scheduler.run_job("analytics:snapshot") == ["acme"]  # not beta: the plugin is off there
    scheduler.run_job("analytics:snapshot")  # the same day again: nothing new
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        day = PipelineSnapshot.select(PipelineSnapshot.day).first().day
        assert PipelineSnapshot.select().count() == 3  # Lead-in EUR, Qualified EUR, Proposal USD
        Deal.update(stage=world.stages["Won"]).where(Deal.id == world.deals["D3"]).execute()  # the deal moves on
    snap = world.get("/pipeline-snapshots", day=day.isoformat(), pipeline_id=world.pipeline)
    rows = {r["label"]: r for r in snap["rows"]}
    # Lead-in: D4 (300 at 10%) and D6 (10000 at 10%); Qualified: D3 as it was.
    assert (rows["Funnel · Lead-in"]["deals"], rows["Funnel · Lead-in"]["value"], rows["Funnel · Lead-in"]["weighted"]) == (2, "10300.00", "1030.00")
    assert (rows["Funnel · Qualified"]["deals"], rows["Funnel · Qualified"]["value"]) == (1, "500.00")
    assert world.client.get("/api/v1/analytics/pipeline-snapshots?day=2020-01-01", headers=world.headers).status_code == 404
    assert world.client.get("/api/v1/analytics/pipeline-snapshots", headers=world.headers).status_code == 422
