"""Hook implementations of the channels plugin."""

from __future__ import annotations

from crm_plugins.channels import api, outbox, views
from crm_plugins.channels.models import (
    MODELS,
    Consent,
    Conversation,
    Message,
    MessageTemplate,
    Outbox,
)
from crmcore.sdk import (
    Migration,
    NavItem,
    Permission,
    PrivacySection,
    TaskHandler,
    add_columns,
    create_tables,
    hookimpl,
)


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [Migration("0001_initial", create_tables(Conversation, Message, MessageTemplate, Outbox)),
            Migration("0002_consent", create_tables(Consent)),
            Migration("0004_consent_scope_and_quiet_hours", _consent_scope_and_quiet_hours)]


def _consent_scope_and_quiet_hours(database):
    """Consent.scope, Message.purpose and Message.urgent (a new database got them from
    0001 and 0002, which create the tables as the models are now)."""
    for model, names in ((Consent, ("scope",)), (Message, ("purpose", "urgent"))):
        columns = {c.name for c in database.get_columns(model._meta.table_name)}
        missing = [n for n in names if n not in columns]
        if missing:
            add_columns(model, *missing)(database)


@hookimpl
def crm_api_blueprints():
    return [api.messages_blp, api.templates_blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_permissions():
    return [
        Permission("channels:read", roles=("admin", "manager", "agent", "viewer"), description="Read conversations, messages and templates."),
        Permission("channels:send", roles=("admin", "manager", "agent"), description="Send messages and replies on any channel."),
        Permission("channels:templates", roles=("admin", "manager"), description="Add, change and delete message templates."),
    ]


@hookimpl
def crm_nav_items(tenant, user):
    # "Inbox": the one inbox of every channel (the chat's own nav item steps aside for it)
    return [NavItem(label="Inbox", endpoint="channels.inbox", order=47)]


@hookimpl
def crm_task_handlers():
    # Not transactional: a channel's send calls the outside world (see outbox.drain_task).
    return [TaskHandler(outbox.DRAIN_TASK, outbox.drain_task, max_attempts=100, transactional=False)]


def _conversations(lead_ids, contact_ids):
    return Conversation.select().where(Conversation.lead.in_(lead_ids or [0]) | Conversation.contact.in_(contact_ids or [0]))


@hookimpl
def crm_privacy_export(tenant, entity, record_id, lead_ids, contact_ids):
    conversations = list(_conversations(lead_ids, contact_ids))
    ids = [c.id for c in conversations]
    rows = Message.select().where(Message.conversation.in_(ids or [0])).order_by(Message.id)
    data = [{"channel": m.channel, "direction": m.direction, "status": m.status, "subject": m.subject, "body": m.body_text,
             "sender": m.sender, "recipients": m.recipients, "created_at": m.created_at.isoformat()} for m in rows]
    # the consent of the addresses they wrote from (kept on erase: it keeps them from being messaged)
    addresses = {c.address.removeprefix("whatsapp:").lower() for c in conversations if c.address}
    consent = [{"address": r.address, "opted_out": r.opted_out, "scope": r.scope, "channel": r.channel, "source": r.source,
                "changed_at": r.changed_at.isoformat()}
               for r in Consent.select().where(Consent.address.in_(sorted(addresses) or [""])).order_by(Consent.id)]
    if not data and not consent:
        return []
    return [PrivacySection("channels", {"messages": data, **({"consent": consent} if consent else {})})]


@hookimpl
def crm_privacy_erase(tenant, entity, record_id, lead_ids, contact_ids):
    ids = [c.id for c in _conversations(lead_ids, contact_ids)]
    if not ids:
        return {}
    messages = Message.delete().where(Message.conversation.in_(ids)).execute()
    conversations = Conversation.delete().where(Conversation.id.in_(ids)).execute()
    return {"channels_message": messages, "channels_conversation": conversations}


@hookimpl
def crm_merge_records(tenant, entity, kept_id, merged_id):
    if entity not in ("lead", "contact"):
        return {}
    field = getattr(Conversation, entity)
    moved = Conversation.update({field: kept_id}).where(field == merged_id).execute()
    return {"channels_conversation": moved}


@hookimpl
def crm_automation_triggers(tenant):
    """Message received / sent / failed as automation triggers (and exit conditions)."""
    from crm_plugins.channels import automation

    return list(automation.TRIGGERS)
