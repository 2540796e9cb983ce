"""The channels plugin's automation triggers (offered through the automation plugin's
``crm_automation_triggers`` hook, so only to tenants with channels on): a message is
received, sent or failed, on any channel.

The occurrence is about the conversation's contact, else its lead (a rule on leads or on
contacts). Facts for conditions: ``event.channel``, ``event.subject``,
``event.conversation_id``, ``event.message_id`` and, for a failure, ``event.reason``. An
automatic reply (``Auto-Submitted``, out of office) is not an occurrence of
``message_received``: rules must not answer robots, nor count them as replies.
"""

from __future__ import annotations

from typing import Any

from crm_plugins.automation.contrib import AutomationTrigger, TriggerEvent

PEOPLE = ("lead", "contact")


def _channel_matches(options: dict[str, Any], event: TriggerEvent) -> bool:
    wanted = options.get("channel")
    return wanted in (None, "") or event.facts.get("channel") == wanted


def _event(message: Any = None, conversation: Any = None, channel: str = "", reason: str | None = None,
           automated: bool = False, **_: Any) -> TriggerEvent | None:
    if message is None or conversation is None or automated:
        return None
    facts = {"channel": channel, "subject": message.subject or "", "conversation_id": conversation.id, "message_id": message.id}
    if reason is not None:
        facts["reason"] = reason
    if conversation.contact_id:
        return TriggerEvent("contact", conversation.contact_id, facts)
    if conversation.lead_id:
        return TriggerEvent("lead", conversation.lead_id, facts)
    return None


OPTIONS = {"channel": "only messages of this channel (email, sms ...)"}
TRIGGERS = [
    AutomationTrigger("message_received", "message_received", "A message is received (a reply)", PEOPLE, _event, OPTIONS, _channel_matches),
    AutomationTrigger("message_sent", "message_sent", "A message is sent", PEOPLE, _event, OPTIONS, _channel_matches),
    AutomationTrigger("message_failed", "message_failed", "A message failed (bounce, refusal)", PEOPLE, _event, OPTIONS, _channel_matches),
]
