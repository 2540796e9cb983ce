"""Saved reports: a metric with its grouping and filters, kept per user (personal) or
shared with the tenant, optionally emailed on a schedule.

A report keeps either fixed days (``date_from``/``date_to``) or a rolling ``date_preset``
("last 7 days", "this quarter" ...), resolved in the tenant's time zone (quarters and
years of its fiscal year) each time the report runs or is reopened. Everyone who reads the analytics may save reports and see
their own and the shared ones; only the owner (or an admin) changes or deletes one.

A schedule is weekly (a weekday) or monthly (a day, 1-28) at an hour of the tenant's time
zone; ``next_run_at`` is the next occurrence in UTC, so the due reports are one indexed
query (see ``schedule.py``).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_plugins.analytics import filters, metrics
from crm_plugins.analytics.filters import SANE_DAYS
from crm_plugins.analytics.models import DATE_PRESETS, SCHEDULES, SavedReport
from crmcore import sdk
from crmcore.sdk import Team, User

#: Groupings a metric's rows may have; metrics not listed have only ``default``.
GROUPINGS = {"forecast": ("month", "quarter"), "forecast-accuracy": ("month",)}
ID = validate.Range(min=1, max=2**31 - 1)


class ReportInput(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    metric = fields.String(required=True, validate=validate.OneOf(list(metrics.METRICS)))
    grouping = fields.String(load_default="default", validate=validate.Length(max=20), metadata={"description": "The forecast: month or quarter; other metrics: default."})
    shared = fields.Boolean(load_default=False, metadata={"description": "Shared with everyone of the tenant who reads the analytics; personal otherwise."})
    date_preset = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DATE_PRESETS), metadata={"description": "A rolling range resolved in the tenant's time zone when the report runs; excludes date_from/date_to."})
    date_from = fields.Date(load_default=None, allow_none=True, validate=SANE_DAYS)
    date_to = fields.Date(load_default=None, allow_none=True, validate=SANE_DAYS)
    owner_id = fields.Integer(load_default=None, allow_none=True, validate=ID, metadata={"description": "The metric's owner filter."})
    team_id = fields.Integer(load_default=None, allow_none=True, validate=ID, metadata={"description": "The metric's team filter."})
    pipeline_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    source = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=30))
    currency = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    schedule = fields.String(load_default="none", validate=validate.OneOf(SCHEDULES), metadata={"description": "none, weekly (on `weekday`) or monthly (on `month_day`), at `hour` of the tenant's time zone."})
    weekday = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=6), metadata={"description": "0 = Monday."})
    month_day = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=28))
    hour = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=23))
    recipients = fields.List(fields.Integer(validate=ID), load_default=list, validate=validate.Length(max=50), metadata={"description": "User ids who get the scheduled email."})

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("date_preset") and (data.get("date_from") or data.get("date_to")):
            errors["date_preset"] = ["Either a preset or fixed days, not both."]
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            errors["date_to"] = ["Must not be before date_from."]
        if data.get("metric") and data.get("grouping", "default") not in GROUPINGS.get(data["metric"], ("default",)):
            errors["grouping"] = [f"One of: {', '.join(GROUPINGS.get(data['metric'], ('default',)))}."]
        schedule = data.get("schedule", "none")
        if schedule != "none":
            if data.get("hour") is None:
                errors["hour"] = ["A scheduled report needs an hour (0-23)."]
            if schedule == "weekly" and data.get("weekday") is None:
                errors["weekday"] = ["A weekly report needs a weekday (0 = Monday)."]
            if schedule == "monthly" and data.get("month_day") is None:
                errors["month_day"] = ["A monthly report needs a day of the month (1-28)."]
            if not data.get("recipients"):
                errors["recipients"] = ["A scheduled report needs at least one recipient."]
        if errors:
            raise ValidationError(errors)


def filter_args(report: SavedReport, today: dt.date | None = None) -> dict[str, Any]:
    """The report's filters as the metrics' query arguments, its preset resolved."""
    tenant = sdk.current_tenant()
    zone = zoneinfo.ZoneInfo(sdk.settings(tenant, filters.PLUGIN)["time_zone"])
    date_from, date_to = report.date_from, report.date_to
    if report.date_preset:
        fiscal_start = sdk.settings(tenant, filters.PLUGIN)["fiscal_year_start_month"]
        date_from, date_to = filters.preset_range(report.date_preset, today or dt.datetime.now(zone).date(), fiscal_start)
    args = {"date_from": date_from, "date_to": date_to, "owner_id": report.owner_filter, "team_id": report.team_filter, "pipeline_id": report.pipeline_id, "source": report.source, "currency": report.currency}
    if report.grouping in ("month", "quarter"):
        args["period"] = report.grouping
    return {k: v for k, v in args.items() if v is not None}


def run(report: SavedReport, today: dt.date | None = None) -> dict[str, Any]:
    """The report's metric computed with its filters (as ``GET /analytics/<metric>``)."""
    return metrics.result(metrics.METRICS[report.metric], filters.build(filter_args(report, today)))


def next_occurrence(report: SavedReport, after_utc: dt.datetime, time_zone: str) -> dt.datetime | None:
    """The first scheduled time strictly after ``after_utc`` (naive UTC), or None unscheduled."""
    if report.schedule == "none" or report.hour is None:
        return None
    zone = zoneinfo.ZoneInfo(time_zone)
    local = after_utc.replace(tzinfo=dt.UTC).astimezone(zone)
    day = local.date()
    for _ in range(62):
        if (report.schedule == "weekly" and day.weekday() == report.weekday) or (report.schedule == "monthly" and day.day == report.month_day):
            at = dt.datetime.combine(day, dt.time(report.hour), tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
            if at > after_utc:
                return at
        day += dt.timedelta(days=1)
    return None


def visible() -> Any:
    """Reports the current user sees: theirs and the shared ones."""
    return SavedReport.select().where((SavedReport.owner == sdk.current_user_id()) | (SavedReport.shared == True)).order_by(SavedReport.name, SavedReport.id)  # noqa: E712


def may_change(report: SavedReport) -> bool:
    return report.owner_id == sdk.current_user_id() or sdk.current_role() == "admin"


def save(data: dict[str, Any], report: SavedReport | None = None) -> SavedReport:
    """Create or replace a report from loaded :class:`ReportInput` data (422s as ValidationError)."""
    wanted = {i for i in (data.get("recipients") or [])} | ({data["owner_id"]} if data.get("owner_id") else set())
    if wanted:
        known = {uid for (uid,) in User.select(User.id).where(User.id.in_(list(wanted))).tuples()}
        missing = wanted - known
        if missing & set(data.get("recipients") or []):
            raise ValidationError({"recipients": [f"No such users in this tenant: {sorted(missing & set(data['recipients']))}."]})
        if data.get("owner_id") in missing:
            raise ValidationError({"owner_id": ["No such user in this tenant."]})
    if data.get("team_id") is not None and not Team.select().where(Team.id == data["team_id"]).exists():
        raise ValidationError({"team_id": ["No such team in this tenant."]})
    if report is None and sdk.current_user_id() is None:
        raise ValidationError({"user": ["This token belongs to no user: a saved report is a user's."]})
    report = report or SavedReport(owner=sdk.current_user_id())
    report.name, report.metric, report.grouping, report.shared = data["name"], data["metric"], data.get("grouping") or "default", data.get("shared", False)
    report.date_preset, report.date_from, report.date_to = data.get("date_preset"), data.get("date_from"), data.get("date_to")
    report.team_filter = data.get("team_id")
    report.owner_filter, report.pipeline_id, report.source, report.currency = data.get("owner_id"), data.get("pipeline_id"), data.get("source"), data.get("currency")
    report.schedule, report.hour = data.get("schedule", "none"), data.get("hour")
    report.weekday = data.get("weekday") if report.schedule == "weekly" else None
    report.month_day = data.get("month_day") if report.schedule == "monthly" else None
    report.recipients = sorted(set(data.get("recipients") or []))
    report.next_run_at = next_occurrence(report, sdk.utcnow(), sdk.settings(sdk.current_tenant(), filters.PLUGIN)["time_zone"])
    with sdk.atomic():
        report.save()
    return report


def describe(report: SavedReport, email_on: bool) -> dict[str, Any]:
    """A report as the API and the page show it."""
    return {
        "id": report.id, "name": report.name, "metric": report.metric, "grouping": report.grouping, "shared": report.shared, "owner_user_id": report.owner_id,
        "date_preset": report.date_preset, "date_from": report.date_from, "date_to": report.date_to, "owner_id": report.owner_filter, "team_id": report.team_filter,
        "pipeline_id": report.pipeline_id, "source": report.source, "currency": report.currency,
        "schedule": report.schedule, "weekday": report.weekday, "month_day": report.month_day, "hour": report.hour, "recipients": list(report.recipients or []),
        "next_run_at": report.next_run_at,
        "schedule_status": "none" if report.schedule == "none" else ("active" if email_on else "needs the email plugin"),
    }


def email_on(tenant: Any = None) -> bool:
    """Whether the tenant has the email plugin on (scheduled reports are sent through it and
    the channels plugin's outbox)."""
    tenant = tenant if tenant is not None else sdk.current_tenant()
    return sdk.is_enabled(tenant, "email") and sdk.is_enabled(tenant, "channels")
