"""The input rules of activities, notes and tasks: what they link to (a lead, contact,
company or deal of this tenant that the caller may see), who they name (a user, an
assignee, @mentions), and the defaults that come from the caller (author, assignee,
user). Shaped like :mod:`crmcore.entities.checks`: ``<kind>_input(data, record=None,
ctx=None)`` raises :class:`~crmcore.entities.errors.Invalid` or completes ``data`` in
place with the model's field names.
"""

from __future__ import annotations

import re
from typing import Any

from crmcore.db import utcnow
from crmcore.entities import visibility
from crmcore.entities.checks import check_user, naive_utc
from crmcore.entities.context import Context, resolve
from crmcore.entities.errors import Invalid
from crmcore.entities.models import Activity, Note, Task
from crmcore.entities.visibility import LINKS
from crmcore.models import User

LINK_IDS = tuple(f"{name}_id" for name in LINKS)

#: ``@ada@example.com``: an @ not glued to a word, then an email address
MENTION = re.compile(r"(?<![\w.+-])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


def check_links(data: dict[str, Any], errors: dict[str, Any], record: Any = None, required: bool = True, ctx: Context | None = None) -> None:
    """Each ``<link>_id`` sent must name a visible record of this tenant (one query per
    link sent); with ``required``, at least one link must remain set."""
    for name, target in LINKS.items():
        key = f"{name}_id"
        value = data.get(key)
        if value is not None and not visibility.can_see(target, value, ctx):
            errors[key] = [f"No such {name} in this tenant."]
    if required:
        after = {key: data[key] if key in data else (getattr(record, key) if record is not None else None) for key in LINK_IDS}
        if all(v is None for v in after.values()):
            errors.setdefault("_schema", []).append(f"Link it to at least one of {', '.join(LINK_IDS)}.")


def rename_links(data: dict[str, Any]) -> None:
    """``lead_id`` -> ``lead`` ... (the model's field names)."""
    for name in LINKS:
        if f"{name}_id" in data:
            data[name] = data.pop(f"{name}_id")


def mentioned_in(body: str, errors: dict[str, Any] | None = None) -> set[int]:
    """Ids of the users ``body`` mentions by email (one query); unknown ones go to
    ``errors["body"]`` when errors is given, and are ignored otherwise."""
    emails = {m.lower() for m in MENTION.findall(body or "")}
    if not emails:
        return set()
    found = dict(User.select(User.email, User.id).where(User.email.in_(sorted(emails))).tuples())
    unknown = sorted(emails - set(found))
    if unknown and errors is not None:
        errors["body"] = [f"No user with the email {e} to mention." for e in unknown]
    return set(found.values())


def activity_input(data: dict[str, Any], record: Activity | None = None, ctx: Context | None = None) -> None:
    """Links and user in this tenant; a new activity is the caller's unless ``user_id`` says otherwise."""
    ctx = resolve(ctx)
    errors: dict[str, Any] = {}
    check_links(data, errors, record, ctx=ctx)
    check_user(data, "user_id", errors)
    if errors:
        raise Invalid(errors)
    rename_links(data)
    if record is None and "user_id" not in data:
        data["user_id"] = ctx.user_id
    if "user_id" in data:
        data["user"] = data.pop("user_id")
    if "occurred_at" in data:
        data["occurred_at"] = naive_utc(data["occurred_at"])


def note_input(data: dict[str, Any], record: Note | None = None, ctx: Context | None = None) -> None:
    """Links in this tenant; mentions resolved to user ids (Invalid for unknown ones);
    a new note's author is the caller."""
    ctx = resolve(ctx)
    errors: dict[str, Any] = {}
    check_links(data, errors, record, ctx=ctx)
    if "body" in data or "mentions" in data:
        body = data.get("body", record.body if record is not None else "")
        in_body = mentioned_in(body, errors)
        if "mentions" in data:
            explicit = set(data["mentions"])
            known = {i for (i,) in User.select(User.id).where(User.id.in_(sorted(explicit))).tuples()} if explicit else set()
            if explicit - known:
                errors["mentions"] = [f"No user {i} in this tenant." for i in sorted(explicit - known)]
        else:  # keep the explicit mentions; the body's are recomputed
            explicit = set(record.mentions or []) - mentioned_in(record.body) if record is not None else set()
        data["mentions"] = sorted(explicit | in_body)
    if errors:
        raise Invalid(errors)
    rename_links(data)
    if record is None:
        data["author"] = ctx.user_id


def task_input(data: dict[str, Any], record: Task | None = None, ctx: Context | None = None) -> None:
    """Links and assignee in this tenant (a new task is the caller's unless
    ``assignee_id`` says otherwise); completed_at follows the status."""
    ctx = resolve(ctx)
    errors: dict[str, Any] = {}
    check_links(data, errors, record, required=False, ctx=ctx)
    check_user(data, "assignee_id", errors)
    if errors:
        raise Invalid(errors)
    rename_links(data)
    if record is None and "assignee_id" not in data:
        data["assignee_id"] = ctx.user_id
    if "assignee_id" in data:
        data["assignee"] = data.pop("assignee_id")
    for key in ("due_at", "reminder_at"):
        if key in data:
            data[key] = naive_utc(data[key])
    if record is not None and "reminder_at" in data and data["reminder_at"] != record.reminder_at and record.reminder_sent_at is not None:
        data["reminder_sent_at"] = None  # a new reminder time: remind again
    old_status = record.status if record is not None else None
    if "status" in data and data["status"] != old_status and (record is not None or data["status"] == "done"):
        data["completed_at"] = utcnow() if data["status"] == "done" else None
