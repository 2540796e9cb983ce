"""/api/v1/leads: the reference resource for the entity API.

Other resources follow the same shape: a Schema for the record, a QueryArgs schema for
the list, keyset pagination, ETag on read, If-Match on write, writes through
crmcore.entities.service (audit + signals), permissions through ``require``.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.fields import LONG_TEXT_MAX, MONEY_MAX, EmailAddress, PhoneNumber
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import checks, service
from crmcore.entities.models import LEAD_SOURCES, LEAD_STATUSES, PRIORITIES, Lead, Tag, Tagging

blp = Blueprint("leads", __name__, url_prefix="/leads", description="Leads: people or companies who may buy.")


class LeadSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = EmailAddress(allow_none=True, load_default=None)
    phone = PhoneNumber(allow_none=True, load_default=None)
    company_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    source = fields.String(load_default="manual", validate=validate.Length(min=1, max=30), metadata={"description": f"One of the tenant's lead sources: {', '.join(LEAD_SOURCES)}, its extra_lead_sources and those its plugins add (chat ...). A lead keeps a source that is no longer offered."})
    status = fields.String(load_default="new", validate=validate.OneOf(LEAD_STATUSES))
    priority = fields.String(load_default="medium", validate=validate.OneOf(PRIORITIES))
    owner_id = fields.Integer(allow_none=True, load_default=None)
    estimated_value = fields.Decimal(places=2, as_string=True, allow_none=True, validate=validate.Range(min=0, max=MONEY_MAX))
    last_contact_at = fields.DateTime(allow_none=True)
    budget = fields.String(allow_none=True, validate=validate.Length(max=200))
    authority = fields.String(allow_none=True, validate=validate.Length(max=200))
    need = fields.String(allow_none=True, validate=validate.Length(max=LONG_TEXT_MAX))
    timeline = fields.String(allow_none=True, validate=validate.Length(max=200))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=60)), metadata={"description": "Tag names; the record gets exactly these."})
    custom = fields.Dict(keys=fields.String(), metadata={"description": "Custom field values by key (see /custom-fields)."})
    contact_id = fields.Integer(dump_only=True, allow_none=True)
    company_id = fields.Integer(dump_only=True, allow_none=True)
    converted_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class LeadPageSchema(Schema):
    items = fields.List(fields.Nested(LeadSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "name", "-name", "id", "-id")


class LeadQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Free text: name, email, company name or phone contain it. At most 200 characters."})
    status = fields.List(fields.String(validate=validate.OneOf(LEAD_STATUSES)), metadata={"description": "Repeat for several."})
    source = fields.List(fields.String())
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    owner_id = fields.Integer(metadata={"description": "0 for unassigned."})
    tag = fields.String()
    created_after = fields.DateTime()
    created_before = fields.DateTime()
    updated_after = fields.DateTime()
    updated_before = fields.DateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


def allowed_sources() -> tuple[str, ...]:
    """The lead sources this request's tenant allows (:func:`crmcore.entities.checks.lead_sources`)."""
    return checks.lead_sources(common.request_context())


def check_refs(data: dict[str, Any], record: Any = None) -> None:
    """The domain's lead rules (:func:`crmcore.entities.checks.lead_input`) for this
    request; Invalid becomes 422 in the app's error handler."""
    checks.lead_input(data, record, common.request_context())


def visible(query: Any) -> Any:
    return common.visible(query, Lead)


def dump(leads: list[Lead]) -> list[Lead]:
    return common.with_tags("lead", leads)


def lead_or_404(lead_id: int) -> Lead:
    lead = visible(Lead.select().where(Lead.id == lead_id)).first()
    if lead is None:
        abort(404, message=f"no lead {lead_id}")
    return lead


def filtered(args: dict[str, Any]) -> Any:
    query = visible(Lead.select())
    if args.get("q"):
        like = f"%{args['q'].strip()}%"
        query = query.where(Lead.name.ilike(like) | Lead.email.ilike(like) | Lead.company_name.ilike(like) | Lead.phone.contains(args["q"].strip()))
    if args.get("status"):
        query = query.where(Lead.status.in_(args["status"]))
    if args.get("source"):
        query = query.where(Lead.source.in_(args["source"]))
    if args.get("priority"):
        query = query.where(Lead.priority == args["priority"])
    if "owner_id" in args:
        query = query.where(Lead.owner.is_null() if args["owner_id"] == 0 else Lead.owner == args["owner_id"])
    if args.get("tag"):
        tagged = Tagging.select(Tagging.entity_id).join(Tag, on=(Tagging.tag == Tag.id)).where((Tagging.entity == "lead") & (Tag.name == args["tag"]))
        query = query.where(Lead.id.in_(tagged))
    for key, op in (("created_after", ">="), ("created_before", "<"), ("updated_after", ">="), ("updated_before", "<")):
        if args.get(key) is not None:
            column = Lead.created_at if key.startswith("created") else Lead.updated_at
            value = common.naive_utc(args[key])
            query = query.where(column >= value if op == ">=" else column < value)
    return common.custom_filter(query, Lead, "lead")  # custom.<key>=value parameters


@blp.route("")
class Leads(MethodView):
    @blp.arguments(LeadQueryArgsSchema, location="query")
    @blp.response(200, LeadPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List leads

        Filters combine with AND. Pages are keyset based: follow `next_cursor`;
        deep pages cost the same as the first one.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Lead, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": dump(rows), "next_cursor": next_cursor}

    @blp.arguments(LeadSchema)
    @blp.response(201, LeadSchema)
    @blp.alt_response(409, description="A lead with this email exists; `existing` points at it.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a lead"""
        check_refs(data)
        with common.write_errors("leads"):
            lead = service.create(Lead, data)
        return dump([lead])[0], 201, common.with_etag(lead)


@blp.route("/<int:lead_id>")
class LeadById(MethodView):
    @blp.response(200, LeadSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, lead_id):
        """Get a lead (with its ETag)"""
        lead = lead_or_404(lead_id)
        return dump([lead])[0], 200, common.with_etag(lead)

    @blp.arguments(LeadSchema(partial=True))
    @blp.response(200, LeadSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, lead_id):
        """Change a lead (send If-Match with the ETag you read to avoid lost updates)"""
        lead = lead_or_404(lead_id)
        version = common.if_match_version(lead)
        check_refs(data, lead)
        with common.write_errors("leads"):
            service.update(lead, data, if_version=version)
        return dump([lead])[0], 200, common.with_etag(lead)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, lead_id):
        """Delete a lead"""
        lead = lead_or_404(lead_id)
        version = common.if_match_version(lead)
        with common.write_errors("leads"):
            service.delete(lead, if_version=version)
