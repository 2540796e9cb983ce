"""Lead and activity metrics: leads and conversion by source, lead response time
(creation to first activity) and activities per rep. One query per metric."""

from __future__ import annotations

from typing import Any

import peewee
from peewee import fn

from crm_plugins.analytics import sql
from crm_plugins.analytics.filters import Filters
from crm_plugins.analytics.registry import Column, Metric, ratio
from crmcore.sdk import Activity, Lead

# --------------------------------------------------------------------------- leads by source


def source_rows(f: Filters) -> list[dict[str, Any]]:
    converted = fn.SUM(peewee.Case(None, [(Lead.status == "converted", 1)], 0))
    query = sql.leads(f, Lead.source, fn.COUNT(Lead.id), converted).group_by(Lead.source).tuples()
    rows = [{"key": source, "label": source, "leads": int(count), "converted": int(conv or 0), "conversion": ratio(conv or 0, count)} for source, count, conv in query]
    rows.sort(key=lambda r: (-r["leads"], r["label"]))
    total, conv = sum(r["leads"] for r in rows), sum(r["converted"] for r in rows)
    rows.append({"key": sql.ALL, "label": "Total", "leads": total, "converted": conv, "conversion": ratio(conv, total)})
    return rows


def source_records(f: Filters, key: str) -> Any:
    query = sql.leads(f, Lead.id)
    return query if key == sql.ALL else query.where(Lead.source == key)


# --------------------------------------------------------------------------- response time


def _first_activity() -> Any:
    return Activity.select(Activity.lead.alias("lead_id"), fn.MIN(Activity.occurred_at).alias("first_at")).where(Activity.lead.is_null(False)).group_by(Activity.lead).alias("first_activity")


def response_rows(f: Filters) -> list[dict[str, Any]]:
    first = _first_activity()
    query = (
        sql.leads(f, Lead.owner, fn.COUNT(Lead.id), fn.COUNT(first.c.first_at), fn.SUM(sql.seconds_between(first.c.first_at, Lead.created_at)))
        .join(first, peewee.JOIN.LEFT_OUTER, on=(first.c.lead_id == Lead.id))
        .group_by(Lead.owner)
        .tuples()
    )
    raw = [(owner, int(count), int(answered or 0), float(seconds or 0)) for owner, count, answered, seconds in query]
    names = sql.user_names(owner for owner, *_ in raw)
    rows = [_response_row(sql.owner_key(owner), names.get(owner, "(no owner)") if owner else "(no owner)", *figures) for owner, *figures in raw]
    rows.sort(key=lambda r: r["label"].lower())
    rows.append(_response_row(sql.ALL, "Total", sum(r["leads"] for r in rows), sum(r["responded"] for r in rows), sum(r["_seconds"] for r in rows)))
    return rows


def _response_row(key: str, label: str, leads: int, responded: int, seconds: float) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "leads": leads,
        "responded": responded,
        "not_responded": leads - responded,
        "avg_hours": round(seconds / responded / 3600, 2) if responded else None,
        "_seconds": seconds,
    }


def response_records(f: Filters, key: str) -> Any:
    return sql.leads(f, Lead.id).where(sql.owner_condition(Lead.owner, key))


# --------------------------------------------------------------------------- activities per rep


def activity_rows(f: Filters) -> list[dict[str, Any]]:
    def kind(name: str) -> Any:
        return fn.SUM(peewee.Case(None, [(Activity.kind == name, 1)], 0))

    query = sql.activities(f, Activity.user, fn.COUNT(Activity.id), kind("call"), kind("email"), kind("meeting")).group_by(Activity.user).tuples()
    raw = [(user, int(count), int(calls or 0), int(emails or 0), int(meetings or 0)) for user, count, calls, emails, meetings in query]
    names = sql.user_names(user for user, *_ in raw)
    days = f.days()
    rows = [_activity_row(sql.owner_key(user), names.get(user, "(nobody)") if user else "(nobody)", days, *figures) for user, *figures in raw]
    rows.sort(key=lambda r: r["label"].lower())
    rows.append(_activity_row(sql.ALL, "Total", days, *(sum(r[k] for r in rows) for k in ("activities", "calls", "emails", "meetings"))))
    return rows


def _activity_row(key: str, label: str, days: int | None, count: int, calls: int, emails: int, meetings: int) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "activities": count,
        "calls": calls,
        "emails": emails,
        "meetings": meetings,
        "per_day": round(count / days, 2) if days else None,
        "per_week": round(count * 7 / days, 2) if days else None,
    }


def activity_records(f: Filters, key: str) -> Any:
    return sql.activities(f, Activity.id).where(sql.owner_condition(Activity.user, key))


LEADS_NOTE = "The pipeline and currency filters do not apply to leads."

METRICS = [
    Metric(
        "lead-sources",
        "Leads and conversion by source",
        "Leads created in the range, per source: how many, how many are converted now (status converted), and the "
        "conversion rate, converted ÷ leads. " + LEADS_NOTE,
        "lead",
        (Column("leads", "Leads"), Column("converted", "Converted"), Column("conversion", "Conversion", "percent")),
        source_rows,
        source_records,
        chart_column="leads",
        chart_type="doughnut",
        filters=("date", "owner", "source"),
        date_applies_to="lead created",
    ),
    Metric(
        "response-time",
        "Lead response time",
        "Leads created in the range, per owner: how many, how many have an activity (a call, an email, a meeting ...), "
        "and the average hours from the lead's creation to its first activity, over the leads that have one. "
        + LEADS_NOTE,
        "lead",
        (Column("leads", "Leads"), Column("responded", "With an activity"), Column("not_responded", "Without"), Column("avg_hours", "Average hours to first activity", "hours")),
        response_rows,
        response_records,
        chart_column="avg_hours",
        filters=("date", "owner", "source"),
        date_applies_to="lead created",
    ),
    Metric(
        "activities",
        "Activities per rep",
        "Activities that took place in the range, per user who logged them: all of them, the calls, emails and meetings "
        "among them, and per day and per week of the range (only with a range of dates). The owner filter picks the "
        "user; the pipeline, source and currency filters do not apply.",
        "activity",
        (Column("activities", "Activities"), Column("calls", "Calls"), Column("emails", "Emails"), Column("meetings", "Meetings"), Column("per_day", "Per day", "decimal"), Column("per_week", "Per week", "decimal")),
        activity_rows,
        activity_records,
        chart_column="activities",
        filters=("date", "owner"),
        date_applies_to="activity took place",
    ),
]
