"""@mentions in notes notify the colleague (issue 16).

The domain already resolves a note's mentions (``@<email of a user>`` in the body, or
ids in ``mentions``; unknown ones are a 422) into ``Note.mentions``
(:func:`crmcore.entities.links.note_input`). These receivers turn them into in-app
notifications through :func:`crmcore.notifications.notify` (kind ``mention``, muteable
on the profile page), with a link to the note's record: everyone mentioned when a note
is created, and only the newly mentioned when it is edited. The author is never told
about their own mention. One ``notify`` call per note: a constant number of queries.
"""

from __future__ import annotations

from typing import Any, Iterable

from crmcore import db, notifications
from crmcore.db import Tenant
from crmcore.models import User

KIND = "mention"
#: the note's links, in the order the notification's link prefers them
RECORD_PAGES = (("lead", "leads"), ("deal", "deals"), ("contact", "contacts"), ("company", "companies"))


def _notify(tenant: Tenant, note: Any, user_ids: Iterable[int]) -> int:
    ids = sorted({int(i) for i in user_ids} - {note.author_id})
    if not ids:
        return 0
    with db.tenant_context(tenant):
        author = User.get_or_none(User.id == note.author_id) if note.author_id else None
        who = (author.name or author.email) if author is not None else "Someone"
        link = next((f"/app/{plural}/{getattr(note, f'{entity}_id')}" for entity, plural in RECORD_PAGES if getattr(note, f"{entity}_id", None)), None)
        return notifications.notify(tenant, ids, kind=KIND, title=f"{who} mentioned you in a note", text=(note.body or "")[:500], link=link)


def on_note_created(tenant: Tenant, record: Any = None, **_: Any) -> None:
    """Receiver of ``note_created``: notify everyone the note mentions."""
    if record is not None and record.mentions:
        _notify(tenant, record, record.mentions)


def on_note_updated(tenant: Tenant, record: Any = None, changes: dict[str, Any] | None = None, **_: Any) -> None:
    """Receiver of ``note_updated``: notify only the users the edit added."""
    change = (changes or {}).get("mentions")
    if record is None or not change:
        return
    before, after = change
    _notify(tenant, record, set(after or []) - set(before or []))
