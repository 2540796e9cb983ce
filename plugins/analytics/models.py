"""The analytics plugin's one table: nightly snapshots of the open pipeline, so "what did
the pipeline look like on date X" can be answered after the deals have moved on."""

from __future__ import annotations

import peewee

from crmcore.sdk import Pipeline, Stage, TenantModel, utcnow


class PipelineSnapshot(TenantModel):
    """Open deals of one stage and currency on one day (a day of the tenant's time zone)."""

    day = peewee.DateField()
    pipeline = peewee.ForeignKeyField(Pipeline, on_delete="CASCADE", backref="+")
    stage = peewee.ForeignKeyField(Stage, on_delete="CASCADE", backref="+")
    currency = peewee.CharField(max_length=3)
    deals = peewee.IntegerField()
    value = peewee.DecimalField(max_digits=18, decimal_places=2)
    weighted = peewee.DecimalField(max_digits=18, decimal_places=2)
    taken_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "analytics_pipeline_snapshot"
        indexes = ((("tenant", "day", "stage", "currency"), True),)


MODELS = [PipelineSnapshot]
