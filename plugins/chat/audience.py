"""Who hears the inbox's live events.

The inbox feed (``chat:inbox``) carries conversations and their messages. With the core's
``agents_see_own_only``, an agent may only see conversations whose lead and contact they
own or nobody owns, so every inbox event also goes to one narrower topic:
``chat:inbox:open`` (no linked record has an owner) or ``chat:inbox:owner:<user id>``
(the linked records' one owner), and none when two owners differ. Those agents listen
there; the rules below (``crm_live_topic_rules``) refuse them the whole feed and the
topic of a conversation they cannot open.
"""

from __future__ import annotations

from typing import Any

from crmcore import sdk
from crmcore.sdk import Contact, Lead

INBOX_TOPIC = "chat:inbox"
OPEN_TOPIC = "chat:inbox:open"
CONVERSATION_PREFIX = "chat:conversation:"


def owner_topic(user_id: int) -> str:
    return f"{INBOX_TOPIC}:owner:{user_id}"


def audience_topic(conversation: Any) -> str | None:
    """The narrow topic of a conversation's inbox events (see the module's docstring)."""
    owners = set()
    if conversation.lead_id:
        owners.add(Lead.select(Lead.owner).where(Lead.id == conversation.lead_id).scalar())
    if conversation.contact_id:
        owners.add(Contact.select(Contact.owner).where(Contact.id == conversation.contact_id).scalar())
    owners.discard(None)
    if not owners:
        return OPEN_TOPIC
    return owner_topic(owners.pop()) if len(owners) == 1 else None


def narrowed(data: dict[str, Any]) -> dict[str, Any]:
    """An inbox event for the narrow topic: without the claims (the record a visitor
    says they are may be one its listeners cannot see; the page shows visible ones)."""
    conversation = data.get("conversation")
    if not isinstance(conversation, dict):
        return data
    return {**data, "conversation": {**conversation, "claimed_lead_id": None, "claimed_contact_id": None}}


def inbox_topics(ctx: Any = None) -> list[str]:
    """The inbox topics the caller listens to."""
    ctx = ctx or sdk.current_context()
    if not sdk.sees_own_records_only(ctx):
        return [INBOX_TOPIC]
    return [OPEN_TOPIC, owner_topic(ctx.user_id)]


def may_hear_inbox(topic: str) -> bool:
    ctx = sdk.current_context()
    return not sdk.sees_own_records_only(ctx) or topic in inbox_topics(ctx)


def may_hear_conversation(topic: str) -> bool:
    if not sdk.sees_own_records_only(sdk.current_context()):
        return True
    from crm_plugins.chat.api import visible_conversations
    from crm_plugins.chat.models import ChatConversation

    try:
        conversation_id = int(topic.removeprefix(CONVERSATION_PREFIX))
    except ValueError:
        return False
    return visible_conversations(ChatConversation.select(ChatConversation.id).where(ChatConversation.id == conversation_id)).exists()


def topic_rules() -> list[sdk.LiveTopicRule]:
    return [
        sdk.LiveTopicRule(INBOX_TOPIC, may_hear_inbox, "the inbox feed, or its part the caller may see"),
        sdk.LiveTopicRule(CONVERSATION_PREFIX, may_hear_conversation, "a conversation the caller may open"),
    ]
