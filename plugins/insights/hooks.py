"""Hook implementations of the insights plugin."""

from __future__ import annotations

from typing import Any

import click

from crm_plugins.insights import api, health, interactions, privacy, risk, textgen, views
from crm_plugins.insights.models import (
    INITIAL_MODELS,
    MODELS,
    GeneratedTextRecord,
    InteractionSentiment,
)
from crmcore import sdk
from crmcore.sdk import (
    DashboardWidget,
    Migration,
    NavItem,
    Permission,
    RecordPanel,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
    add_columns,
    create_indexes,
    create_tables,
    hookimpl,
)

sdk.signal("deal_risk_changed", "A deal's risk level changed: (tenant, deal_id, level, previous, reasons).")
sdk.signal("customer_health_changed", "A customer's health band changed: (tenant, entity, record_id, score, band, previous_band).")
sdk.signal("insight_alert", "An insights alert was raised: (tenant, alert_id, kind, entity, record_id, title, text).")

#: Changes of these entities can change a deal's risk.
RISK_ENTITIES = ("deal", "activity", "task", "note", "stage")


def on_entity_changed(tenant: Any, entity: str = "", record: Any = None, **data: Any) -> None:
    interactions.on_entity_saved(tenant, entity=entity, record=record)
    if entity in RISK_ENTITIES:
        risk.schedule(tenant)


def on_entity_deleted(tenant: Any, entity: str = "", record_id: int | None = None, **data: Any) -> None:
    interactions.on_entity_deleted(tenant, entity=entity, record_id=record_id)
    if entity in RISK_ENTITIES:
        risk.schedule(tenant)


def on_stage_changed(tenant: Any, **_: Any) -> None:
    risk.schedule(tenant)


def on_chat_message(tenant: Any, **data: Any) -> None:
    interactions.on_chat_message(tenant, **data)


def on_channel_message(tenant: Any, **data: Any) -> None:
    interactions.on_channel_message(tenant, **data)


def sentiment_task(task: Any) -> None:
    interactions.sentiment_task(task)
    risk.schedule(sdk.current_tenant())  # a new sentiment can change a deal's trend


def health_task(task: Any) -> None:
    health.recompute(sdk.current_tenant())


def backfill_task(task: Any) -> None:
    interactions.backfill(sdk.current_tenant())


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [
        Migration("0001_initial", create_tables(*INITIAL_MODELS)),
        Migration("0002_generated_text", create_tables(GeneratedTextRecord)),
        Migration("0003_conversation_sentiment", _conversation_sentiment),
    ]


def _conversation_sentiment(database: Any) -> None:
    """``conversation_id`` of channel messages' sentiments (and its partial index) and of
    reply drafts."""
    for model in (InteractionSentiment, GeneratedTextRecord):
        columns = {c.name for c in database.get_columns(model._meta.table_name)}
        if "conversation_id" not in columns:  # a new database got it from 0001/0002 (the model as it is now)
            add_columns(model, "conversation_id")(database)
    create_indexes(InteractionSentiment)(database)


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_permissions():
    return [
        Permission("insights:read", roles=("admin", "manager", "agent", "viewer"), description="Read sentiment, deal risks, suggested actions, customer health and alerts."),
        Permission("insights:act", roles=("admin", "manager", "agent"), description="Mark suggested actions done or dismissed, create their tasks."),
        Permission("insights:manage", roles=("admin", "manager"), description="Queue recomputes of risks, health and the sentiment backfill."),
    ]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Insights", endpoint="insights.dashboard", order=60, icon="sparkles")]


@hookimpl
def crm_signal_receivers():
    return [
        SignalReceiver("entity_created", on_entity_changed),
        SignalReceiver("entity_updated", on_entity_changed),
        SignalReceiver("entity_deleted", on_entity_deleted),
        SignalReceiver("deal_stage_changed", on_stage_changed),
        SignalReceiver("chat_message_received", on_chat_message),
        SignalReceiver("message_received", on_channel_message),  # the channels plugin's (email, SMS ...)
    ]


@hookimpl
def crm_task_handlers():
    return [
        TaskHandler(interactions.TASK_KIND, sentiment_task),
        TaskHandler(risk.TASK_KIND, risk.risk_task),
        TaskHandler("insights.health", health_task),
        TaskHandler("insights.backfill", backfill_task),
        # may call an HTTP endpoint: outside the transaction, idempotent (overwrites its row)
        TaskHandler(textgen.TASK_KIND, textgen.generate_task, transactional=False, max_attempts=3),
    ]


@hookimpl
def crm_scheduled_jobs():
    return [
        ScheduledJob("insights:risk", risk.risk_job, trigger="interval", trigger_args={"hours": 1}),
        ScheduledJob("insights:health", health.health_job, trigger="cron", trigger_args={"hour": 4, "minute": 0}),
        ScheduledJob("insights:sentiment_backfill", interactions.backfill_job, trigger="cron", trigger_args={"hour": 3, "minute": 30}),
    ]


@hookimpl
def crm_cli_commands(cli):
    @cli.group()
    def insights():
        """Commands of the insights plugin."""

    @insights.command()
    @click.argument("slug")
    @click.option("--now", "inline", is_flag=True, help="Score in this process instead of queueing one task per batch.")
    @click.option("--batch", type=int, default=None, help="Interactions per batch (default: the backfill_batch setting).")
    @sdk.with_app
    def backfill(crm, slug, inline, batch):
        """Score the sentiment of every activity and note that has none yet."""
        tenant = crm.tenant(slug)
        if not sdk.is_enabled(tenant, "insights"):
            raise click.ClickException(f"the insights plugin is off for {slug}")
        counts = interactions.backfill(tenant, inline=inline, batch=batch)
        verb = "scored" if inline else "queued"
        click.echo(", ".join(f"{n} {entity} {verb}" for entity, n in counts.items()))

    @insights.command()
    @click.argument("slug")
    @sdk.with_app
    def recompute(crm, slug):
        """Recompute deal risks and customer health now."""
        tenant = crm.tenant(slug)
        if not sdk.is_enabled(tenant, "insights"):
            raise click.ClickException(f"the insights plugin is off for {slug}")
        click.echo(f"risk: {risk.recompute(tenant)}; health: {health.recompute(tenant)}")


@hookimpl
def crm_record_panels(tenant, user, entity, record):
    render = {
        "deal": lambda: views.deal_panel(record),
        "lead": lambda: views.lead_panel(record),
        "contact": lambda: views.customer_panel("contact", record),
        "company": lambda: views.customer_panel("company", record),
    }.get(entity)
    return [RecordPanel(name="insights", title="Insights", render=render, order=20)] if render else []


@hookimpl
def crm_list_columns(tenant, user, entity):
    return [views.list_column()] if entity == "deal" else []


@hookimpl
def crm_kanban_card_badges(tenant, entity, record_ids):
    return views.card_badges(entity, record_ids)


@hookimpl
def crm_dashboard_widgets(tenant, user):
    return [DashboardWidget(name="insights-risk", title="Insights", render=views.dashboard_widget, order=35)]


@hookimpl
def crm_demo_data(tenant):
    interactions.backfill(tenant, inline=True)
    risk.recompute(tenant)
    health.recompute(tenant)


@hookimpl
def crm_privacy_export(tenant, entity, record_id, lead_ids, contact_ids):
    return privacy.export(lead_ids, contact_ids)


@hookimpl
def crm_privacy_erase(tenant, entity, record_id, lead_ids, contact_ids):
    return privacy.erase(lead_ids, contact_ids)


@hookimpl
def crm_merge_records(tenant, entity, kept_id, merged_id):
    return privacy.merge(entity, kept_id, merged_id)
