"""The ``schedule`` trigger: a rule fires on a cron schedule, in the tenant's time zone,
for every record that matches its conditions at that moment.

``options.cron`` is a five-field crontab (``0 9 * * mon-fri``) or a phrase:
``every weekday 9:00``, ``every day at 8:30``, ``every monday 7:15``, ``every weekend
10:00``, ``every hour``. The time zone is the tenant's ``timezone`` setting (IANA name,
``UTC`` by default), so "9:00" is nine in the morning there, summer and winter.

The time-trigger sweep asks :func:`latest_occurrence` for the newest firing that is due
(not older than ``time_window_hours``, not before the rule was last saved or switched
on), selects the matching records in SQL and claims ``(rule, record, occurrence)`` in
``automation_fired``: two processes sweeping at once, or a sweep repeated after a
takeover, fire an occurrence once per record. APScheduler's cron arithmetic (already a
dependency) computes the firings; nothing a user typed is evaluated.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

#: firings looked at per sweep, at most (an every-minute schedule over a 24-hour window)
MAX_STEPS = 3000
DAYS = {"day": "*", "weekday": "mon-fri", "weekend": "sat,sun", **{d: d[:3] for d in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}}
_PHRASE = re.compile(r"^every\s+(?P<days>[a-z]+)\s+(?:at\s+)?(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?$")


def to_crontab(text: str) -> str:
    """The crontab of a phrase (``every weekday 9:00`` -> ``0 9 * * mon-fri``); a
    crontab is returned as it is. Raises ValueError for a phrase it does not know."""
    cleaned = " ".join(str(text).strip().lower().split())
    if not cleaned.startswith("every"):
        return cleaned
    if cleaned == "every hour":
        return "0 * * * *"
    match = _PHRASE.match(cleaned)
    if match is None or match["days"] not in DAYS:
        raise ValueError("Say 'every day|weekday|weekend|monday ... HH:MM', 'every hour', or give a crontab (minute hour day month weekday).")
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    if hour > 23 or minute > 59:
        raise ValueError("A time from 0:00 to 23:59.")
    return f"{minute} {hour} * * {DAYS[match['days']]}"


def cron_trigger(text: str, timezone: str) -> CronTrigger:
    """Raises ValueError (with a message for the user) for a bad expression."""
    crontab = to_crontab(text)
    if len(crontab.split()) != 5:
        raise ValueError("A crontab has five fields: minute hour day month weekday (e.g. '0 9 * * mon-fri').")
    try:
        return CronTrigger.from_crontab(crontab, timezone=zoneinfo.ZoneInfo(timezone))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"Not a valid schedule: {exc}.") from None


def check_options(options: dict[str, Any], timezone: str) -> dict[str, list[str]]:
    text = options.get("cron")
    if not isinstance(text, str) or not text.strip():
        return {"trigger.options.cron": ["Required: a crontab ('0 9 * * mon-fri') or a phrase ('every weekday 9:00')."]}
    try:
        cron_trigger(text, timezone)
    except ValueError as exc:
        return {"trigger.options.cron": [str(exc)]}
    return {}


def latest_occurrence(text: str, timezone: str, since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The newest firing in ``(since, now]`` (naive UTC in and out), or None."""
    trigger = cron_trigger(text, timezone)
    utc = dt.timezone.utc
    # a crontab fires at most once a minute: MAX_STEPS minutes back always reach the newest
    start = max(since, now - dt.timedelta(minutes=MAX_STEPS - 1)).replace(tzinfo=utc)
    end = now.replace(tzinfo=utc)
    latest = None
    moment = trigger.get_next_fire_time(None, start + dt.timedelta(seconds=1))
    for _ in range(MAX_STEPS):
        if moment is None or moment > end:
            break
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + dt.timedelta(seconds=1))
    return latest.astimezone(utc).replace(tzinfo=None) if latest is not None else None
