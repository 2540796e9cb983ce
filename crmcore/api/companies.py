"""/api/v1/companies: organisations, shaped like the reference resource (crmcore/api/leads.py),
plus ``/companies/<id>/contacts`` (the contacts list, filtered to the company)."""

from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api import common, contacts
from crmcore.api.common import PageArgs, require
from crmcore.api.fields import MONEY_MAX
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import checks, service
from crmcore.entities.models import Company

blp = Blueprint("companies", __name__, url_prefix="/companies", description="Companies: the organisations your contacts work for.")

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+")
MAX_REVENUE = MONEY_MAX

DOMAIN_MAX = 200  # the column's length
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$)(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})$")


class Domain(fields.String):
    """A domain name, stored lowercased and in ASCII (IDNA): ``https://www.Example.com/x``
    is kept as ``example.com``, so the same company is found whatever was typed. An empty
    or blank value is no domain (None), as a cleared form field means. The length is
    checked here, not by a validator: validators also see that None (a 500 once, issue 21)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if raw is None or not raw.strip():
            return None
        if len(raw) > 2000:  # a URL may be typed; the host is what is kept
            raise ValidationError("Longer than 2000 characters.")
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", raw.strip().lower())
        host = re.split(r"[/?#:]", host, maxsplit=1)[0].removeprefix("www.").rstrip(".")
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValidationError("Not a valid domain name (like example.com).") from exc
        if not DOMAIN_RE.match(host):
            raise ValidationError("Not a valid domain name (like example.com).")
        if len(host) > DOMAIN_MAX:
            raise ValidationError(f"Longer than {DOMAIN_MAX} characters.")
        return host


class CompanySchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    domain = Domain(allow_none=True, metadata={"description": "Like example.com; a URL is reduced to its host; empty: no domain.", "maxLength": 2000})
    industry = fields.String(allow_none=True, validate=validate.Length(max=100))
    size = fields.String(allow_none=True, validate=validate.OneOf(COMPANY_SIZES), metadata={"description": "Employees, one of " + ", ".join(COMPANY_SIZES)})
    annual_revenue = fields.Decimal(places=2, as_string=True, allow_none=True, validate=validate.Range(min=0, max=MAX_REVENUE))
    address = fields.String(allow_none=True, validate=validate.Length(max=2000))
    website = fields.Url(allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=300))
    owner_id = fields.Integer(allow_none=True, load_default=None)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=60)), metadata={"description": "Tag names; the record gets exactly these."})
    custom = fields.Dict(keys=fields.String(), metadata={"description": "Custom field values by key (see /custom-fields)."})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class CompanyPageSchema(Schema):
    items = fields.List(fields.Nested(CompanySchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "name", "-name", "id", "-id")


class CompanyQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Free text: name, domain, website or industry contain it. At most 200 characters."})
    industry = fields.List(fields.String(), metadata={"description": "Repeat for several."})
    size = fields.List(fields.String(validate=validate.OneOf(COMPANY_SIZES)), metadata={"description": "Repeat for several."})
    domain = Domain()
    owner_id = fields.Integer(metadata={"description": "0 for unassigned."})
    tag = fields.String()
    created_after = fields.DateTime()
    created_before = fields.DateTime()
    updated_after = fields.DateTime()
    updated_before = fields.DateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


def check_refs(data: dict[str, Any], record: Company | None = None) -> None:
    """The domain's company rules (:func:`crmcore.entities.checks.company_input`)."""
    checks.company_input(data, record, common.request_context())


def visible(query: Any) -> Any:
    return common.visible(query, Company)


def dump(companies: list[Company]) -> list[Company]:
    return common.with_tags("company", companies)


def company_or_404(company_id: int) -> Company:
    company = visible(Company.select().where(Company.id == company_id)).first()
    if company is None:
        abort(404, message=f"no company {company_id}")
    return company


def filtered(args: dict[str, Any]) -> Any:
    query = visible(Company.select())
    if args.get("q"):
        like = f"%{args['q'].strip()}%"
        query = query.where(Company.name.ilike(like) | Company.domain.ilike(like) | Company.website.ilike(like) | Company.industry.ilike(like))
    if args.get("industry"):
        query = query.where(Company.industry.in_(args["industry"]))
    if args.get("size"):
        query = query.where(Company.size.in_(args["size"]))
    if args.get("domain"):
        query = query.where(Company.domain == args["domain"])
    if "owner_id" in args:
        query = query.where(Company.owner.is_null() if args["owner_id"] == 0 else Company.owner == args["owner_id"])
    if args.get("tag"):
        query = query.where(Company.id.in_(contacts.tagged("company", args["tag"])))
    query = contacts.date_ranges(query, Company, args)
    return common.custom_filter(query, Company, "company")  # custom.<key>=value parameters


@blp.route("")
class Companies(MethodView):
    @blp.arguments(CompanyQueryArgsSchema, location="query")
    @blp.response(200, CompanyPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List companies

        Filters combine with AND; custom fields filter as `custom.<key>=value` (exact
        match). Pages are keyset based: follow `next_cursor`.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Company, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": dump(rows), "next_cursor": next_cursor}

    @blp.arguments(CompanySchema)
    @blp.response(201, CompanySchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a company"""
        check_refs(data)
        with common.write_errors("companies"):
            company = service.create(Company, data)
        return dump([company])[0], 201, common.with_etag(company)


@blp.route("/<int:company_id>")
class CompanyById(MethodView):
    @blp.response(200, CompanySchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, company_id):
        """Get a company (with its ETag)"""
        company = company_or_404(company_id)
        return dump([company])[0], 200, common.with_etag(company)

    @blp.arguments(CompanySchema(partial=True))
    @blp.response(200, CompanySchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, company_id):
        """Change a company (send If-Match with the ETag you read to avoid lost updates)"""
        company = company_or_404(company_id)
        version = common.if_match_version(company)
        check_refs(data, company)
        with common.write_errors("companies"):
            service.update(company, data, if_version=version)
        return dump([company])[0], 200, common.with_etag(company)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, company_id):
        """Delete a company (its activities, notes and tasks go with it; contacts, leads and deals stay)"""
        company = company_or_404(company_id)
        version = common.if_match_version(company)
        with common.write_errors("companies"):
            service.delete(company, if_version=version)


@blp.route("/<int:company_id>/contacts")
class CompanyContacts(MethodView):
    @blp.arguments(contacts.ContactQueryArgsSchema, location="query")
    @blp.response(200, contacts.ContactPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, company_id):
        """List a company's contacts

        Takes the filters of `GET /contacts`, `custom.<key>=value` too (its
        `company_id` is this company).
        """
        company_or_404(company_id)
        return contacts.page({**args, "company_id": company_id})
