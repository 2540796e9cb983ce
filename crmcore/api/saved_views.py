"""/api/v1/views: saved views, named filters and a sort for one list, personal or shared.

The rules (who sees and changes which view) are :mod:`crmcore.entities.saved_views`';
this module checks the filters themselves with the list's own query-args schema, so a
view holds only what the list and ``GET /api/v1/<entity>`` understand.
"""

from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api import common
from crmcore.api import companies as companies_api
from crmcore.api import contacts as contacts_api
from crmcore.api import deals as deals_api
from crmcore.api import leads as leads_api
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import custom
from crmcore.entities import saved_views as domain
from crmcore.entities.errors import DomainError, Invalid

blp = Blueprint("saved_views", __name__, url_prefix="/views", description="Saved views: named filters and sort of a list, personal or shared.")

QUERY_SCHEMAS = {
    "lead": leads_api.LeadQueryArgsSchema,
    "contact": contacts_api.ContactQueryArgsSchema,
    "company": companies_api.CompanyQueryArgsSchema,
    "deal": deals_api.DealQueryArgsSchema,
}
#: filters the list pages add to the API's (crmcore.web.contacts: a company name search)
PAGE_ONLY_KEYS = {"contact": ("company",)}
#: keys of a page, not of a filter: a view is the first page of its list
NOT_SAVED = ("cursor", "limit", "view")
#: a plugin column's filter (crm_list_columns): "<plugin>:<name>"
PLUGIN_KEY = re.compile(r"^[a-z][a-z0-9_]*:[a-z0-9_.-]+$")
SHARING_NEEDS = "Sharing a view needs the permission records:write; save it for yourself instead."
MAX_KEYS, MAX_VALUES, MAX_VALUE_LENGTH = 40, 50, 200


def clean_query(entity: str, raw: Any) -> dict[str, list[str]]:
    """``raw`` ({key: value or [values]}) as a view's query: values as lists of strings,
    empty ones left out, each key and value checked as the list reads it. Invalid with
    ``{"query.<key>": [messages]}`` for what does not fit."""
    if not isinstance(raw, dict):
        raise Invalid({"query": ["An object of filters: {key: value or [values]}."]})
    if len(raw) > MAX_KEYS:
        raise Invalid({"query": [f"At most {MAX_KEYS} filters."]})
    schema = QUERY_SCHEMAS[entity]()
    by_key = {field.data_key or name: field for name, field in schema.fields.items()}
    definitions = custom.definitions(entity)
    errors: dict[str, list[str]] = {}
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            errors[f"query.{key}"] = ["Values are strings (or numbers)."]
            continue
        values = [str(v).strip() for v in values if str(v).strip()]
        if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
            errors[f"query.{key}"] = [f"At most {MAX_VALUES} values of {MAX_VALUE_LENGTH} characters."]
            continue
        if key in NOT_SAVED:
            errors[f"query.{key}"] = ["A view keeps filters and a sort, not a page."]
            continue
        if not values:
            continue
        if key in by_key or key in PAGE_ONLY_KEYS.get(entity, ()) or PLUGIN_KEY.match(key):
            out[key] = values
        elif key.startswith("custom.") and key.removeprefix("custom.") in definitions:
            try:
                custom.coerce(definitions[key.removeprefix("custom.")], values[0])
            except ValidationError as exc:
                errors[f"query.{key}"] = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
                continue
            out[key] = values[:1]
        else:
            errors[f"query.{key}"] = [f"Not a filter of the {entity} list."]
    known = {k: (v if isinstance(by_key[k], fields.List) else v[0]) for k, v in out.items() if k in by_key}
    try:
        schema.load(known)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        for key, message in messages.items():
            flat = message if isinstance(message, list) else [m for ms in message.values() for m in (ms if isinstance(ms, list) else [ms])]
            errors[f"query.{key}"] = [str(m) for m in flat]
    if errors:
        raise Invalid(errors)
    for key, values in out.items():
        if key in by_key and not isinstance(by_key[key], fields.List):
            out[key] = values[:1]
    return out


class SavedViewSchema(Schema):
    id = fields.Integer(dump_only=True)
    entity = fields.String(required=True, validate=validate.OneOf(domain.VIEW_ENTITIES), metadata={"description": "The list: lead, contact, company or deal."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=domain.NAME_MAX))
    shared = fields.Boolean(load_default=False, metadata={"description": "Everyone in the tenant sees it (needs records:write to set)."})
    query = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "The list's filters and sort as its query string has them: {\"status\": [\"new\"], \"sort\": \"-created_at\", \"custom.region\": \"north\"}."},
    )
    owner_id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Who saved it; null for a tenant-wide view saved by a token without a user."})
    owner_name = fields.String(dump_only=True)
    mine = fields.Boolean(dump_only=True, metadata={"description": "You own it (and may change it)."})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class SavedViewUpdateSchema(SavedViewSchema):
    class Meta:
        exclude = ("entity",)


class SavedViewListSchema(Schema):
    items = fields.List(fields.Nested(SavedViewSchema))


class SavedViewQueryArgsSchema(Schema):
    entity = fields.String(validate=validate.OneOf(domain.VIEW_ENTITIES), metadata={"description": "Only this list's views."})


def annotate(views: list[domain.SavedView]) -> list[domain.SavedView]:
    """Set ``owner_name`` and ``mine`` on each view (one query for the names)."""
    names = domain.owner_names(views)
    me = common.current_user_id()
    for view in views:
        view.owner_name = names.get(view.owner_id, "")
        view.mine = view.owner_id == me
    return views


def view_or_404(view_id: int) -> domain.SavedView:
    try:
        return domain.view_or_not_found(view_id, common.current_user_id())
    except DomainError as exc:
        common.raise_http(exc, "views")


def check_may_change(view: domain.SavedView, data: dict[str, Any]) -> None:
    try:
        domain.check_may_change(view, common.current_user_id(), common.has_permission("views:manage"))
    except DomainError as exc:
        common.raise_http(exc, "views")
    if data.get("shared") and not common.has_permission("records:write"):
        abort(403, message=SHARING_NEEDS)


@blp.route("")
class SavedViews(MethodView):
    @blp.arguments(SavedViewQueryArgsSchema, location="query")
    @blp.response(200, SavedViewListSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List the saved views you see (yours, then the shared ones)"""
        return {"items": annotate(domain.views_for(args.get("entity"), common.current_user_id()))}

    @blp.arguments(SavedViewSchema)
    @blp.response(201, SavedViewSchema)
    @blp.alt_response(409, description="You have a view of this name for this list; `existing` points at it.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def post(self, data):
        """Save a view (personal unless `shared`)

        A token bound to no user saves a tenant-wide view: no owner, always shared.
        """
        owner_id = common.current_user_id()
        if (data.get("shared") or owner_id is None) and not common.has_permission("records:write"):
            abort(403, message=SHARING_NEEDS)
        with common.write_errors("views"):
            query = clean_query(data["entity"], data.get("query") or {})
            view = domain.create(owner_id, data["entity"], data["name"], query, data.get("shared", False))
        return annotate([view])[0], 201, common.with_etag(view)


@blp.route("/<int:view_id>")
class SavedViewById(MethodView):
    @blp.response(200, SavedViewSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, view_id):
        """Get a saved view (with its ETag)"""
        view = view_or_404(view_id)
        return annotate([view])[0], 200, common.with_etag(view)

    @blp.arguments(SavedViewUpdateSchema(partial=True))
    @blp.response(200, SavedViewSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def patch(self, data, view_id):
        """Rename, share or change the filters of a saved view (its owner; a shared one also views:manage)"""
        view = view_or_404(view_id)
        check_may_change(view, data)
        version = common.if_match_version(view)
        with common.write_errors("views"):
            if "query" in data:
                data["query"] = clean_query(view.entity, data["query"])
            view = domain.update(view, data, if_version=version)
        return annotate([view])[0], 200, common.with_etag(view)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def delete(self, view_id):
        """Delete a saved view (its owner; a shared one also views:manage)"""
        view = view_or_404(view_id)
        check_may_change(view, {})
        version = common.if_match_version(view)
        with common.write_errors("views"):
            domain.delete(view, if_version=version)
