"""The inbox of every channel: one list of the shared conversations and of those a
channel keeps in its own tables (the website chat, through ``Channel.conversations``),
in ONE query: a UNION ALL of the sources, filtered by channel, status, queue
(unassigned, mine) and what the caller may see, ordered by the last message and paged
by keyset."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee

from crm_plugins.channels.contrib import INBOX_COLUMNS, Channel
from crm_plugins.channels.models import Conversation
from crmcore import sdk
from crmcore.sdk import Contact, Lead

QUEUES = (("all", "All"), ("unassigned", "Unassigned"), ("mine", "Mine"))


@dataclass(frozen=True)
class InboxRow:
    """One conversation of the list, whatever channel keeps it."""

    channel: str
    id: int
    subject: str
    name: str
    address: str
    status: str
    assignee_id: int | None
    lead_id: int | None
    contact_id: int | None
    last_message_at: dt.datetime


def shared_conversations() -> Any:
    """The channels plugin's own conversations, as inbox rows."""
    return Conversation.select(
        Conversation.channel, Conversation.id, Conversation.subject, peewee.Value("").alias("name"), Conversation.address,
        Conversation.status, Conversation.assignee.alias("assignee_id"), Conversation.lead.alias("lead_id"),
        Conversation.contact.alias("contact_id"), Conversation.last_message_at,
    )


def _sources(channels: dict[str, Channel], channel: str) -> list[Any]:
    sources = []
    if not channel or not (channel in channels and channels[channel].conversations):
        sources.append(shared_conversations())
    for name, found in channels.items():
        if found.conversations and (not channel or channel == name):
            sources.append(found.conversations())
    return sources


def page(channels: dict[str, Channel], *, channel: str = "", status: str = "", queue: str = "all", user_id: int | None = None,
         limit: int = 50, cursor: str | None = None) -> tuple[list[InboxRow], str | None]:
    """One page of the inbox, newest activity first; ``next_cursor`` or None.

    A damaged ``cursor`` is a 422. One query whatever the number of channels
    and conversations."""
    sources = _sources(channels, channel)
    union = sources[0]
    for source in sources[1:]:
        union = union + source  # UNION ALL
    rows = union.select_from(*[peewee.SQL(f'"{c}"') for c in INBOX_COLUMNS])
    column = {name: peewee.Entity(name) for name in INBOX_COLUMNS}
    if channel:
        rows = rows.where(column["channel"] == channel)
    if status:
        rows = rows.where(column["status"] == status)
    if queue == "unassigned":
        rows = rows.where(column["assignee_id"].is_null())
    elif queue == "mine":
        rows = rows.where(column["assignee_id"] == (user_id or 0))
    # what the caller may see: conversations whose lead and contact they may see (one
    # not linked to anything is everybody's), the rule the chat inbox has always had
    rows = rows.where(
        (column["lead_id"].is_null() | column["lead_id"].in_(sdk.visible(Lead.select(Lead.id), Lead)))
        & (column["contact_id"].is_null() | column["contact_id"].in_(sdk.visible(Contact.select(Contact.id), Contact))))
    if cursor:
        when, name, last_id = _decode(cursor)
        stamp = column["last_message_at"]
        rows = rows.where((stamp <= when) & ((stamp < when) | ((stamp == when) & (
            (column["channel"] > name) | ((column["channel"] == name) & (column["id"] < last_id))))))
    rows = rows.order_by(column["last_message_at"].desc(), column["channel"].asc(), column["id"].desc()).limit(limit + 1)
    found = [_row(values) for values in rows.tuples()]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        next_cursor = sdk.encode_cursor([last.last_message_at, last.channel, last.id])
    return found, next_cursor


def _row(values: tuple[Any, ...]) -> InboxRow:
    data = dict(zip(INBOX_COLUMNS, values, strict=True))
    data["last_message_at"] = Conversation.last_message_at.python_value(data["last_message_at"])
    data["subject"], data["name"], data["address"] = data["subject"] or "", data["name"] or "", data["address"] or ""
    return InboxRow(**data)


def _decode(cursor: str) -> tuple[dt.datetime, str, int]:
    values = sdk.decode_cursor(cursor)
    if len(values) != 3 or not isinstance(values[0], dt.datetime) or not isinstance(values[2], int):
        from flask import abort

        abort(422)
    return values[0], str(values[1]), values[2]
