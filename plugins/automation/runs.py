"""Runs: started by a task that signal receivers queue (one row in the sender's
transaction; the task writes the runs and queues their first steps), advanced one step
per task, woken from waits by a sweep.

Exactly once per step: a step task carries ``(run_id, step, tries)`` (also its
idempotency key) and runs its action in one transaction that first claims the run with
``UPDATE ... WHERE step = <step> AND tries = <tries> AND status = 'queued'`` and ends by
advancing it; a duplicate or late task finds nothing to claim, a killed worker's attempt
rolls back whole. Signals the step's writes send go out at that commit, while the run's
causal chain is the current one, so runs they start carry it (the depth guard).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from crm_plugins.automation import conditions, field_paths, rules, waits
from crm_plugins.automation.actions import MODELS, wait_delta
from crm_plugins.automation.contrib import ActionCall, StopRun
from crm_plugins.automation.models import AutomationRule, AutomationRuleVersion, AutomationRun
from crmcore import sdk
from crmcore.sdk import atomic, enqueue, enqueue_many, payload_of, tag_names, utcnow

log = logging.getLogger("crm_plugins.automation")

STEP_TASK = "automation.step"
START_TASK = "automation.start"
PLUGIN = "automation"
#: rule ids of the run whose step is executing (its writes' signals start runs with it)
_chain: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("automation_chain", default=None)


def _settings(tenant: Any) -> Any:
    return sdk.settings(tenant, PLUGIN)


# --------------------------------------------------------------------------- starting


def on_signal(signal_name: str) -> Any:
    """The receiver of one signal: find the active rules of the triggers it announces
    (one query; nothing more when there are none), test each, start the matching."""

    def receiver(tenant: Any, **data: Any) -> None:
        names = trigger_names_by_signal().get(signal_name, ())
        waits.on_occurrence(tenant, signal_name, data)
        candidates = active_rules(names)
        if not candidates:
            return
        known = rules.triggers(tenant)
        events: dict[str, Any] = {}  # trigger type -> this sending as its event
        values: dict[tuple[str, int, bool], dict[str, Any] | None] = {}  # (entity, id, with tags) -> condition values
        matched: list[tuple[AutomationRule, Any]] = []
        for rule in candidates:
            trigger = known.get(rule.trigger_type)
            if trigger is None:
                rules.set_status(rule, "paused", f"Its trigger {rule.trigger_type!r} is not available (plugin turned off?).")
                continue
            if rule.trigger_type not in events:
                events[rule.trigger_type] = trigger.event(**data)
            event = events[rule.trigger_type]
            if event is None or event.entity != rule.entity:
                continue
            if trigger.matches is not None and not trigger.matches(rule.trigger.get("options") or {}, event):
                continue
            with_tags = rule.needs_tags
            key = (event.entity, event.record_id, with_tags)
            if key not in values:
                values[key] = _condition_values(event, data, with_tags)
            if values[key] is None:
                continue
            tested = values[key]
            if conditions.needs_extra(rule.conditions):  # related records, custom fields, score
                record = values[key]["_record"]
                tested = {**tested, **field_paths.extra_values(event.entity, [record], rule.conditions)[record.id]}
            if conditions.evaluate(rule.conditions, tested):
                matched.append((rule, event))
        if matched:  # one task row in the sender's transaction; the worker writes the runs
            enqueue(START_TASK, {"chain": _chain.get() or [], "runs": [[rule.id, rule.version, event.entity, event.record_id, rule.trigger_type]
                                                                      for rule, event in matched]}, tenant=tenant)

    receiver.__name__ = f"automation_on_{signal_name}"
    return receiver


def _condition_values(event: Any, data: dict[str, Any], with_tags: bool) -> dict[str, Any] | None:
    """What conditions test, for the event's record (the one the signal carries when it
    is that record, else read); None when the record is gone."""
    model = MODELS[event.entity]
    given = data.get("record") or data.get(event.entity)
    record = given if isinstance(given, model) and given.id == event.record_id else model.get_or_none(model.id == event.record_id)
    if record is None:
        return None
    tags = tag_names(event.entity, [record.id])[record.id] if with_tags else None
    values = conditions.values_of(record, conditions.record_fields(model), tags, event.facts)
    values["_record"] = record  # for the extra fields of the rules that name some
    return values


@dataclass(frozen=True)
class ActiveRule:
    """What a receiver needs of an active rule (parsed once per version, see below)."""

    id: int
    version: int
    entity: str
    trigger_type: str
    trigger: dict[str, Any]
    conditions: dict[str, Any]
    needs_tags: bool


#: (database, rule id, version, updated_at) -> the rule parsed: a version never changes,
#: so receivers read only those columns of the active rules (one small query) and parse a
#: rule's JSON once per process (updated_at and the database tell apart rules of other
#: databases in one process: tests, benchmarks). Cleared when it grows past _PARSED_MAX.
_parsed: dict[tuple[Any, ...], ActiveRule] = {}
_PARSED_MAX = 20_000


def active_rules(trigger_names: tuple[str, ...]) -> list[ActiveRule]:
    """The tenant's active rules of these triggers: one query of their keys, and one more
    only for rules this process has not parsed yet."""
    if not trigger_names:
        return []
    where = id(sdk.database.obj)
    keys = [(where, *row) for row in AutomationRule.select(AutomationRule.id, AutomationRule.version, AutomationRule.updated_at)
            .where((AutomationRule.status == "active") & AutomationRule.trigger_type.in_(trigger_names)).tuples()]
    missing = [key[1] for key in keys if key not in _parsed]
    if missing:
        if len(_parsed) > _PARSED_MAX:
            _parsed.clear()
        for rule in AutomationRule.select().where(AutomationRule.id.in_(missing)):
            _parsed[(where, rule.id, rule.version, rule.updated_at)] = ActiveRule(
                rule.id, rule.version, rule.entity, rule.trigger_type, rule.trigger or {}, rule.conditions or {}, conditions.needs_tags(rule.conditions))
    return [_parsed[key] for key in keys if key in _parsed]


_BY_SIGNAL: dict[str, tuple[str, ...]] = {}


def trigger_names_by_signal() -> dict[str, tuple[str, ...]]:
    """signal name -> trigger names, over every installed plugin (filled at startup)."""
    return _BY_SIGNAL


def learn_triggers(found: list[Any]) -> None:
    by: dict[str, set[str]] = {}
    for trigger in found:
        by.setdefault(trigger.signal, set()).add(trigger.name)
        waits.KNOWN_TRIGGERS.setdefault(trigger.name, trigger)
    for signal_name, names in by.items():
        _BY_SIGNAL[signal_name] = tuple(sorted(set(_BY_SIGNAL.get(signal_name, ())) | names))


@dataclass(frozen=True)
class RuleVersion:
    """The rule (and the version of it) a fact matched, as a start task carries it."""

    id: int
    version: int


def start_matched(task: Any) -> None:
    """The ``automation.start`` task (transactional: its runs and their first step tasks
    commit with the task's done mark, so exactly once). A receiver only queues this task,
    one row in the sender's transaction (the outbox: a rollback leaves nothing); the runs
    start under the chain of the run whose step sent the fact (the depth guard)."""
    p = payload_of(task)
    tenant = sdk.current_tenant()
    wanted = p.get("runs") or []
    existing = {row[0] for row in AutomationRule.select(AutomationRule.id).where(AutomationRule.id.in_([item[0] for item in wanted])).tuples()}
    token = _chain.set(p.get("chain") or None)
    try:
        for rule_id, version, entity, record_id, trigger in wanted:
            if rule_id in existing:  # a rule deleted meanwhile starts nothing
                start(tenant, RuleVersion(rule_id, version), entity, record_id, trigger)
    finally:
        _chain.reset(token)


def start(tenant: Any, rule: AutomationRule | RuleVersion, entity: str, record_id: int, trigger: str) -> AutomationRun:
    """A new run of ``rule`` (its current version) for a record, unless a loop guard
    stops it (then the run row says which guard and why)."""
    settings = _settings(tenant)
    parent = _chain.get() or []
    chain = parent + [rule.id]
    now = utcnow()
    with _one_transaction():
        guard = error = None
        if len(chain) > settings["max_depth"]:
            guard, error = "depth", f"Stopped: caused by a chain of {len(parent)} runs (rules {parent}); the limit is {settings['max_depth']}."
        elif trigger != "record_created":  # a record is created once: no count needed
            recent = AutomationRun.select().where((AutomationRun.rule == rule.id) & (AutomationRun.record_id == record_id)
                                                  & (AutomationRun.created_at > now - dt.timedelta(hours=1)) & (AutomationRun.guard.is_null())).count()
            if recent >= settings["runs_per_record_per_hour"]:
                guard, error = "rate_limit", f"Stopped: {recent} runs of this rule for this record in the last hour (limit {settings['runs_per_record_per_hour']})."
        run = AutomationRun.create(rule=rule.id, version=rule.version, entity=entity, record_id=record_id, trigger=trigger,
                                   chain=parent, depth=len(chain), status="stopped" if guard else "queued", guard=guard, error=error,
                                   finished_at=now if guard else None)
        if guard is None:
            queue_step(tenant, run)
    return run


def _one_transaction() -> Any:
    """A transaction, unless one is open: a receiver in the sender's transaction (the
    core gives it a savepoint already) or a sweep's. A savepoint more per run cost two
    round trips each on the create path, and nothing here catches an error between them."""
    return contextlib.nullcontext() if sdk.database.in_transaction() else atomic()


def queue_step(tenant: Any, run: AutomationRun, delay: float = 0.0) -> None:
    enqueue(STEP_TASK, {"run_id": run.id, "step": run.step, "tries": run.tries}, tenant=tenant,
            idempotency_key=f"automation:run:{run.id}:{run.step}:{run.tries}",
            run_at=utcnow() + dt.timedelta(seconds=delay) if delay else None)


# --------------------------------------------------------------------------- steps


def definition_of(run: AutomationRun) -> dict[str, Any]:
    version = AutomationRuleVersion.get_or_none((AutomationRuleVersion.rule == run.rule_id) & (AutomationRuleVersion.version == run.version))
    return version.definition if version is not None else {}


def run_step(task: Any) -> None:
    """The ``automation.step`` task (not transactional: it holds its own transaction so
    that its signals go out while the run's chain is current)."""
    p = payload_of(task)
    tenant = sdk.current_tenant()
    run = AutomationRun.get_or_none(AutomationRun.id == p["run_id"])
    if run is None or run.status != "queued" or run.step != p["step"] or run.tries != p["tries"]:
        return  # done already, or superseded
    steps = definition_of(run).get("steps", [])
    token = _chain.set((run.chain or []) + [run.rule_id])
    try:
        with atomic():
            claimed = (AutomationRun.update(updated_at=utcnow())
                       .where((AutomationRun.id == run.id) & (AutomationRun.step == p["step"]) & (AutomationRun.tries == p["tries"]) & (AutomationRun.status == "queued"))
                       .execute())
            if not claimed:
                return
            _execute(tenant, run, steps)
    except StopRun as exc:  # the action refused for good: the run ends, not retried
        with atomic():
            step = steps[run.step]["action"] if run.step < len(steps) else "?"
            _finish(run, "stopped", [_entry(run.step, step, error=f"refused: {exc}")], error=f"Step {run.step + 1} refused: {exc}", guard="refused")
    except Exception as exc:  # the step's writes rolled back; count the failure
        _failed(tenant, run, f"{type(exc).__name__}: {exc}")
    finally:
        _chain.reset(token)


def _execute(tenant: Any, run: AutomationRun, steps: list[dict[str, Any]]) -> None:
    now = utcnow()
    if run.step >= len(steps):
        _finish(run, "done", [])
        return
    step = steps[run.step]
    action = rules.actions(tenant).get(step["action"])
    if action is None:
        reason = f"Step {run.step + 1} uses the action {step['action']!r}, which is not available (plugin turned off?)."
        rule = AutomationRule.get_or_none(AutomationRule.id == run.rule_id)
        if rule is not None and rule.status == "active":
            rules.set_status(rule, "paused", reason)
        _finish(run, "failed", [_entry(run.step, step["action"], error=reason)], error=reason)
        return
    params = rules.load_params(action, step.get("params"))
    if step["action"] == "wait":
        wake = now + wait_delta(params)
        AutomationRun.update(status="waiting", step=run.step + 1, failures=0, wake_at=wake, updated_at=now,
                             log=(run.log or []) + [_entry(run.step, "wait", result=f"waiting until {wake:%Y-%m-%d %H:%M:%S} UTC")]).where(AutomationRun.id == run.id).execute()
        return
    model = MODELS[run.entity]
    record = model.get_or_none(model.id == run.record_id)
    if record is None:
        _finish(run, "done", [_entry(run.step, step["action"], result="the record was deleted: run ended")])
        return
    if step["action"] in waits.RECHECKING:
        result = waits.check(run, step["action"], params, now)
        if result is None:  # still waiting (the run row says until when)
            return
        if result == waits.STOP:
            _finish(run, "done", [_entry(run.step, step["action"], result="the contact replied: run ended")])
            return
    else:
        result = action.run(ActionCall(tenant=tenant, entity=run.entity, record=record, params=params, rule_id=run.rule_id, run_id=run.id, step=run.step))
    entry = _entry(run.step, step["action"], result=result or "done")
    if run.step + 1 >= len(steps):
        _finish(run, "done", [entry])
        return
    AutomationRun.update(step=run.step + 1, tries=run.tries + 1, failures=0, updated_at=now, error=None, waiting_for=None, waiting_since=None,
                         log=(run.log or []) + [entry]).where(AutomationRun.id == run.id).execute()
    run.step, run.tries = run.step + 1, run.tries + 1
    queue_step(tenant, run)


def _entry(step: int, action: str, result: str | None = None, error: str | None = None) -> dict[str, Any]:
    entry = {"step": step, "action": action, "at": utcnow().isoformat(timespec="seconds") + "Z"}
    entry["error" if error else "result"] = error or result
    return entry


def _finish(run: AutomationRun, status: str, entries: list[dict[str, Any]], error: str | None = None, guard: str | None = None) -> None:
    now = utcnow()
    AutomationRun.update(status=status, error=error, updated_at=now, finished_at=now, wake_at=None, waiting_for=None, waiting_since=None,
                         log=(run.log or []) + entries, **({"guard": guard} if guard else {})).where(AutomationRun.id == run.id).execute()


def _failed(tenant: Any, run: AutomationRun, error: str) -> None:
    """Retry the step with backoff, or fail the run once the attempts are used up."""
    settings = _settings(tenant)
    with atomic():
        run = AutomationRun.get_by_id(run.id)
        failures = run.failures + 1
        step = definition_of(run).get("steps", [{}] * (run.step + 1))[run.step] if run.step < len(definition_of(run).get("steps", [])) else {}
        entry = _entry(run.step, step.get("action", "?"), error=f"attempt {failures}: {error}")
        if failures >= settings["step_attempts"]:
            _finish(run, "failed", [entry], error=f"Step {run.step + 1} failed {failures} times: {error}")
            return
        AutomationRun.update(failures=failures, tries=run.tries + 1, error=error, updated_at=utcnow(),
                             log=(run.log or []) + [entry]).where(AutomationRun.id == run.id).execute()
        run.tries += 1
        queue_step(tenant, run, delay=settings["retry_base_seconds"] * (2 ** (failures - 1)))


def retry_failed(tenant: Any, run: AutomationRun) -> AutomationRun:
    """Put a failed run back at its failed step (the "retry from the failed step" button)."""
    with atomic():
        changed = (AutomationRun.update(status="queued", failures=0, tries=AutomationRun.tries + 1, error=None, finished_at=None, updated_at=utcnow())
                   .where((AutomationRun.id == run.id) & (AutomationRun.status == "failed")).execute())
        if not changed:
            raise sdk.Conflict("Only a failed run can be retried.")
        run = AutomationRun.get_by_id(run.id)
        queue_step(tenant, run)
    return run


# --------------------------------------------------------------------------- jobs


def wake_due(tenant: Any) -> int:
    """Scheduled every minute: waiting runs whose time has come get their next step
    queued. One UPDATE claims them (so two sweeps cannot both queue one), in the same
    transaction as the step tasks."""
    now = utcnow()
    with atomic():
        due = list(AutomationRun.update(status="queued", wake_at=None, tries=AutomationRun.tries + 1, updated_at=now)
                   .where((AutomationRun.status == "waiting") & (AutomationRun.wake_at <= now))
                   .returning(AutomationRun.id, AutomationRun.step, AutomationRun.tries).tuples().execute())
        # one INSERT per 500 step tasks (an enqueue each took ~4 ms: 10,000 runs, 45 s)
        enqueue_many(STEP_TASK, [({"run_id": run_id, "step": step, "tries": tries}, f"automation:run:{run_id}:{step}:{tries}")
                                 for run_id, step, tries in due], tenant=tenant)
    return len(due)


def compact(tenant: Any) -> int:
    """Daily: finished runs older than ``retention_days`` are deleted (their counts on the
    rule list go with them); runs waiting or queued are kept whatever their age."""
    cutoff = utcnow() - dt.timedelta(days=_settings(tenant)["retention_days"])
    return AutomationRun.delete().where(AutomationRun.status.in_(["done", "failed", "stopped"]) & (AutomationRun.finished_at < cutoff)).execute()
