"""Time triggers, found in SQL by a sweep every minute (never a loop over every record):

* ``date_reached``: a date field plus ``offset_days`` (negative: before it) is reached,
  e.g. 3 days before ``expected_close_date``. Only occurrences due within the last
  ``time_window_hours`` fire, so a new rule does not fire for dates long past.
* ``inactive``: no activity logged on the record for ``days`` days (its creation counts
  as activity), e.g. a stale deal; conditions add "while in stage X".

One query per active time rule finds the due records that have not fired for this
occurrence; the occurrence (the date's value, or the time of the last activity) is
claimed in ``automation_fired`` with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so
each fires once, and again only when the date or the last activity changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee

from crm_plugins.automation import schedules, sql_conditions
from crm_plugins.automation.actions import MODELS
from crm_plugins.automation.contrib import AutomationTrigger
from crm_plugins.automation.models import AutomationFired, AutomationRule
from crmcore import sdk
from crmcore.sdk import Activity, atomic, utcnow

BATCH = 500  # records per rule per sweep; the rest fire on the next sweeps
ENTITIES = ("lead", "contact", "company", "deal")


def _never(**_: Any) -> None:
    return None  # not started by a signal


TIME_TRIGGERS = (
    AutomationTrigger("date_reached", "", "A date field is reached (± days)", ENTITIES, _never,
                      options={"field": "the date or time field", "offset_days": "days after it (negative: before)"}),
    AutomationTrigger("inactive", "", "No activity for some days", ENTITIES, _never, options={"days": "days without activity"}),
    AutomationTrigger("schedule", "", "On a schedule (every matching record)", ENTITIES, _never,
                      options={"cron": "a crontab ('0 9 * * mon-fri') or 'every weekday 9:00', in the tenant's time zone"}),
)
NAMES = tuple(t.name for t in TIME_TRIGGERS)


def date_fields(entity: str) -> list[str]:
    model = MODELS[entity]
    return [f.name for f in model._meta.sorted_fields if isinstance(f, (peewee.DateField, peewee.DateTimeField))]


def check_options(trigger_type: str, entity: str, options: dict[str, Any], timezone: str = "UTC") -> dict[str, list[str]]:
    """Errors by path of a time trigger's options (empty: fine)."""
    errors: dict[str, list[str]] = {}

    def integer(key: str, low: int, high: int, required: bool) -> None:
        value = options.get(key)
        if value in (None, ""):
            if required:
                errors[f"trigger.options.{key}"] = ["Required."]
            return
        try:
            if not low <= int(value) <= high:
                raise ValueError
        except (TypeError, ValueError):
            errors[f"trigger.options.{key}"] = [f"A whole number from {low} to {high}."]

    if trigger_type == "date_reached":
        if options.get("field") not in date_fields(entity):
            errors["trigger.options.field"] = [f"One of {', '.join(date_fields(entity))}."]
        integer("offset_days", -365, 365, False)
    elif trigger_type == "inactive":
        integer("days", 1, 3650, True)
    elif trigger_type == "schedule":
        errors.update(schedules.check_options(options, timezone))
    return errors


def _due_query(rule: AutomationRule, now: dt.datetime, settings: Any) -> Any:
    """(id, occurrence as text) of the rule's due records that match its conditions and
    have not fired for it, oldest first: one query (None: no occurrence is due)."""
    model = MODELS[rule.entity]
    options = rule.trigger.get("options") or {}
    window_hours = settings["time_window_hours"]
    if rule.trigger_type == "date_reached":
        field = getattr(model, options["field"])
        due = now - dt.timedelta(days=int(options.get("offset_days") or 0))
        since = due - dt.timedelta(hours=window_hours)
        if isinstance(field, peewee.DateTimeField):
            bounds = (field <= due) & (field > since)
        else:  # a date: due on its day
            bounds = (field <= due.date()) & (field > since.date())
        occurrence = peewee.Cast(field, "TEXT")
    elif rule.trigger_type == "inactive":
        last = (Activity.select(peewee.fn.MAX(Activity.occurred_at)).where(getattr(Activity, rule.entity) == model.id))
        moment = peewee.fn.COALESCE(last, model.created_at)
        bounds = moment <= now - dt.timedelta(days=int(options["days"]))
        occurrence = peewee.Cast(moment, "TEXT")
    else:  # schedule: every matching record, once per firing
        since = max(now - dt.timedelta(hours=window_hours), rule.updated_at)
        firing = schedules.latest_occurrence(options["cron"], settings["timezone"], since, now)
        if firing is None:
            return None
        bounds = sql_conditions.TRUE
        occurrence = peewee.Value(firing.isoformat(sep=" "))
    matching = sql_conditions.compile_tree(rule.conditions, model, rule.entity, facts={"occurrence": occurrence})
    fired = AutomationFired.select(AutomationFired.id).where(
        (AutomationFired.rule == rule.id) & (AutomationFired.record_id == model.id) & (AutomationFired.occurrence == occurrence))
    return (model.select(model.id, occurrence.alias("occurrence")).where(bounds & matching & ~peewee.fn.EXISTS(fired))
            .order_by(model.id).limit(BATCH).tuples())


def sweep(tenant: Any) -> int:
    """Scheduled every minute: start the runs of time rules that came due for the records
    matching their conditions (found in SQL); returns how many started. A constant number
    of queries per active time rule, plus the runs' own."""
    from crm_plugins.automation import runs

    settings = sdk.settings(tenant, "automation")
    now = utcnow()
    started = 0
    for rule in AutomationRule.select().where((AutomationRule.status == "active") & AutomationRule.trigger_type.in_(NAMES)):
        with atomic():
            query = _due_query(rule, now, settings)
            due = list(query) if query is not None else []
            if not due:
                continue
            claimed = list(AutomationFired.insert_many([{"tenant": tenant.id, "rule": rule.id, "record_id": rid, "occurrence": occ} for rid, occ in due])
                       .on_conflict_ignore().returning(AutomationFired.record_id).tuples().execute())
            for (record_id,) in claimed:
                runs.start(tenant, rule, rule.entity, record_id, rule.trigger_type)
                started += 1
    return started
