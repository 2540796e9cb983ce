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

    A damaged ``cursor`` is a 422. One query whatever the number of channels and
    conversations: each source filtered, ordered and cut to a page on its own (so each
    reads its index on the last message, bench/results/inbox.md), then UNION ALL, then
    the page of the pages."""
    position = _decode(cursor) if cursor else None
    union = None
    for source in _sources(channels, channel):
        branch = _filtered(source, channel, status, queue, user_id, position).limit(limit + 1)
        branch = branch.select_from(*_COLUMNS)  # ORDER BY / LIMIT inside a subquery: SQLite's compound members allow none
        union = branch if union is None else union + branch  # UNION ALL
    rows = union.select_from(*_COLUMNS).order_by(*_ORDER).limit(limit + 1)
    found = [_row(values) for values in rows.tuples()]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        next_cursor = sdk.encode_cursor([last.last_message_at, last.channel, last.id])
    return found, next_cursor


_COLUMNS = [peewee.SQL(f'"{name}"') for name in INBOX_COLUMNS]
_C = {name: peewee.Entity(name) for name in INBOX_COLUMNS}
#: ids are unique per table only, so the channel breaks a tie of time and id; inside one
#: source (time, id) is a total order already, which its index on the last message serves
_ORDER = [_C["last_message_at"].desc(), _C["id"].desc(), _C["channel"].asc()]
_SOURCE_ORDER = [_C["last_message_at"].desc(), _C["id"].desc()]


def _filtered(source: Any, channel: str, status: str, queue: str, user_id: int | None, position: Any) -> Any:
    """``source``'s rows that the filters keep, past the cursor's position, in order."""
    rows = source.select_from(*_COLUMNS)
    if channel:
        rows = rows.where(_C["channel"] == channel)
    if status:
        rows = rows.where(_C["status"] == status)
    if queue == "unassigned":
        rows = rows.where(_C["assignee_id"].is_null())
    elif queue == "mine":
        rows = rows.where(_C["assignee_id"] == (user_id or 0))
    # what the caller may see: conversations whose lead and contact they may see (one
    # not linked to anything is everybody's), the rule the chat inbox has always had
    rows = rows.where(
        (_C["lead_id"].is_null() | _C["lead_id"].in_(sdk.visible(Lead.select(Lead.id), Lead)))
        & (_C["contact_id"].is_null() | _C["contact_id"].in_(sdk.visible(Contact.select(Contact.id), Contact))))
    if position is not None:
        when, name, last_id = position
        stamp = _C["last_message_at"]
        rows = rows.where((stamp <= when) & ((stamp < when) | ((stamp == when) & (
            (_C["id"] < last_id) | ((_C["id"] == last_id) & (_C["channel"] > name))))))
    return rows.order_by(*_SOURCE_ORDER)


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
