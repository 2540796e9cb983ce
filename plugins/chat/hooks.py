"""Hook implementations of the chat plugin."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.models import (
    ChatAgent,
    ChatAttachment,
    ChatConversation,
    ChatFaq,
    ChatMessage,
    ChatRate,
)
from crmcore import sdk
from crmcore.sdk import (
    Migration,
    NavItem,
    Permission,
    TaskHandler,
    add_columns,
    create_tables,
    hookimpl,
    payload_of,
)

sdk.signal("chat_conversation_started", "A website visitor started a chat: (tenant, conversation).")
sdk.signal("chat_message_received", "A visitor's chat message was stored: (tenant, conversation, message, lead=<Lead|None>).")
sdk.signal("chat_lead_captured", "A chat conversation was linked to a lead: (tenant, conversation, lead, created=bool).")


@hookimpl
def crm_models() -> list[Any]:
    return [ChatConversation, ChatMessage, ChatAttachment, ChatFaq, ChatAgent, ChatRate]


@hookimpl
def crm_migrations() -> list[Migration]:
    # Released with 0.1.0; a later change gets a new migration, never an edit of this one.
    return [
        Migration("0001_initial", create_tables(ChatConversation, ChatMessage, ChatAttachment, ChatFaq, ChatAgent, ChatRate)),
        Migration("0002_claimed_links", _add_claimed_links),
    ]


def _add_claimed_links(database: Any) -> None:
    """ChatConversation.claimed_lead / claimed_contact, for databases whose table predates
    them (0001 creates the table as the model is now, so a new database has them)."""
    present = {c.name for c in database.get_columns(ChatConversation._meta.table_name)}
    missing = [f for f in ("claimed_lead", "claimed_contact") if ChatConversation._meta.fields[f].column_name not in present]
    if missing:
        add_columns(ChatConversation, *missing)(database)


@hookimpl
def crm_api_blueprints() -> list[Any]:
    from crm_plugins.chat.api import blp

    return [blp]


@hookimpl
def crm_live_topic_rules() -> list[Any]:
    from crm_plugins.chat.audience import topic_rules

    return topic_rules()


@hookimpl
def crm_web_blueprints() -> list[Any]:
    from crm_plugins.chat.public import api, assets
    from crm_plugins.chat.views import pages

    return [pages, api, assets]


@hookimpl
def crm_permissions() -> list[Permission]:
    return [
        Permission("chat:read", ("admin", "manager", "agent", "viewer"), "Read chat conversations."),
        Permission("chat:reply", ("admin", "manager", "agent"), "Reply to, assign and resolve chat conversations."),
        Permission("chat:manage", ("admin", "manager"), "Manage the chat assistant's FAQ entries."),
    ]


@hookimpl
def crm_lead_sources(tenant: Any) -> list[str]:
    """Leads captured in a chat have the source "chat" (for tenants with chat on)."""
    return ["chat"]


@hookimpl
def crm_activity_kinds(tenant: Any) -> list[str]:
    """A chat conversation is logged on the timeline as a "chat" activity."""
    return ["chat"]


@hookimpl
def crm_channels(tenant: Any) -> list[Any]:
    """The website chat as one channel of the inbox of every channel (plugins/channels),
    for tenants with both plugins on."""
    from crm_plugins.chat.channel import website_channel

    return [website_channel()]


@hookimpl
def crm_nav_items(tenant: Any, user: Any) -> list[NavItem]:
    if sdk.is_enabled(tenant, "channels"):
        return []  # the inbox of every channel lists the chats too (plugins/chat/channel.py)
    return [NavItem(label="Inbox", endpoint="chat_pages.inbox", order=47)]


def _assistant_task(task: Any) -> None:
    from crm_plugins.chat import service
    from crmcore.sdk import current_tenant

    payload = payload_of(task)
    service.run_assistant(current_tenant(), payload["conversation_id"], payload["message_id"])


@hookimpl
def crm_task_handlers() -> list[TaskHandler]:
    return [TaskHandler("chat.assistant", _assistant_task, max_attempts=3)]


@hookimpl(trylast=True)
def crm_chat_assistant_reply(tenant: Any, conversation: Any, message: Any, history: list[Any]) -> Any:
    from crm_plugins.chat import assistant

    return assistant.reply(tenant, conversation, message, history)


@hookimpl
def crm_demo_data(tenant: Any) -> None:
    from crm_plugins.chat import demo

    demo.load(tenant)


@hookimpl
def crm_record_panels(tenant: Any, user: Any, entity: str, record: Any) -> list[Any]:
    from crmcore.sdk import RecordPanel

    if entity not in ("lead", "contact"):
        return []

    def render() -> str:
        from flask import url_for
        from markupsafe import escape

        field = ChatConversation.lead if entity == "lead" else ChatConversation.contact
        rows = list(ChatConversation.select().where(field == record.id).order_by(ChatConversation.id.desc()).limit(10))
        if not rows:
            return '<p class="muted">No chat conversations.</p>'
        items = "".join(
            f'<li><a href="{escape(url_for("chat_pages.inbox", c=c.id))}">Chat #{c.id}</a> · {escape(c.status)} · {escape(c.last_message_at.strftime("%Y-%m-%d %H:%M"))}</li>'
            for c in rows
        )
        return f'<ul class="plain">{items}</ul>'

    return [RecordPanel(name="chat", title="Chat", render=render, order=60)]


def chat_engagement(tenant: Any, lead_ids: list[int]) -> dict[int, tuple[float, str]]:
    """Points for leads who chatted: 8 per conversation plus 1 per visitor message, at
    most 25 -- one grouped query for the whole batch."""
    import peewee

    if not lead_ids:
        return {}
    rows = (
        ChatConversation.select(
            ChatConversation.lead,
            peewee.fn.COUNT(peewee.fn.DISTINCT(ChatConversation.id)),
            peewee.fn.COUNT(ChatMessage.id),
        )
        .join(ChatMessage, peewee.JOIN.LEFT_OUTER, on=((ChatMessage.conversation == ChatConversation.id) & (ChatMessage.sender == "visitor")))
        .where(ChatConversation.lead.in_(lead_ids))
        .group_by(ChatConversation.lead)
        .tuples()
    )
    out: dict[int, tuple[float, str]] = {}
    for lead_id, conversations, messages in rows:
        points = float(min(25, 8 * conversations + messages))
        out[lead_id] = (points, f"{conversations} chat conversation{'s' if conversations != 1 else ''}, {messages} message{'s' if messages != 1 else ''}")
    return out


@hookimpl
def crm_scoring_factors(tenant: Any) -> list[Any]:
    from crm_plugins.scoring.contrib import ScoreFactor

    return [ScoreFactor(name="chat:conversations", label="Chat conversations", compute=chat_engagement, component="engagement")]


# Privacy requests and merges: plugins/chat/privacy.py does the work.


@hookimpl
def crm_privacy_export(tenant: Any, entity: str, record_id: int, lead_ids: list[int], contact_ids: list[int]) -> list[Any]:
    from crm_plugins.chat import privacy

    return privacy.export(lead_ids, contact_ids)


@hookimpl
def crm_privacy_erase(tenant: Any, entity: str, record_id: int, lead_ids: list[int], contact_ids: list[int]) -> dict[str, int]:
    from crm_plugins.chat import privacy

    return privacy.erase(tenant, lead_ids, contact_ids)


@hookimpl
def crm_merge_records(tenant: Any, entity: str, kept_id: int, merged_id: int) -> dict[str, int]:
    from crm_plugins.chat import privacy

    return privacy.merge(entity, kept_id, merged_id)
