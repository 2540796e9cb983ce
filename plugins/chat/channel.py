"""The website chat as a channel of the shared inbox (plugins/channels): the chat keeps
its own tables (visitor tokens, claims, read receipts, attachments), and the inbox of
every channel lists its conversations beside email's and SMS's through the contract's
``conversations`` query; opening one leads to the chat's live thread (``/app/chat/?c=``).
Only asked for tenants that have both plugins on."""

from __future__ import annotations

from typing import Any

import peewee

from crm_plugins.chat.models import ChatConversation

NAME = "website"


def conversations() -> Any:
    """The tenant's chat conversations as inbox rows (``contrib.INBOX_COLUMNS``)."""
    return ChatConversation.select(
        peewee.Value(NAME).alias("channel"), ChatConversation.id, peewee.Value("").alias("subject"),
        ChatConversation.visitor_name.alias("name"),
        peewee.fn.COALESCE(ChatConversation.visitor_email, ChatConversation.visitor_phone, "").alias("address"),
        ChatConversation.status, ChatConversation.assignee.alias("assignee_id"), ChatConversation.lead.alias("lead_id"),
        ChatConversation.contact.alias("contact_id"), ChatConversation.last_message_at,
    )


def conversation_url(conversation_id: int) -> str:
    from flask import url_for

    return url_for("chat_pages.inbox", view="all", status="any", c=conversation_id)


def live_topics() -> list[str]:
    """The chat inbox's feed, or the part of it the caller may hear (audience.py)."""
    from crm_plugins.chat import audience

    return audience.inbox_topics()


def website_channel() -> Any:
    from crm_plugins.channels.contrib import Channel

    # No ``send``: an agent answers a visitor through the chat (its socket, read receipts,
    # the assistant's hand-over), not through the outbox; the shared compose refuses it.
    return Channel(name=NAME, label="Website chat", capabilities=frozenset({"receive", "attachments"}), identity="visitor",
                   activity_kind="chat", has_subject=False, conversations=conversations, conversation_url=conversation_url,
                   live_topics=live_topics)
