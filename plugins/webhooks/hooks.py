"""Hook implementations of the webhooks plugin."""

from __future__ import annotations

import logging

from crm_plugins.webhooks import api, delivery, drain, events, views
from crm_plugins.webhooks.models import MODELS, WebhookAttempt, WebhookEndpoint, WebhookMessage
from crmcore import sdk
from crmcore.sdk import (
    Migration,
    NavItem,
    Permission,
    SignalReceiver,
    TaskHandler,
    add_columns,
    create_indexes,
    create_tables,
    hookimpl,
)

log = logging.getLogger("crm_plugins.webhooks")

PLUGIN = "webhooks"


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [
        Migration("0001_initial", create_tables(WebhookEndpoint, WebhookMessage, WebhookAttempt)),
        Migration("0002_batched_delivery", _batched_delivery),
    ]


def _batched_delivery(database) -> None:
    """The endpoint's ``drain_at`` and the index of the delivery task's query."""
    columns = {c.name for c in database.get_columns(WebhookEndpoint._meta.table_name)}
    if "drain_at" not in columns:  # a new database got it from 0001 (the model as it is now)
        add_columns(WebhookEndpoint, "drain_at")(database)
    create_indexes(WebhookMessage)(database)


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_permissions():
    return [Permission("webhooks:manage", roles=("admin",), description="Manage webhook endpoints and secrets, read the delivery log, replay.")]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Webhooks", endpoint="webhooks.index", order=90, icon="send", roles=("admin",))]


@hookimpl
def crm_signal_receivers():
    """The core's events; other plugins' event signals are connected in crm_startup."""
    names = dict.fromkeys(e.signal for e in events.core_events())
    return [SignalReceiver(name, delivery.on_signal(name)) for name in names]


@hookimpl
def crm_task_handlers():
    # Not transactional: they call the outside world. webhooks.deliver is the former
    # one-attempt task: tasks of it still queued by an older version hand over to a drain.
    return [
        TaskHandler(drain.TASK_KIND, drain.drain_task, max_attempts=5, transactional=False),
        TaskHandler(delivery.TASK_KIND, delivery.deliver_task, max_attempts=5, transactional=False),
    ]


@hookimpl
def crm_webhooks_events(tenant):
    return list(events.core_events())


@hookimpl
def crm_startup(app):
    connect_event_signals(app)


def connect_event_signals(app) -> list[str]:
    """Listen to the signals other plugins' event types name (asked of every installed
    plugin with ``tenant=None``; per tenant only enabled plugins' events are sent).
    Idempotent: call it again after registering a plugin at run time (tests)."""
    connected = app.extensions.setdefault("webhooks_signals", {e.signal for e in events.core_events()})
    added = []
    with app.app_context():
        for _plugin, found in sdk.call_hook_all(events.HOOK, tenant=None):
            for event in found or []:
                signal_name = getattr(event, "signal", None)
                if signal_name and signal_name not in connected:
                    sdk.connect_receiver(PLUGIN, signal_name, delivery.on_signal(signal_name))
                    connected.add(signal_name)
                    added.append(signal_name)
    return added


@hookimpl
def crm_automation_actions(tenant):
    """"Call a webhook" for automation rules (see automation.py)."""
    from crm_plugins.webhooks import automation

    return list(automation.ACTIONS)
