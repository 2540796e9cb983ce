"""Hook implementations of the core's built-in plugin."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from flask import Blueprint
from flask_smorest import Blueprint as ApiBlueprint

from crmcore import accounts, attachments, hookimpl, mentions, notifications, system_mail
from crmcore.contrib import (
    Migration,
    NavItem,
    PrivacySection,
    RecordPanel,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
)
from crmcore.entities import saved_views
from crmcore.entities.models import ENTITY_MODELS, AuditEntry, Entity, Lead, Task
from crmcore.migrations import CORE_MIGRATIONS, add_columns, create_indexes, create_tables
from crmcore.models import CORE_MODELS
from crmcore.ratelimit import RateCounter


def _create_default_pipelines(database) -> None:
    """Data step of 0002: tenants that existed before the entities get their pipeline."""
    from crmcore.db import Tenant
    from crmcore.entities.service import ensure_default_pipeline

    for tenant in Tenant.select():
        ensure_default_pipeline(tenant)


def on_tenant_created(tenant, **_):
    from crmcore.entities.service import ensure_default_pipeline

    ensure_default_pipeline(tenant)


@hookimpl(trylast=True)
def crm_models():
    return list(CORE_MODELS) + list(ENTITY_MODELS) + [RateCounter] + notifications.MODELS + accounts.MODELS + attachments.MODELS + saved_views.MODELS


def _add_audit_actor_name(database: Any) -> None:
    """AuditEntry.actor_name, for databases whose crm_audit table predates it (a new
    database gets it from 0002_entities, which creates the table as the model is now)."""
    if "actor_name" not in {c.name for c in database.get_columns(AuditEntry._meta.table_name)}:
        add_columns(AuditEntry, "actor_name")(database)


def _drop_non_finite_custom_numbers(database: Any) -> None:
    """Custom number values of NaN or ±Infinity, stored before the API refused them
    (issue 21), made empty: the API could not write them as JSON, and every filter on
    that field failed. Only rows whose text holds such a token are read."""
    import json
    import math

    def finite(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    for model in [m for m in ENTITY_MODELS if issubclass(m, Entity)]:
        column = model.custom.column_name
        table = model._meta.table_name
        rows = database.execute_sql(
            f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" LIKE %s OR "{column}" LIKE %s'.replace("%s", database.param),
            ("%NaN%", "%Infinity%"),
        ).fetchall()
        for row_id, text in rows:
            values = json.loads(text)
            cleaned = {key: finite(value) for key, value in values.items()} if isinstance(values, dict) else values
            fixed = json.dumps(cleaned, default=str, sort_keys=True)
            if fixed != text:
                database.execute_sql(f'UPDATE "{table}" SET "{column}" = {database.param} WHERE id = {database.param}', (fixed, row_id))


@hookimpl(trylast=True)
def crm_migrations():
    return list(CORE_MIGRATIONS) + [
        Migration("0002_entities", create_tables(*ENTITY_MODELS)),
        Migration("0003_default_pipelines", _create_default_pipelines),
        Migration("0004_lead_list_index", create_indexes(Lead)),  # (tenant, created_at, id)
        Migration("0005_audit_actor_name", _add_audit_actor_name),
        Migration("0006_rate_limits", create_tables(RateCounter)),  # crmcore.ratelimit
        Migration("0007_notifications", _notifications),  # crmcore.notifications
        Migration("0008_finite_custom_numbers", _drop_non_finite_custom_numbers),
        Migration("0009_accounts", _accounts),  # crmcore.accounts
        Migration("0010_attachments", create_tables(*attachments.MODELS)),  # crmcore.attachments
        Migration("0011_saved_views", create_tables(*saved_views.MODELS)),  # crmcore.entities.saved_views
        Migration("0012_teams", _teams),
    ]


def _accounts(database: Any) -> None:
    """The invitation/reset link table and the users' time zone and digest columns (a
    new database already has the columns: 0001 creates crm_users as the model is now)."""
    from crmcore.models import User

    create_tables(*accounts.MODELS)(database)
    existing = {c.name for c in database.get_columns(User._meta.table_name)}
    missing = [name for name in accounts.USER_COLUMNS if name not in existing]
    if missing:
        add_columns(User, *missing)(database)


def _teams(database: Any) -> None:
    """The team table and User.team, for databases whose crm_users predates them (a new
    database gets both from 0001_initial, which creates the core's tables as they are now)."""
    from crmcore.models import Team, User

    create_tables(Team)(database)
    if "team_id" not in {c.name for c in database.get_columns(User._meta.table_name)}:
        add_columns(User, "team")(database)


def _notifications(database: Any) -> None:
    """The notification tables and Task.reminder_sent_at. Reminders already past when
    this runs count as sent: nobody should get months of old reminders at once."""
    from crmcore.db import utcnow

    create_tables(*notifications.MODELS)(database)
    if "reminder_sent_at" not in {c.name for c in database.get_columns(Task._meta.table_name)}:
        add_columns(Task, "reminder_sent_at")(database)
    # every tenant at once: a one-off data step of the migration
    Task.update_all_tenants(reminder_sent_at=Task.reminder_at).where(Task.reminder_at < utcnow()).execute()


def claimed_api_modules() -> set[str]:
    """The crmcore.api modules another built-in plugin registers: the ``API_MODULES`` of
    each built-in's hooks module (csv_io by ``csv``, merge and privacy by ``privacy`` ...)."""
    from crmcore.builtin import BUILTIN_PLUGINS

    claimed: set[str] = set()
    for package in BUILTIN_PLUGINS:
        meta = importlib.import_module(package).plugin
        if meta.name != "core":
            hooks = importlib.import_module(meta.hooks or f"{package}.hooks")
            claimed.update(getattr(hooks, "API_MODULES", ()))
    return claimed


@hookimpl(trylast=True)
def crm_api_blueprints():
    """Every module of crmcore.api that defines ``blp`` (one resource per module), but
    those another built-in plugin claims."""
    import crmcore.api

    found = []
    claimed = claimed_api_modules()
    for info in sorted(pkgutil.iter_modules(crmcore.api.__path__), key=lambda i: i.name):
        if info.name in claimed:
            continue
        module = importlib.import_module(f"crmcore.api.{info.name}")
        if isinstance(getattr(module, "blp", None), ApiBlueprint):
            found.append(module.blp)
    return found


@hookimpl(trylast=True)
def crm_web_blueprints():
    """Sign-in and dashboard, plus every module of crmcore.web that defines ``bp``."""
    import crmcore.web
    from crmcore.builtin.views import app_pages, auth_pages

    found = [auth_pages, app_pages]
    for info in sorted(pkgutil.iter_modules(crmcore.web.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"crmcore.web.{info.name}")
        if isinstance(getattr(module, "bp", None), Blueprint):
            found.append(module.bp)
    return found


@hookimpl(trylast=True)
def crm_signal_receivers():
    from crmcore import live  # live pages: entity signals -> realtime hub events

    return [
        SignalReceiver("tenant_created", on_tenant_created),
        SignalReceiver("notification_created", notifications.on_notification_created),
        SignalReceiver("note_created", mentions.on_note_created),  # @mentions notify
        SignalReceiver("note_updated", mentions.on_note_updated),
        *live.signal_receivers(),
    ]


@hookimpl(trylast=True)
def crm_scheduled_jobs():
    return [
        ScheduledJob("core:task_reminders", notifications.send_task_reminders, "interval", {"seconds": 60}),
        ScheduledJob("core:notification_digest", accounts.send_digests, "cron", {"hour": 7}),
    ]


@hookimpl(trylast=True)
def crm_task_handlers():
    # SMTP is the outside world: not transactional, idempotent by Message-ID (crmcore.system_mail)
    return [TaskHandler(system_mail.TASK_KIND, system_mail.deliver, transactional=False)]


@hookimpl(trylast=True)
def crm_template_context(tenant, user):
    """``notifications_unread`` for the header's bell."""
    if user is None:
        return None
    return {"notifications_unread": notifications.unread_count(user.id)}


@hookimpl(trylast=True)
def crm_startup(app):
    from crmcore import live

    live.init_app(app)  # the live_since() template global (crm/partials/live.html)


@hookimpl(trylast=True)
def crm_nav_items(tenant, user):
    """Dashboard, plus the ``NAV`` item of each crmcore.web module that has one."""
    import crmcore.web

    items = [NavItem(label="Dashboard", endpoint="core.dashboard", order=0, icon="home")]
    for info in pkgutil.iter_modules(crmcore.web.__path__):
        nav = getattr(importlib.import_module(f"crmcore.web.{info.name}"), "NAV", None)
        if isinstance(nav, NavItem):
            items.append(nav)
    return items


# --------------------------------------------------------------------------- attachments


@hookimpl(trylast=True)
def crm_record_panels(tenant, user, entity, record):
    """The "Files" panel of every record page (crmcore/web/attachments.py)."""
    from flask import render_template

    from crmcore.web.records import can

    if entity not in attachments.ENTITIES:
        return []

    def render() -> str:
        return render_template("crm/attachments/panel.html", files=attachments.of_record(entity, record.id), entity=entity,
                               record_id=record.id, can_write=can("records:write"), allowed=sorted(attachments.ALLOWED),
                               max_mb=attachments.MAX_BYTES // (1024 * 1024))

    return [RecordPanel("files", "Files", render, order=50)]


@hookimpl(trylast=True)
def crm_privacy_export(tenant, entity, record_id, lead_ids, contact_ids):
    files = attachments.privacy_export(lead_ids, contact_ids)
    return [PrivacySection("core:attachments", files)] if files else []


@hookimpl(trylast=True)
def crm_privacy_erase(tenant, entity, record_id, lead_ids, contact_ids):
    erased = attachments.privacy_erase(lead_ids, contact_ids)
    return {"crm_attachments": erased} if erased else {}


@hookimpl(trylast=True)
def crm_merge_records(tenant, entity, kept_id, merged_id):
    moved = attachments.merge(entity, kept_id, merged_id)
    return {"crm_attachments": moved} if moved else {}
