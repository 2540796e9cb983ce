"""Hook implementations of the automation plugin."""

from __future__ import annotations

from typing import Any

from crm_plugins.automation import actions, api, runs, time_triggers, triggers, views
from crm_plugins.automation.models import MODELS, AutomationRule, AutomationRun
from crmcore import sdk
from crmcore.sdk import (
    Migration,
    NavItem,
    Permission,
    PrivacySection,
    RecordPanel,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
    add_columns,
    create_tables,
    hookimpl,
)

PLUGIN = "automation"


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [Migration("0001_initial", create_tables(*MODELS)), Migration("0002_exits_and_waits", _exits_and_waits)]


def _exits_and_waits(database: Any) -> None:
    """Rules' exit conditions and runs' re-checking waits (a new database got them from 0001)."""
    for model, names in ((AutomationRule, ("exit_on",)), (AutomationRun, ("waiting_for", "waiting_since"))):
        columns = {c.name for c in database.get_columns(model._meta.table_name)}
        missing = [n for n in names if n not in columns]
        if missing:
            add_columns(model, *missing)(database)


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_permissions():
    return [
        Permission("automation:read", roles=("admin", "manager"), description="Read automation rules and their run log; dry-run a rule."),
        Permission("automation:manage", roles=("admin", "manager"), description="Create, change, activate and pause rules; retry failed runs."),
    ]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Automation", endpoint="automation.index", order=85, icon="zap", roles=("admin", "manager"))]


@hookimpl
def crm_signal_receivers():
    """The core's facts; other plugins' trigger signals are connected in crm_startup."""
    runs.learn_triggers([*triggers.CORE_TRIGGERS, triggers.SCORE_TRIGGER])
    # The core's facts in the transaction of the change (the outbox): a committed fact
    # always has its runs. The scoring plugin sends its signal itself after its commit
    # (blinker's send, not the core's), which only plain receivers hear.
    core = {t.signal for t in triggers.CORE_TRIGGERS}
    return [*(SignalReceiver(name, runs.on_signal(name), in_transaction=True) for name in sorted(core)),
            SignalReceiver(triggers.SCORE_TRIGGER.signal, runs.on_signal(triggers.SCORE_TRIGGER.signal))]


@hookimpl
def crm_startup(app):
    connect_trigger_signals(app)


def connect_trigger_signals(app: Any) -> list[str]:
    """Listen to the signals other plugins' triggers name (asked of every installed plugin
    with ``tenant=None``). Idempotent: call it again after registering a plugin at run time."""
    # seeded with what crm_signal_receivers connected for this app (not the process-wide
    # list of signals, which holds those of apps created before this one)
    connected = app.extensions.setdefault("automation_signals", {t.signal for t in triggers.CORE_TRIGGERS} | {triggers.SCORE_TRIGGER.signal})
    added = []
    with app.app_context():
        for _plugin, found in sdk.call_hook_all("crm_automation_triggers", tenant=None):
            found = [t for t in found or [] if getattr(t, "signal", None)]
            runs.learn_triggers(found)
            for trigger in found:
                if trigger.signal not in connected:
                    sdk.connect_receiver(PLUGIN, trigger.signal, runs.on_signal(trigger.signal))
                    connected.add(trigger.signal)
                    added.append(trigger.signal)
    return added


@hookimpl
def crm_task_handlers():
    return [TaskHandler(runs.STEP_TASK, runs.run_step, max_attempts=3, transactional=False),
            TaskHandler(runs.START_TASK, runs.start_matched)]


@hookimpl
def crm_scheduled_jobs():
    return [
        ScheduledJob("automation:wake_due", runs.wake_due, "interval", {"seconds": 60}),
        ScheduledJob("automation:time_triggers", time_triggers.sweep, "interval", {"seconds": 60}),
        ScheduledJob("automation:compact_runs", runs.compact, "interval", {"hours": 24}),
    ]


@hookimpl
def crm_automation_triggers(tenant):
    found = [*triggers.CORE_TRIGGERS, *time_triggers.TIME_TRIGGERS]
    if tenant is None or sdk.is_enabled(tenant, "scoring"):
        found.append(triggers.SCORE_TRIGGER)
    return found


@hookimpl
def crm_automation_actions(tenant):
    return list(actions.BUILTIN_ACTIONS)


@hookimpl
def crm_record_panels(tenant, user, entity, record):
    """The record's recent runs (its part of the run log), for those who may read rules."""
    if not sdk.has_permission("automation:read"):
        return []

    def render() -> str:
        from flask import url_for
        from markupsafe import escape

        rows = list(AutomationRun.select(AutomationRun, AutomationRule.id, AutomationRule.name).join(AutomationRule, on=(AutomationRun.rule == AutomationRule.id))
                    .where((AutomationRun.entity == entity) & (AutomationRun.record_id == record.id)).order_by(AutomationRun.id.desc()).limit(10))
        if not rows:
            return '<p class="muted">No automation ran on this record.</p>'
        items = "".join(
            f'<li><a href="{escape(url_for("automation.show", rule_id=r.rule_id))}">{escape(r.rule.name)}</a>: {escape(r.status)}'
            f'{" (" + escape(r.guard.replace("_", " ")) + " guard)" if r.guard else ""} <span class="muted small">{r.created_at:%Y-%m-%d %H:%M}</span></li>'
            for r in rows)
        return f'<ul class="automation-runs">{items}</ul>'

    return [RecordPanel(name="automation", title="Automation", render=render, order=80)]


def _person_runs(lead_ids: list[int], contact_ids: list[int]) -> Any:
    return ((AutomationRun.entity == "lead") & AutomationRun.record_id.in_(lead_ids or [0])) | (
        (AutomationRun.entity == "contact") & AutomationRun.record_id.in_(contact_ids or [0]))


@hookimpl
def crm_privacy_export(tenant, entity, record_id, lead_ids, contact_ids):
    rows = AutomationRun.select(AutomationRun, AutomationRule.id, AutomationRule.name).join(AutomationRule, on=(AutomationRun.rule == AutomationRule.id)).where(_person_runs(lead_ids, contact_ids))
    data = [{"rule": r.rule.name, "entity": r.entity, "record_id": r.record_id, "status": r.status, "created_at": r.created_at.isoformat(), "log": r.log} for r in rows]
    return [PrivacySection(name="automation_runs", data=data)]


@hookimpl
def crm_privacy_erase(tenant, entity, record_id, lead_ids, contact_ids):
    return {"automation_run": AutomationRun.delete().where(_person_runs(lead_ids, contact_ids)).execute()}


@hookimpl
def crm_merge_records(tenant, entity, kept_id, merged_id):
    moved = AutomationRun.update(record_id=kept_id).where((AutomationRun.entity == entity) & (AutomationRun.record_id == merged_id)).execute()
    return {"automation_run": moved}
