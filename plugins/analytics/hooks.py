"""Hook implementations of the analytics plugin."""

from __future__ import annotations

from crm_plugins.analytics import (
    api,
    dashboard_cache,
    report_pages,  # noqa: F401  (adds the report edit page to views.bp)
    reports_api,  # noqa: F401  (adds the /reports routes to api.blp)
    schedule,
    snapshots,
    views,
    widget,
)
from crm_plugins.analytics.models import MODELS, DashboardCopy, Goal, PipelineSnapshot, SavedReport
from crmcore import sdk
from crmcore.sdk import (
    DashboardWidget,
    Migration,
    NavItem,
    ScheduledJob,
    TaskHandler,
    add_columns,
    create_tables,
    hookimpl,
)


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [
        Migration("0001_pipeline_snapshots", create_tables(PipelineSnapshot)),
        Migration("0002_goals", create_tables(Goal)),
        Migration("0003_saved_reports", create_tables(SavedReport)),
        Migration("0004_teams", _team_columns),
        Migration("0005_dashboard_copy", create_tables(DashboardCopy)),
    ]


def _team_columns(database):
    """Goal.team and SavedReport.team_filter (the core's teams, its migration 0012_teams),
    for tables that predate them (0002/0003 create the tables as the models are now)."""
    for model, name, column in ((Goal, "team", "team_id"), (SavedReport, "team_filter", "team_filter")):
        if column not in {c.name for c in database.get_columns(model._meta.table_name)}:
            add_columns(model, name)(database)


@hookimpl
def crm_scheduled_jobs():
    # Hourly: each tenant's snapshot is taken shortly after its own local midnight.
    return [
        ScheduledJob("analytics:snapshot", snapshots.snapshot_job, trigger="cron", trigger_args={"minute": 5}),
        # Scheduled reports are due on the hour; every 15 minutes sends them within a quarter of an hour.
        ScheduledJob("analytics:reports", schedule.due_reports_job, trigger="cron", trigger_args={"minute": "*/15"}),
        # The pre-computed dashboard: a refresh task when the copy is older than the setting.
        ScheduledJob("analytics:dashboard", dashboard_cache.refresh_job, trigger="cron", trigger_args={"minute": "*/5"}),
    ]


@hookimpl
def crm_task_handlers():
    return [
        TaskHandler(schedule.SEND_TASK, schedule.send_report_task, max_attempts=5),
        TaskHandler(dashboard_cache.REFRESH_TASK, dashboard_cache.refresh_task, max_attempts=3),
    ]


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Analytics", endpoint="analytics_pages.index", order=25, icon="chart")]


@hookimpl
def crm_dashboard_widgets(tenant, user):
    if not sdk.has_permission("analytics:read"):
        return []
    return [DashboardWidget(name="analytics-win-rate", title="Win rate this month", render=widget.render_win_rate, order=35, placement="summary")]
