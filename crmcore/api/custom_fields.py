"""/api/v1/custom-fields: the tenant's own fields on leads, contacts, companies and deals.

Values live in each record's ``custom`` object and are checked on every write by
:mod:`crmcore.entities.custom`; lists filter on them with ``custom.<key>=value``.
A field's entity and key never change (the values are stored under the key); its kind
cannot change while records hold values for it, nor can a choice in use be dropped,
because those values would no longer fit (409).
"""

from __future__ import annotations

from typing import Any

import peewee
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import service
from crmcore.entities.models import CUSTOM_FIELD_KINDS, TAGGABLE, CustomField

blp = Blueprint("custom_fields", __name__, url_prefix="/custom-fields", description="Custom fields: a tenant's own fields on leads, contacts, companies and deals.")

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"


class CustomFieldSchema(Schema):
    id = fields.Integer(dump_only=True)
    entity = fields.String(required=True, validate=validate.OneOf(TAGGABLE), metadata={"description": "Fixed once created."})
    key = fields.String(required=True, validate=[validate.Length(min=1, max=60), validate.Regexp(KEY_PATTERN, error="Lowercase letters, digits and _, starting with a letter.")], metadata={"description": "Fixed once created; values are `custom.<key>`."})
    label = fields.String(required=True, validate=validate.Length(min=1, max=100))
    kind = fields.String(required=True, validate=validate.OneOf(CUSTOM_FIELD_KINDS))
    choices = fields.List(fields.String(validate=validate.Length(min=1, max=100)), metadata={"description": "The allowed values of a choice field (required, non-empty, for kind choice only)."})
    required = fields.Boolean(load_default=False, metadata={"description": "Records must have a value (checked when they are created or their custom values change)."})
    created_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class CustomFieldPageSchema(Schema):
    items = fields.List(fields.Nested(CustomFieldSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("id", "-id", "key", "-key", "created_at", "-created_at")


class CustomFieldQueryArgsSchema(PageArgs):
    entity = fields.String(validate=validate.OneOf(TAGGABLE))
    sort = fields.String(load_default="id", validate=validate.OneOf(SORTS))


def stored_values(field: CustomField) -> list[Any]:
    """The distinct values records hold for ``field``: a LIKE finds candidates (custom is
    JSON text written with sorted keys: ``"key": value``), Python confirms them."""
    model = service.TAGGABLE_MODELS[field.entity]
    values = []
    # Value(converter=False): the JSONText column would JSON-encode the pattern itself.
    candidates = peewee.Expression(model.custom, peewee.OP.ILIKE, peewee.Value(f'%"{field.key}": %', converter=False))
    for (stored,) in model.select(model.custom).where(candidates).tuples():
        value = model.custom.python_value(stored) if isinstance(stored, str) else stored
        if isinstance(value, dict) and value.get(field.key) is not None and value[field.key] not in values:
            values.append(value[field.key])
    return values


def leftover_values(field: CustomField) -> list[Any]:
    """Values a deleted field with the same key left in records that ``field`` would
    not accept (its values are not stripped from records when it is deleted)."""
    from marshmallow import ValidationError

    from crmcore.entities import custom

    unfit = []
    for value in stored_values(field):
        try:
            custom.coerce(field, value)
        except ValidationError:
            unfit.append(value)
    return unfit


def check(data: dict[str, Any], record: CustomField | None = None) -> None:
    """Choices fit the kind; entity and key stay; no change that strands stored values."""
    errors: dict[str, Any] = {}
    if record is not None:
        for key in ("entity", "key"):
            if key in data and data[key] != getattr(record, key):
                errors[key] = ["Cannot be changed; delete the field and create another."]
    kind = data.get("kind", record.kind if record is not None else None)
    choices = data.get("choices", record.choices if record is not None else [])
    if "choices" in data:
        data["choices"] = choices = list(dict.fromkeys(choices))  # drop repeats, keep order
    if kind == "choice" and not choices:
        errors["choices"] = ["A choice field needs at least one choice."]
    elif kind != "choice" and choices:
        errors["choices"] = ["Only choice fields have choices."]
    if errors:
        abort(422, errors={"json": errors})
    if record is not None and (kind != record.kind or (kind == "choice" and set(record.choices or []) - set(choices))):
        values = stored_values(record)
        if values and kind != record.kind:
            abort(409, message=f"records hold values for {record.entity} field {record.key!r}; its kind cannot change from {record.kind} to {kind}")
        dropped = [v for v in values if v not in choices]
        if dropped and kind == "choice":
            abort(409, message=f"records still use the choices {', '.join(map(str, dropped))}")
    if kind != "choice" and record is not None and record.choices:
        data["choices"] = []


def field_or_404(field_id: int) -> CustomField:
    return common.get_or_404(CustomField, field_id, "custom field")


@blp.route("")
class CustomFields(MethodView):
    @blp.arguments(CustomFieldQueryArgsSchema, location="query")
    @blp.response(200, CustomFieldPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List custom fields"""
        query = CustomField.select()
        if args.get("entity"):
            query = query.where(CustomField.entity == args["entity"])
        rows, next_cursor = common.keyset_page(query, CustomField, args["sort"], args["limit"], args.get("cursor"))
        return {"items": rows, "next_cursor": next_cursor}

    @blp.arguments(CustomFieldSchema)
    @blp.response(201, CustomFieldSchema)
    @blp.alt_response(409, description="The entity already has a field with this key; `existing` points at it.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("custom_fields:manage")
    def post(self, data):
        """Define a custom field"""
        check(data)
        existing = CustomField.get_or_none((CustomField.entity == data["entity"]) & (CustomField.key == data["key"]))
        if existing is not None:
            common.conflict(service.Conflict(f"{data['entity']}s already have a custom field {data['key']!r}", existing, "key"), "custom-fields")
        unfit = leftover_values(CustomField(**data))
        if unfit:
            abort(409, message=f"{data['entity']}s still hold values under {data['key']!r} from a deleted field that are not valid {data['kind']} values: {', '.join(map(str, unfit[:10]))}")
        try:
            field = service.create(CustomField, data)
        except service.Conflict as exc:  # a concurrent create won the race
            common.conflict(exc, "custom-fields")
        return field, 201, common.with_etag(field)


@blp.route("/<int:field_id>")
class CustomFieldById(MethodView):
    @blp.response(200, CustomFieldSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, field_id):
        """Get a custom field (with its ETag)"""
        field = field_or_404(field_id)
        return field, 200, common.with_etag(field)

    @blp.arguments(CustomFieldSchema(partial=True))
    @blp.response(200, CustomFieldSchema)
    @blp.alt_response(409, description="The change would strand values records hold.")
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("custom_fields:manage")
    def patch(self, data, field_id):
        """Change a custom field's label, kind, choices or required flag"""
        field = field_or_404(field_id)
        version = common.if_match_version(field)
        check(data, field)
        try:
            service.update(field, data, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        return field, 200, common.with_etag(field)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("custom_fields:manage")
    def delete(self, field_id):
        """Delete a custom field (values records hold stay in their `custom` but are no longer checked)"""
        field = field_or_404(field_id)
        version = common.if_match_version(field)
        try:
            service.delete(field, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
