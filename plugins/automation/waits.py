"""Waits that re-check when woken, and exit conditions.

* ``wait_no_activity``: the run waits at its step until the record has had no activity
  (a timeline entry: a call, an email in or out, a note logged as activity ...) for the
  given time, counted from the later of the wait's start and the last activity. Woken
  at the due time, the step looks again: new activity meanwhile means a new due time.
* ``wait_for_reply``: the run waits at its step until a reply comes (an inbound message
  for the record: the ``message_received`` trigger of the channels plugin, or an
  inbound timeline entry since the wait began), at most the given time. A reply ends the
  run (``on_reply = "stop"``) or goes on with the next step (``"continue"``); no reply by
  the deadline goes on with the next step.
* Exit conditions: a rule's ``exit_on`` names triggers (``message_received``,
  ``email_unsubscribed``, ``lead_converted`` ...); an occurrence of one of them for a
  run's record stops its queued or waiting runs of that rule (``guard = "exit"``). The
  rule's current ``exit_on`` applies, also to runs started on an older version (an exit
  added to a running sequence takes effect at once: that is why one adds it).

Both waits are durable as ``wait`` is: a row with ``wake_at``, woken by the
``automation:wake_due`` sweep (which queues the same step again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import fn

from crm_plugins.automation.actions import wait_delta
from crm_plugins.automation.models import AutomationRule, AutomationRun
from crmcore.sdk import Activity, atomic, utcnow

#: the trigger whose occurrence is a reply
REPLY_TRIGGER = "message_received"
#: wait steps the runner hands to :func:`check` (they stay at their step while waiting)
RECHECKING = {"wait_no_activity": "quiet", "wait_for_reply": "reply"}
STOP = object()
#: triggers about a record that cannot have runs under way (it was just created)
NO_RUNS_YET = {"record_created"}
#: every installed plugin's triggers by name (filled at startup with the signals)
KNOWN_TRIGGERS: dict[str, Any] = {}


def last_activity(entity: str, record_id: int) -> dt.datetime | None:
    return Activity.select(fn.MAX(Activity.occurred_at)).where(getattr(Activity, entity) == record_id).scalar()


def replied(entity: str, record_id: int, since: dt.datetime) -> bool:
    return Activity.select().where((getattr(Activity, entity) == record_id) & (Activity.direction == "in") & (Activity.occurred_at >= since)).exists()


def _moment(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value)[:26])  # SQLite's MAX() gives text


def check(run: AutomationRun, action: str, params: dict[str, Any], now: dt.datetime) -> Any:
    """The wait step ``action`` of ``run``: a text for the run log when it is over (go on),
    :data:`STOP` when a reply ends the run, or None when the run waits (its row updated)."""
    kind = RECHECKING[action]
    delta = wait_delta(params)
    since = run.waiting_since if run.waiting_for == kind and run.waiting_since else now
    if action == "wait_no_activity":
        last = _moment(last_activity(run.entity, run.record_id))
        quiet_from = max(since, last) if last else since
        due = quiet_from + delta
        if due <= now:
            return f"no activity since {quiet_from:%Y-%m-%d %H:%M} UTC"
        what = "no activity"
    else:
        if replied(run.entity, run.record_id, since):
            return STOP if params.get("on_reply", "stop") == "stop" else "the contact replied"
        due = since + delta
        if due <= now:
            return f"no reply since {since:%Y-%m-%d %H:%M} UTC"
        what = "a reply"
    log = list(run.log or [])
    if run.waiting_for != kind:  # the first look: say so in the run log
        log.append({"step": run.step, "action": action, "at": now.isoformat(timespec="seconds") + "Z",
                    "result": f"waiting for {what} until {due:%Y-%m-%d %H:%M:%S} UTC"})
    AutomationRun.update(status="waiting", wake_at=due, waiting_for=kind, waiting_since=since, failures=0, updated_at=now,
                         log=log).where(AutomationRun.id == run.id).execute()
    return None


def on_occurrence(tenant: Any, signal_name: str, data: dict[str, Any]) -> None:
    """A trigger's occurrence for a record: stop that record's runs whose rule exits on
    it, and wake its runs waiting for a reply when it is one. One indexed query (the
    record's runs under way) per trigger occurrence."""
    for name, trigger in KNOWN_TRIGGERS.items():
        if trigger.signal != signal_name or name in NO_RUNS_YET:
            continue
        try:
            event = trigger.event(**data)
        except Exception:  # a trigger that cannot read this sending is not an occurrence
            event = None
        if event is None:
            continue
        under_way = list(AutomationRun.select(AutomationRun, AutomationRule.exit_on, AutomationRule.name)
                         .join(AutomationRule, on=(AutomationRun.rule == AutomationRule.id))
                         .where((AutomationRun.entity == event.entity) & (AutomationRun.record_id == event.record_id)
                                & AutomationRun.status.in_(["queued", "waiting"])))
        for run in under_way:
            if name in (run.rule.exit_on or []):
                _exit(run, f"Exit: {trigger.label} ({name}).")
            elif name == REPLY_TRIGGER and run.waiting_for == "reply" and run.status == "waiting":
                _wake(tenant, run)


def _exit(run: AutomationRun, reason: str) -> None:
    now = utcnow()
    entry = {"step": run.step, "action": "exit", "at": now.isoformat(timespec="seconds") + "Z", "result": reason}
    (AutomationRun.update(status="stopped", guard="exit", error=reason, wake_at=None, waiting_for=None, waiting_since=None,
                          finished_at=now, updated_at=now, log=(run.log or []) + [entry])
     .where((AutomationRun.id == run.id) & AutomationRun.status.in_(["queued", "waiting"])).execute())


def _wake(tenant: Any, run: AutomationRun) -> None:
    """Queue the waiting step again now (claimed as the sweep claims it)."""
    from crm_plugins.automation.runs import queue_step

    with atomic():
        claimed = (AutomationRun.update(status="queued", wake_at=None, tries=AutomationRun.tries + 1, updated_at=utcnow())
                   .where((AutomationRun.id == run.id) & (AutomationRun.status == "waiting")).execute())
        if claimed:
            queue_step(tenant, AutomationRun(id=run.id, step=run.step, tries=run.tries + 1))
