"""Sentiment per conversation of the channels plugin (email, SMS ... threads).

The inbound messages are scored as entity ``message`` with their ``conversation_id``
(interactions.on_channel_message); here they are read back per conversation, for the
conversations of a record (found through the channels plugin's contract module).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import Case, fn

from crm_plugins.insights import sentiment
from crm_plugins.insights.models import InteractionSentiment
from crmcore import sdk

#: the records a conversation can be linked to (channels' Conversation.lead/contact/deal)
LINKED_ENTITIES = ("lead", "contact", "deal")
#: how many of a record's newest messages are looked at to find its conversations
MESSAGES_LOOKED_AT = 200


def _direction(recent: float | None, previous: float | None) -> str:
    if recent is None or previous is None:
        return "steady" if recent is not None else "unknown"
    return "improving" if recent - previous >= 0.1 else "declining" if previous - recent >= 0.1 else "steady"


def trends(conversation_ids: list[int], window_days: float | None = None) -> dict[int, dict[str, Any]]:
    """For each conversation: the average of its scored messages, of the recent window and
    of the one before, the direction, the newest score and the counts (two queries
    whatever the number of conversations)."""
    if not conversation_ids:
        return {}
    window = window_days or sdk.settings(sdk.current_tenant(), "insights")["sentiment_window_days"]
    since = sdk.utcnow() - dt.timedelta(days=window)
    before = since - dt.timedelta(days=window)
    s = InteractionSentiment
    scope = (s.entity == "message") & s.conversation_id.in_(list(conversation_ids))
    case = lambda condition, then, otherwise=None: Case(None, [(condition, then)], otherwise)  # noqa: E731
    rows = (
        s.select(
            s.conversation_id, fn.AVG(s.score), fn.AVG(case(s.occurred_at >= since, s.score)),
            fn.AVG(case((s.occurred_at < since) & (s.occurred_at >= before), s.score)), fn.COUNT(s.score),
            fn.SUM(case(s.status == sentiment.NOT_SCORED, 1, 0)), fn.MAX(s.occurred_at),
        ).where(scope).group_by(s.conversation_id).tuples()
    )
    out: dict[int, dict[str, Any]] = {}
    for conversation_id, average, recent, previous, scored, not_scored, last_at in rows:
        out[conversation_id] = {
            "conversation_id": conversation_id,
            "average": None if average is None else round(float(average), 3),
            "recent_average": None if recent is None else round(float(recent), 3),
            "previous_average": None if previous is None else round(float(previous), 3),
            "direction": _direction(recent, previous), "scored": int(scored or 0), "not_scored": int(not_scored or 0),
            "last_at": last_at, "latest_score": None, "window_days": window,
        }
    # the newest score of each: the row with the latest time among the conversation's scored ones
    newest = s.select(s.conversation_id.alias("cid"), fn.MAX(s.occurred_at).alias("at")).where(scope, s.score.is_null(False)).group_by(s.conversation_id)
    latest = (
        s.select(s.conversation_id, s.score).join(newest, on=(s.conversation_id == newest.c.cid) & (s.occurred_at == newest.c.at))
        .where(scope, s.score.is_null(False)).order_by(s.id).tuples()
    )
    for conversation_id, score in latest:
        out[conversation_id]["latest_score"] = score
    return out


def of_record(tenant: Any, entity: str, record_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The sentiment of a lead's, contact's or deal's conversations, newest first, each
    with its channel and subject ([] when the tenant has the channels plugin off)."""
    if entity not in LINKED_ENTITIES or not sdk.is_enabled(tenant, "channels"):
        return []
    import crm_plugins.channels.contrib as channels

    seen: dict[int, Any] = {}
    for message in channels.messages_of(entity, record_id, limit=MESSAGES_LOOKED_AT):
        if message.conversation_id not in seen:
            seen[message.conversation_id] = message
    found = trends(list(seen)[:limit])
    out = []
    for conversation_id, message in list(seen.items())[:limit]:
        if conversation_id in found:
            out.append({**found[conversation_id], "channel": message.channel, "subject": message.subject or ""})
    return out
