"""What a caller may see: the "agents see their own records" rule.

With the tenant setting ``[settings.core] agents_see_own_only``, an agent sees the leads,
contacts, companies and deals they own or nobody owns, and the activities, notes and
tasks whose every link is such a record. Everyone else sees the whole tenant. These
functions narrow a query; they never fetch anything themselves.
"""

from __future__ import annotations

from typing import Any

from crmcore.entities.context import Context, resolve
from crmcore.entities.models import Company, Contact, Deal, Lead

#: link name -> model, for activities, notes and tasks (the API field is ``<name>_id``)
LINKS: dict[str, type] = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}


def restricted(ctx: Context | None = None) -> bool:
    """True when the caller sees only some records (an agent with ``agents_see_own_only``)."""
    ctx = resolve(ctx)
    return ctx.role == "agent" and bool(ctx.setting("agents_see_own_only", False))


def visible(query: Any, model: type, ctx: Context | None = None) -> Any:
    """Limit ``query`` on an owned model (leads, contacts, companies, deals) to what the caller may see."""
    ctx = resolve(ctx)
    if restricted(ctx):
        query = query.where(model.owner.is_null() | (model.owner == ctx.user_id))
    return query


def visible_linked(query: Any, model: type, ctx: Context | None = None) -> Any:
    """Limit ``query`` on a linked model (activities, notes, tasks) to rows whose every
    link is visible, so an activity never reveals a lead the caller may not open."""
    ctx = resolve(ctx)
    if not restricted(ctx):
        return query
    for name, target in LINKS.items():
        column = getattr(model, name)
        query = query.where(column.is_null() | column.in_(visible(target.select(target.id), target, ctx)))
    return query


def can_see(model: type, record_id: Any, ctx: Context | None = None) -> bool:
    """Whether the owned record ``record_id`` exists in this tenant and the caller may see it."""
    return visible(model.select(model.id).where(model.id == record_id), model, ctx).exists()
