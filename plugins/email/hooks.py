"""Hook implementations of the email plugin."""

from __future__ import annotations

from crm_plugins.channels.contrib import Channel
from crm_plugins.email import (
    automation,
    inbound,
    mailgun,
    panel,
    smtp,
    unsubscribe,
    views,
    webhooks,
)
from crm_plugins.email.models import MODELS, MailboxFolder, Signature, Undeliverable, Unsubscribe
from crmcore.sdk import (
    Migration,
    NavItem,
    Permission,
    RecordPanel,
    ScheduledJob,
    TaskHandler,
    create_tables,
    hookimpl,
)

EMAIL = Channel(
    name="email", label="Email", send=smtp.send, prepare=smtp.prepare,
    capabilities=frozenset({"send", "receive", "threading"}),
    identity="email", activity_kind="email", has_subject=True,
)


@hookimpl
def crm_channels(tenant):
    return [EMAIL]


@hookimpl
def crm_email_providers(tenant):
    """The Mailgun-compatible HTTP API (``transport = "mailgun"``)."""
    return [mailgun.MAILGUN]


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [Migration("0001_initial", create_tables(MailboxFolder, Undeliverable, Unsubscribe)),
            Migration("0002_unsubscribes_to_consent", _unsubscribes_to_consent),
            Migration("0003_signatures", create_tables(Signature))]


def _unsubscribes_to_consent(database):
    """Marketing unsubscribes move to the channels consent record (scope ``marketing``),
    which every channel and the outbox read; one statement for every tenant. An address
    that already has a consent row keeps it (an SMS-style opt-out of everything covers
    marketing). ``email_unsubscribe`` stays, unused, for the record."""
    database.execute_sql(
        "INSERT INTO channels_consent (tenant_id, address, opted_out, channel, source, changed_at, scope) "
        "SELECT u.tenant_id, LOWER(u.address), TRUE, 'email', u.source, u.unsubscribed_at, 'marketing' FROM email_unsubscribe u "
        "WHERE NOT EXISTS (SELECT 1 FROM channels_consent c WHERE c.tenant_id = u.tenant_id AND c.address = LOWER(u.address))")


@hookimpl
def crm_web_blueprints():
    from crm_plugins.email import signature  # noqa: F401  (its route is on views.bp)

    return [views.bp, unsubscribe.bp, webhooks.bp]


@hookimpl
def crm_permissions():
    return [Permission("email:manage", roles=("admin",), description="See the mailbox and sending settings, test them.")]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Email", endpoint="email.settings_page", order=91, roles=("admin",))]


@hookimpl
def crm_record_panels(tenant, user, entity, record):
    if entity not in ("lead", "contact", "deal"):
        return []
    return [RecordPanel(name="email", title="Email", render=lambda: panel.render(entity, record), order=20)]


@hookimpl
def crm_task_handlers():
    # "Poll the mailbox now" (admin page): not transactional, it calls the IMAP server
    return [TaskHandler(inbound.POLL_TASK, inbound.poll_task, max_attempts=1, transactional=False)]


@hookimpl
def crm_scheduled_jobs():
    return [ScheduledJob(id="email:poll", func=inbound.poll_job, trigger="interval", trigger_args={"minutes": 1})]


@hookimpl
def crm_automation_actions(tenant):
    """"Send an email template" for automation rules (see automation.py)."""
    return list(automation.ACTIONS)


@hookimpl
def crm_automation_triggers(tenant):
    """"An address unsubscribes" (``email_unsubscribed``), a trigger and an exit condition."""
    return list(automation.TRIGGERS)
