"""What activities, notes and tasks share: the link to a lead, contact, company or deal.

Not a resource (no ``blp``): the schema fields, checks and filters that
crmcore.api.activities, .notes, .todos and .timeline use alike.
"""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import fields

from crmcore.api.schema import Schema
from crmcore.api import common
from crmcore.entities.models import Company, Contact, Deal, Lead
from crmcore.models import User

#: link name -> model; the API field is ``<name>_id``
LINKS: dict[str, type] = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}
LINK_IDS = tuple(f"{name}_id" for name in LINKS)


class LinkFieldsSchema(Schema):
    """The link fields every linked record has (base of the record schemas)."""

    lead_id = fields.Integer(allow_none=True, metadata={"description": "The lead this belongs to."})
    contact_id = fields.Integer(allow_none=True)
    company_id = fields.Integer(allow_none=True)
    deal_id = fields.Integer(allow_none=True)


class LinkFilterArgs(common.PageArgs):
    """List filters by linked record (base of the query-args schemas)."""

    lead_id = fields.Integer()
    contact_id = fields.Integer()
    company_id = fields.Integer()
    deal_id = fields.Integer()


def restricted() -> bool:
    """True when the caller only sees some leads/contacts/companies/deals (agents with
    ``agents_see_own_only``): then linked records follow the visibility of their links."""
    from crmcore.app import crm_state

    return g.get("role") == "agent" and bool(crm_state().settings(g.tenant, "core")["agents_see_own_only"])


def visible(query: Any, model: type) -> Any:
    """Limit ``query`` (activities, notes or tasks) to rows whose every link is visible,
    so an activity never reveals a lead the caller may not open (subqueries, no extra
    round trips)."""
    if not restricted():
        return query
    for name, target in LINKS.items():
        column = getattr(model, name)
        query = query.where(column.is_null() | column.in_(common.visible(target.select(target.id), target)))
    return query


def record_or_404(model: type, record_id: int, what: str) -> Any:
    """The visible linked record ``record_id`` or 404 (other tenants' ids included)."""
    from flask_smorest import abort

    record = visible(model.select().where(model.id == record_id), model).first()
    if record is None:
        abort(404, message=f"no {what} {record_id}")
    return record


def check_links(data: dict[str, Any], errors: dict[str, Any], record: Any = None, required: bool = True) -> None:
    """Each ``<link>_id`` sent must name a visible record of this tenant (one query per
    link sent); with ``required``, at least one link must remain set. Renames the keys
    to the model's field names (``lead_id`` -> ``lead``)."""
    for name, target in LINKS.items():
        key = f"{name}_id"
        value = data.get(key)
        if value is not None and not common.visible(target.select(target.id).where(target.id == value), target).exists():
            errors[key] = [f"No such {name} in this tenant."]
    if required:
        after = {key: data[key] if key in data else (getattr(record, key) if record is not None else None) for key in LINK_IDS}
        if all(v is None for v in after.values()):
            errors.setdefault("_schema", []).append(f"Link it to at least one of {', '.join(LINK_IDS)}.")


def rename_links(data: dict[str, Any]) -> None:
    for name in LINKS:
        if f"{name}_id" in data:
            data[name] = data.pop(f"{name}_id")


def check_user(data: dict[str, Any], key: str, errors: dict[str, Any]) -> None:
    """``data[key]`` (a user id) must name a user of this tenant."""
    if data.get(key) is not None and not User.select().where(User.id == data[key]).exists():
        errors[key] = ["No such user in this tenant."]


def filter_links(query: Any, model: type, args: dict[str, Any]) -> Any:
    for name in LINKS:
        if args.get(f"{name}_id") is not None:
            query = query.where(getattr(model, name) == args[f"{name}_id"])
    return query
