"""Quiet hours: a tenant's window (``[settings.channels] quiet_hours = "21:00-08:00"``)
during which non-urgent outbound messages of every channel wait in the outbox, in the
recipient's time zone (the conversation's contact's ``timezone``, else the tenant's
``time_zone``). A message is held, never dropped: it is due again when the window
opens.

The window is checked twice: when a message is queued (it is due at the opening, so the
outbox does not wake for it) and when the drain task takes it (a retry's backoff, a
setting changed since, a message queued before the window began), for a whole batch in
one query (the contacts' time zones).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmcore.sdk import Contact

WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def parse_window(text: str) -> tuple[dt.time, dt.time] | None:
    """``"21:00-08:00"`` as (start, end); None for ``""`` (no quiet hours). Raises
    ValueError for anything else (the settings schema shows it when the config loads)."""
    text = (text or "").strip()
    if not text:
        return None
    match = WINDOW.match(text)
    if not match:
        raise ValueError("quiet hours are HH:MM-HH:MM in 24-hour time, like 21:00-08:00")
    start = dt.time(int(match.group(1)), int(match.group(2)))
    end = dt.time(int(match.group(3)), int(match.group(4)))
    if start == end:
        raise ValueError("quiet hours must start and end at different times")
    return start, end


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The IANA zone ``name`` (a contact's), else ``fallback`` (the tenant's), else UTC."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_until(window: tuple[dt.time, dt.time] | None, tz: ZoneInfo, now: dt.datetime) -> dt.datetime | None:
    """When the quiet window that ``now`` (naive UTC) falls in ends, as naive UTC; None
    when ``now`` is outside it (or there is no window)."""
    if window is None:
        return None
    start, end = window
    local = now.replace(tzinfo=dt.UTC).astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:  # a window within one day (12:00-14:00)
        quiet = start <= clock < end
        opening_day = local.date()
    else:  # overnight (21:00-08:00): the opening is tomorrow when it is evening
        quiet = clock >= start or clock < end
        opening_day = local.date() + dt.timedelta(days=1) if clock >= start else local.date()
    if not quiet:
        return None
    opening = dt.datetime.combine(opening_day, end, tzinfo=tz)
    return opening.astimezone(dt.UTC).replace(tzinfo=None)


def window_of(conf: Any) -> tuple[dt.time, dt.time] | None:
    try:
        return parse_window(conf.get("quiet_hours", ""))
    except ValueError:
        return None  # checked when the config loads; never stop sending over it


def opening_for(conf: Any, contact_timezone: str | None, now: dt.datetime) -> dt.datetime | None:
    """When a non-urgent message to someone in ``contact_timezone`` may go (None: now)."""
    return quiet_until(window_of(conf), zone(contact_timezone, conf.get("time_zone") or "UTC"), now)


def postponed(conf: Any, messages: list[Any], conversations: dict[int, Any], now: dt.datetime) -> dict[int, dt.datetime]:
    """{message id: opening} of the non-urgent ``messages`` whose recipient is in quiet
    hours now; one query for the whole batch (the contacts' time zones)."""
    window = window_of(conf)
    candidates = [m for m in messages if not m.urgent]
    if window is None or not candidates:
        return {}
    contact_ids = {conversations[m.conversation_id].contact_id for m in candidates if m.conversation_id in conversations} - {None}
    zones = ({c.id: c.timezone for c in Contact.select(Contact.id, Contact.timezone).where(Contact.id.in_(sorted(contact_ids)))}
             if contact_ids else {})
    held = {}
    for message in candidates:
        conversation = conversations.get(message.conversation_id)
        contact_id = conversation.contact_id if conversation is not None else None
        opening = quiet_until(window, zone(zones.get(contact_id), conf.get("time_zone") or "UTC"), now)
        if opening is not None:
            held[message.id] = opening
    return held
