"""The analytics plugin's one table: nightly snapshots of the open pipeline, so "what did
the pipeline look like on date X" can be answered after the deals have moved on."""

from __future__ import annotations

import peewee

from crmcore.sdk import JSONText, Pipeline, Stage, Team, TenantModel, User, utcnow


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
    """A target for one user, one team (``team``: the records of its members) or everyone
    (both empty) over a period of local days; ``start_at``/``end_at`` are the period's UTC
    bounds, fixed when it is set."""

    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE", backref="+")
    team = peewee.ForeignKeyField(Team, null=True, on_delete="CASCADE", backref="+")  # migration 0004_teams
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


#: Rolling date ranges a saved report may keep instead of fixed days (resolved when it runs);
#: quarters and years are fiscal ones (``fiscal_year_start_month``).
DATE_PRESETS = ("today", "last_7_days", "last_30_days", "this_month", "last_month", "this_quarter", "last_quarter", "this_year", "last_year")
#: How often a saved report is emailed (``none``: never).
SCHEDULES = ("none", "weekly", "monthly")


class SavedReport(TenantModel):
    """A metric with its grouping and filters, kept by a user for themselves or shared with
    the tenant, optionally emailed on a schedule (hours and days of the tenant's time zone)."""

    owner = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+")
    name = peewee.CharField(max_length=120)
    metric = peewee.CharField(max_length=40)
    grouping = peewee.CharField(max_length=20, default="default")  # the forecast: month or quarter
    shared = peewee.BooleanField(default=False)
    date_preset = peewee.CharField(max_length=20, null=True)
    date_from = peewee.DateField(null=True)
    date_to = peewee.DateField(null=True)
    owner_filter = peewee.IntegerField(null=True)  # the metric's owner filter (a user id)
    team_filter = peewee.IntegerField(null=True)  # the metric's team filter (a team id; migration 0004_teams)
    pipeline_id = peewee.IntegerField(null=True)
    source = peewee.CharField(max_length=30, null=True)
    currency = peewee.CharField(max_length=3, null=True)
    schedule = peewee.CharField(max_length=10, default="none")
    weekday = peewee.SmallIntegerField(null=True)  # 0 = Monday
    month_day = peewee.SmallIntegerField(null=True)  # 1-28
    hour = peewee.SmallIntegerField(null=True)  # 0-23, tenant's time zone
    recipients = JSONText(default=list)  # user ids
    next_run_at = peewee.DateTimeField(null=True, index=True)  # UTC, the next occurrence to send
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "analytics_saved_report"
        indexes = ((("tenant", "owner"), False),)


class DashboardCopy(TenantModel):
    """The tenant's unfiltered dashboard as of ``computed_at`` (UTC) on its local ``day``."""

    day = peewee.DateField()
    computed_at = peewee.DateTimeField(default=utcnow)
    seconds = peewee.FloatField(default=0)  # how long computing it took
    payload = peewee.TextField()  # {"results": [...], "figures": [...]}

    class Meta:
        table_name = "analytics_dashboard_copy"
        indexes = ((("tenant",), True),)


MODELS = [PipelineSnapshot, Goal, SavedReport, DashboardCopy]
