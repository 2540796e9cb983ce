"""The analytics plugin's one table: nightly snapshots of the open pipeline, so "what did
the pipeline look like on date X" can be answered after the deals have moved on."""

from __future__ import annotations

import peewee

from crmcore.sdk import Pipeline, Stage, TenantModel, User, utcnow


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





#: What a goal counts.
GOAL_KINDS = ("revenue_won", "deals_won", "activities")


class Goal(TenantModel):
    """A target for one user (or the whole team when ``user`` is empty) over a period of
    local days; ``start_at``/``end_at`` are the period's UTC bounds, fixed when it is set."""

    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE", backref="+")
    kind = peewee.CharField(max_length=20)
    currency = peewee.CharField(max_length=3, null=True)  # revenue goals
    target = peewee.DecimalField(max_digits=18, decimal_places=2)
    first_day = peewee.DateField()
    last_day = peewee.DateField()
    start_at = peewee.DateTimeField()
    end_at = peewee.DateTimeField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "analytics_goal"
        indexes = ((("tenant", "first_day"), False),)
MODELS = [PipelineSnapshot, Goal]
