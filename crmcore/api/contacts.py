"""/api/v1/contacts: people, shaped like the reference resource (crmcore/api/leads.py).

A contact has a primary email and phone plus further ones (``emails``, ``phones``); every
address is unique among the tenant's contacts, so a second record for the same person is
refused with 409 and ``existing`` pointing at the first (merge them with
``POST /contacts/<id>/merge`` instead).
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.fields import EmailAddress, PhoneNumber
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import checks, service
from crmcore.entities.models import LIFECYCLE_STAGES, Contact, Tag, Tagging

blp = Blueprint("contacts", __name__, url_prefix="/contacts", description="Contacts: the people you sell to and support.")

MAX_FURTHER = 20  # further emails / phones per contact


def valid_timezone(value: str) -> None:
    """An IANA time zone name that zoneinfo knows (``Europe/Berlin``)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError("Not a known IANA time zone (like Europe/Berlin).") from exc


class ContactSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.Function(lambda c: " ".join(p for p in (c.first_name, c.last_name) if p), dump_only=True, metadata={"type": "string", "description": "First and last name."})
    first_name = fields.String(validate=validate.Length(max=100))
    last_name = fields.String(validate=validate.Length(max=100))
    email = EmailAddress(allow_none=True, load_default=None, metadata={"description": "Primary email; unique among the tenant's contacts."})
    emails = fields.List(EmailAddress(), validate=validate.Length(max=MAX_FURTHER), metadata={"description": "Further email addresses."})
    phone = PhoneNumber(allow_none=True, load_default=None, metadata={"description": "Primary phone, stored in E.164."})
    phones = fields.List(PhoneNumber(), validate=validate.Length(max=MAX_FURTHER), metadata={"description": "Further phone numbers."})
    job_title = fields.String(allow_none=True, validate=validate.Length(max=150))
    company_id = fields.Integer(allow_none=True)
    timezone = fields.String(allow_none=True, validate=[validate.Length(max=64), valid_timezone], metadata={"description": "IANA time zone, like Europe/Berlin."})
    language = fields.String(allow_none=True, validate=[validate.Length(max=16), validate.Regexp(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", error="Not a language tag (like en or pt-BR).")])
    consent_email = fields.Boolean(metadata={"description": "Agreed to receive marketing email."})
    consent_sms = fields.Boolean(metadata={"description": "Agreed to receive marketing SMS."})
    lifecycle_stage = fields.String(load_default="lead", validate=validate.OneOf(LIFECYCLE_STAGES))
    owner_id = fields.Integer(allow_none=True, load_default=None)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=60)), metadata={"description": "Tag names; the record gets exactly these."})
    custom = fields.Dict(keys=fields.String(), metadata={"description": "Custom field values by key (see /custom-fields)."})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class ContactPageSchema(Schema):
    items = fields.List(fields.Nested(ContactSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "last_name", "-last_name", "first_name", "-first_name", "id", "-id")


class ContactQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Free text: name, any email, phone or job title contain it. At most 200 characters."})
    lifecycle_stage = fields.List(fields.String(validate=validate.OneOf(LIFECYCLE_STAGES)), metadata={"description": "Repeat for several."})
    owner_id = fields.Integer(metadata={"description": "0 for unassigned."})
    company_id = fields.Integer(metadata={"description": "0 for contacts without a company."})
    tag = fields.String()
    consent_email = fields.Boolean()
    consent_sms = fields.Boolean()
    created_after = fields.DateTime()
    created_before = fields.DateTime()
    updated_after = fields.DateTime()
    updated_before = fields.DateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


# --------------------------------------------------------------------------- list helpers (companies.py uses them too)


def tagged(entity: str, tag: str) -> Any:
    """Subquery: ids of ``entity`` records with the tag called ``tag``."""
    return Tagging.select(Tagging.entity_id).join(Tag, on=(Tagging.tag == Tag.id)).where((Tagging.entity == entity) & (Tag.name == tag))


def date_ranges(query: Any, model: type, args: dict[str, Any]) -> Any:
    for key, op in (("created_after", ">="), ("created_before", "<"), ("updated_after", ">="), ("updated_before", "<")):
        if args.get(key) is not None:
            column = model.created_at if key.startswith("created") else model.updated_at
            value = common.naive_utc(args[key])
            query = query.where(column >= value if op == ">=" else column < value)
    return query


# --------------------------------------------------------------------------- contacts


def check_refs(data: dict[str, Any], record: Contact | None = None) -> None:
    """The domain's contact rules (:func:`crmcore.entities.checks.contact_input`)."""
    checks.contact_input(data, record, common.request_context())


def check_duplicate_emails(data: dict[str, Any], record: Contact | None = None) -> None:
    """Conflict (409) when an address is another contact's
    (:func:`crmcore.entities.checks.contact_duplicate_emails`)."""
    checks.contact_duplicate_emails(data, record, common.request_context())


def visible(query: Any) -> Any:
    return common.visible(query, Contact)


def dump(contacts: list[Contact]) -> list[Contact]:
    return common.with_tags("contact", contacts)


def contact_or_404(contact_id: int) -> Contact:
    contact = visible(Contact.select().where(Contact.id == contact_id)).first()
    if contact is None:
        abort(404, message=f"no contact {contact_id}")
    return contact


def filtered(args: dict[str, Any]) -> Any:
    query = visible(Contact.select())
    if args.get("q"):
        text = args["q"].strip()
        like = f"%{text}%"
        full_name = Contact.first_name.concat(" ").concat(Contact.last_name)
        query = query.where(
            full_name.ilike(like) | Contact.email.ilike(like) | Contact.emails.coerce(False).contains(text) | Contact.phone.contains(text) | Contact.phones.coerce(False).contains(text) | Contact.job_title.ilike(like)
        )
    if args.get("lifecycle_stage"):
        query = query.where(Contact.lifecycle_stage.in_(args["lifecycle_stage"]))
    if "owner_id" in args:
        query = query.where(Contact.owner.is_null() if args["owner_id"] == 0 else Contact.owner == args["owner_id"])
    if "company_id" in args:
        query = query.where(Contact.company.is_null() if args["company_id"] == 0 else Contact.company == args["company_id"])
    for flag in ("consent_email", "consent_sms"):
        if flag in args:
            query = query.where(getattr(Contact, flag) == args[flag])
    if args.get("tag"):
        query = query.where(Contact.id.in_(tagged("contact", args["tag"])))
    query = date_ranges(query, Contact, args)
    return common.custom_filter(query, Contact, "contact")  # custom.<key>=value parameters


def page(args: dict[str, Any]) -> dict[str, Any]:
    rows, next_cursor = common.keyset_page(filtered(args), Contact, args["sort"], args["limit"], args.get("cursor"), plain=True)
    return {"items": dump(rows), "next_cursor": next_cursor}


@blp.route("")
class Contacts(MethodView):
    @blp.arguments(ContactQueryArgsSchema, location="query")
    @blp.response(200, ContactPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List contacts

        Filters combine with AND; custom fields filter as `custom.<key>=value` (exact
        match). Pages are keyset based: follow `next_cursor`.
        """
        return page(args)

    @blp.arguments(ContactSchema)
    @blp.response(201, ContactSchema)
    @blp.alt_response(409, description="A contact with one of these emails exists; `existing` points at it.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a contact"""
        check_refs(data)
        with common.write_errors("contacts"):
            check_duplicate_emails(data)
            contact = service.create(Contact, data)
        return dump([contact])[0], 201, common.with_etag(contact)


@blp.route("/<int:contact_id>")
class ContactById(MethodView):
    @blp.response(200, ContactSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, contact_id):
        """Get a contact (with its ETag)"""
        contact = contact_or_404(contact_id)
        return dump([contact])[0], 200, common.with_etag(contact)

    @blp.arguments(ContactSchema(partial=True))
    @blp.response(200, ContactSchema)
    @blp.alt_response(409, description="Another contact has one of these emails.")
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, contact_id):
        """Change a contact (send If-Match with the ETag you read to avoid lost updates)"""
        contact = contact_or_404(contact_id)
        version = common.if_match_version(contact)
        check_refs(data, contact)
        with common.write_errors("contacts"):
            check_duplicate_emails(data, contact)
            service.update(contact, data, if_version=version)
        return dump([contact])[0], 200, common.with_etag(contact)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, contact_id):
        """Delete a contact (its activities, notes and tasks go with it; deals stay)"""
        contact = contact_or_404(contact_id)
        version = common.if_match_version(contact)
        with common.write_errors("contacts"):
            service.delete(contact, if_version=version)
