"""What activities, notes and tasks share: the link to a lead, contact, company or deal.

Not a resource (no ``blp``): the schema fields, checks and filters that
crmcore.api.activities, .notes, .todos and .timeline use alike.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from crmcore.api import common
from crmcore.api.schema import Schema
from crmcore.entities import links, visibility
from crmcore.entities.checks import check_user  # noqa: F401 - moved to the domain; importable here as before
from crmcore.entities.links import LINK_IDS, rename_links  # noqa: F401 - likewise
from crmcore.entities.visibility import LINKS  # link name -> model; the API field is ``<name>_id``


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
    return visibility.restricted(common.request_context())


def visible(query: Any, model: type) -> Any:
    """Limit ``query`` (activities, notes or tasks) to rows whose every link is visible
    (:func:`crmcore.entities.visibility.visible_linked` for this request)."""
    return visibility.visible_linked(query, model, common.request_context())


def record_or_404(model: type, record_id: int, what: str) -> Any:
    """The visible linked record ``record_id`` or 404 (other tenants' ids included)."""
    from flask_smorest import abort

    record = visible(model.select().where(model.id == record_id), model).first()
    if record is None:
        abort(404, message=f"no {what} {record_id}")
    return record


def check_links(data: dict[str, Any], errors: dict[str, Any], record: Any = None, required: bool = True) -> None:
    """Each ``<link>_id`` sent must name a visible record of this tenant; with
    ``required``, at least one link must remain set (:func:`crmcore.entities.links.check_links`)."""
    links.check_links(data, errors, record, required, common.request_context())


def filter_links(query: Any, model: type, args: dict[str, Any]) -> Any:
    for name in LINKS:
        if args.get(f"{name}_id") is not None:
            query = query.where(getattr(model, name) == args[f"{name}_id"])
    return query
