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

from crm_plugins.automation import conditions
from crm_plugins.automation.actions import MODELS
from crm_plugins.automation.contrib import AutomationTrigger
from crm_plugins.automation.models import AutomationFired, AutomationRule
from crmcore import sdk
from crmcore.sdk import Activity, atomic, tag_names, utcnow

BATCH = 500  # records per rule per sweep; the rest fire on the next sweeps
ENTITIES = ("lead", "contact", "company", "deal")


def _never(**_: Any) -> None:
    return None  # not started by a signal


TIME_TRIGGERS = (
    AutomationTrigger("date_reached", "", "A date field is reached (± days)", ENTITIES, _never,
                      options={"field": "the date or time field", "offset_days": "days after it (negative: before)"}),
    AutomationTrigger("inactive", "", "No activity for some days", ENTITIES, _never, options={"days": "days without activity"}),
)
NAMES = tuple(t.name for t in TIME_TRIGGERS)


def date_fields(entity: str) -> list[str]:
    model = MODELS[entity]
    return [f.name for f in model._meta.sorted_fields if isinstance(f, (peewee.DateField, peewee.DateTimeField))]


def check_options(trigger_type: str, entity: str, options: dict[str, Any]) -> dict[str, list[str]]:
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
    return errors


def _due_query(rule: AutomationRule, now: dt.datetime, window_hours: float) -> Any:
    """(id, occurrence as text) of the rule's due records not fired for it, oldest first."""
    model = MODELS[rule.entity]
    options = rule.trigger.get("options") or {}
    if rule.trigger_type == "date_reached":
        field = getattr(model, options["field"])
        due = now - dt.timedelta(days=int(options.get("offset_days") or 0))
        since = due - dt.timedelta(hours=window_hours)
        if isinstance(field, peewee.DateTimeField):
            bounds = (field <= due) & (field > since)
        else:  # a date: due on its day
            bounds = (field <= due.date()) & (field > since.date())
        occurrence = peewee.Cast(field, "TEXT")
    else:
        last = (Activity.select(peewee.fn.MAX(Activity.occurred_at)).where(getattr(Activity, rule.entity) == model.id))
        moment = peewee.fn.COALESCE(last, model.created_at)
        bounds = moment <= now - dt.timedelta(days=int(options["days"]))
        occurrence = peewee.Cast(moment, "TEXT")
    fired = AutomationFired.select(AutomationFired.id).where(
        (AutomationFired.rule == rule.id) & (AutomationFired.record_id == model.id) & (AutomationFired.occurrence == occurrence))
    return (model.select(model.id, occurrence.alias("occurrence")).where(bounds & ~peewee.fn.EXISTS(fired))
            .order_by(model.id).limit(BATCH).tuples())


def sweep(tenant: Any) -> int:
    """Scheduled every minute: start the runs of time rules that came due; returns how
    many started. A constant number of queries per active time rule."""
    from crm_plugins.automation import runs

    settings = sdk.settings(tenant, "automation")
    now = utcnow()
    started = 0
    for rule in AutomationRule.select().where((AutomationRule.status == "active") & AutomationRule.trigger_type.in_(NAMES)):
        model = MODELS[rule.entity]
        with atomic():
            due = list(_due_query(rule, now, settings["time_window_hours"]))
            if not due:
                continue
            claimed = dict(AutomationFired.insert_many([{"tenant": tenant.id, "rule": rule.id, "record_id": rid, "occurrence": occ} for rid, occ in due])
                           .on_conflict_ignore().returning(AutomationFired.record_id, AutomationFired.occurrence).tuples().execute())
            records = list(model.select().where(model.id.in_(list(claimed))))
            tags = tag_names(rule.entity, [r.id for r in records]) if conditions.needs_tags(rule.conditions) else {}
            fields = conditions.record_fields(model)
            for record in records:
                values = conditions.values_of(record, fields, tags.get(record.id), {"occurrence": claimed[record.id]})
                if conditions.evaluate(rule.conditions, values):
                    runs.start(tenant, rule, rule.entity, record.id, rule.trigger_type)
                    started += 1
    return started
