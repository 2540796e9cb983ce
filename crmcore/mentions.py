"""@mentions in notes: a colleague named in a note gets an in-app notification.

A mention is ``@`` and a user's email address, or the part of it before the ``@`` when
that is unique among the tenant's users (``@ada`` for ada@acme.example). The receiver
of ``note_created`` finds the mentioned users in one query and notifies them (kind
``mention``, muteable like any kind) with a link to the note's record; the author is not
notified of their own mention.
"""

from __future__ import annotations

import re
from typing import Any

from crmcore import db, notifications
from crmcore.db import Tenant
from crmcore.models import User

MENTION = re.compile(r"(?<![\w.@])@([a-z0-9][a-z0-9._%+-]*(?:@[a-z0-9-]+(?:\.[a-z0-9-]+)+)?)", re.IGNORECASE)
MAX_MENTIONS = 20
KIND = "mention"
RECORD_PAGES = (("lead", "leads"), ("deal", "deals"), ("contact", "contacts"), ("company", "companies"))


def mentioned(text: str) -> tuple[set[str], set[str]]:
    """(full addresses, bare names) mentioned in ``text``, lower-cased, at most MAX_MENTIONS."""
    found = [m.rstrip(".").lower() for m in MENTION.findall(text or "")][:MAX_MENTIONS]
    return {m for m in found if "@" in m}, {m for m in found if "@" not in m}


def users_mentioned(text: str) -> list[int]:
    """Ids of the current tenant's active users mentioned in ``text`` (one query)."""
    addresses, names = mentioned(text)
    if not addresses and not names:
        return []
    cond = User.email.in_(list(addresses) or [""])
    for name in names:
        cond = cond | (User.email ** f"{name}@%")  # ILIKE: the local part, any domain
    rows = list(User.select(User.id, User.email).where(cond & (User.active == True)))  # noqa: E712
    ids = {u.id for u in rows if u.email in addresses}
    for name in names:
        matches = [u.id for u in rows if u.email.split("@", 1)[0] == name]
        if len(matches) == 1:  # ambiguous bare names notify nobody
            ids.update(matches)
    return sorted(ids)


def on_note_created(tenant: Tenant, record: Any = None, **_: Any) -> None:
    """Receiver of ``note_created``: notify the users the note mentions."""
    if record is None or "@" not in (record.body or ""):
        return
    with db.tenant_context(tenant):
        ids = [i for i in users_mentioned(record.body) if i != record.author_id]
        if not ids:
            return
        author = User.get_or_none(User.id == record.author_id) if record.author_id else None
        link = next((f"/app/{plural}/{getattr(record, f'{entity}_id')}" for entity, plural in RECORD_PAGES
                     if getattr(record, f"{entity}_id", None)), None)
        who = (author.name or author.email) if author is not None else "Someone"
        notifications.notify(tenant, ids, kind=KIND, title=f"{who} mentioned you in a note", text=(record.body or "")[:500], link=link)

