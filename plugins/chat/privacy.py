"""The chat's part of privacy requests and merges (hooks ``crm_privacy_export``,
``crm_privacy_erase``, ``crm_merge_records``).

A person's conversations are those linked to one of their leads or contacts. Erasing
anonymises the conversation (visitor name, email, phone, page; a new random visitor hash,
so the visitor's old token opens nothing), replaces every message's text with
:data:`ERASED_MESSAGE` (agents' replies quote the visitor too) and deletes the
attachments: their rows now, their files once the erase commits. Conversations stay, with
their links, times and status, so the inbox's counts and the record's chat panel hold.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import peewee

from crm_plugins.chat.models import ChatAttachment, ChatConversation, ChatMessage
from crmcore.sdk import PrivacySection, User, on_commit

log = logging.getLogger("crm_plugins.chat")

#: What an erased message says instead of its text.
ERASED_MESSAGE = "[erased]"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def conversations_of(lead_ids: list[int], contact_ids: list[int]) -> peewee.ModelSelect:
    """The conversations linked to any of these leads or contacts."""
    cond = ChatConversation.lead.in_(lead_ids or [0]) | ChatConversation.contact.in_(contact_ids or [0])
    return ChatConversation.select().where(cond).order_by(ChatConversation.id)


def export(lead_ids: list[int], contact_ids: list[int]) -> list[PrivacySection]:
    """The person's conversations with their messages and attachments' metadata (the
    files themselves are served by the inbox; their names, types and sizes are here)."""
    conversations = list(conversations_of(lead_ids, contact_ids))
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    messages: dict[int, list[ChatMessage]] = {}
    for m in ChatMessage.select().where(ChatMessage.conversation.in_(ids)).order_by(ChatMessage.id):
        messages.setdefault(m.conversation_id, []).append(m)
    attachments = {
        a.message_id: a
        for a in ChatAttachment.select().join(ChatMessage, on=(ChatAttachment.message == ChatMessage.id)).where(ChatMessage.conversation.in_(ids))
    }
    authors = {u.id: u.name or u.email for u in User.select().where(User.id.in_({m.author_id for ms in messages.values() for m in ms if m.author_id} or {0}))}

    def message(m: ChatMessage) -> dict[str, Any]:
        a = attachments.get(m.id)
        return {
            "id": m.id, "sender": m.sender, "author": authors.get(m.author_id), "content": m.content,
            "created_at": _iso(m.created_at), "read_at": _iso(m.read_at),
            "attachment": {"name": a.name, "content_type": a.content_type, "size": a.size, "created_at": _iso(a.created_at)} if a else None,
        }

    data = [
        {
            "id": c.id, "status": c.status, "lead_id": c.lead_id, "contact_id": c.contact_id,
            "visitor_name": c.visitor_name, "visitor_email": c.visitor_email, "visitor_phone": c.visitor_phone,
            "page_url": c.page_url, "origin": c.origin, "created_at": _iso(c.created_at), "last_message_at": _iso(c.last_message_at),
            "messages": [message(m) for m in messages.get(c.id, [])],
        }
        for c in conversations
    ]
    return [PrivacySection("chat", {"conversations": data})]


def erase(tenant: Any, lead_ids: list[int], contact_ids: list[int]) -> dict[str, int]:
    """Anonymise the person's conversations and messages, delete their attachments (the
    files after commit, so a refused erase keeps them). Rows changed per table."""
    from crm_plugins.chat import service

    ids = [c.id for c in conversations_of(lead_ids, contact_ids).select(ChatConversation.id)]
    if not ids:
        return {}
    attachments = list(ChatAttachment.select().join(ChatMessage, on=(ChatAttachment.message == ChatMessage.id)).where(ChatMessage.conversation.in_(ids)))
    paths = [service.attachment_path(tenant, a) for a in attachments]
    deleted = ChatAttachment.delete().where(ChatAttachment.id.in_([a.id for a in attachments])).execute() if attachments else 0
    messages = ChatMessage.update(content=ERASED_MESSAGE, client_id=None, has_attachment=False).where(ChatMessage.conversation.in_(ids)).execute()
    for conversation_id in ids:  # each its own random hash: the column is unique
        ChatConversation.update(
            visitor_name="", visitor_email=None, visitor_phone=None, page_url="", visitor_hash=secrets.token_hex(32),
        ).where(ChatConversation.id == conversation_id).execute()

    def remove_files() -> None:
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # the rows are gone; an orphan file is logged for the admin
                log.exception("chat: could not delete the erased attachment file %s", path)

    on_commit(remove_files)
    # Open inboxes show the anonymised conversations (published after commit).
    for conversation in ChatConversation.select().where(ChatConversation.id.in_(ids)):
        service.announce_conversation(tenant, conversation, "erased")
    return {"chat_conversation": len(ids), "chat_message": messages, "chat_attachment": deleted}


def merge(entity: str, kept_id: int, merged_id: int) -> dict[str, int]:
    """Point the merged lead's or contact's conversations at the kept one (the link would
    otherwise be cleared by ON DELETE SET NULL when the merged record goes)."""
    field = {"lead": ChatConversation.lead, "contact": ChatConversation.contact}.get(entity)
    if field is None:
        return {}
    moved = ChatConversation.update({field: kept_id}).where(field == merged_id).execute()
    # A visitor's unconfirmed claim follows the record too (not counted: nothing linked).
    claim = {"lead": ChatConversation.claimed_lead, "contact": ChatConversation.claimed_contact}[entity]
    ChatConversation.update({claim: kept_id}).where(claim == merged_id).execute()
    return {"chat_conversation": moved} if moved else {}
