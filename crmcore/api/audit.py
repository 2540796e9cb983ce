"""The audit trail: who changed what, when. ``GET /api/v1/<collection>/<id>/audit`` for
one record, ``GET /api/v1/audit`` for the tenant's whole trail; permission audit:read.

Entries are written by crmcore.entities.service on every create, update and delete and
outlive the record: a deleted record's trail stays readable by the tenant that owned
it (entries are tenant-scoped, so other tenants get 404 like for any record).
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
from crmcore.entities.models import (
    Activity,
    AuditEntry,
    Company,
    Contact,
    CustomField,
    Deal,
    Lead,
    Note,
    Tag,
    Task,
)
from crmcore.models import ApiToken, User

blp = Blueprint("audit", __name__, description="Audit trail: who created, changed or deleted which record, and how.")

#: URL collection -> (entity name in the audit, model)
COLLECTIONS: dict[str, tuple[str, type]] = {
    "leads": ("lead", Lead),
    "contacts": ("contact", Contact),
    "companies": ("company", Company),
    "deals": ("deal", Deal),
    "activities": ("activity", Activity),
    "notes": ("note", Note),
    "tasks": ("task", Task),
    "tags": ("tag", Tag),
    "custom-fields": ("custom_field", CustomField),
}
ACTIONS = ("create", "update", "delete", "stage_change")


class AuditActorSchema(Schema):
    type = fields.String(metadata={"description": "user, token, or system (jobs, commands, imports)."})
    id = fields.Integer(allow_none=True)
    email = fields.String(metadata={"description": "user only."})
    name = fields.String(metadata={"description": "token only."})
    user_id = fields.Integer(allow_none=True, metadata={"description": "token only: the user the token belongs to, if any."})


class AuditEntrySchema(Schema):
    id = fields.Integer()
    entity = fields.String()
    entity_id = fields.Integer()
    action = fields.String(metadata={"description": ", ".join(ACTIONS)})
    at = fields.DateTime()
    actor = fields.Nested(AuditActorSchema)
    changes = fields.Dict(keys=fields.String(), metadata={"description": "field -> [old, new]."})


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next (older) page; null on the last page."})


class AuditQueryArgsSchema(PageArgs):
    action = fields.List(fields.String(validate=validate.OneOf(ACTIONS)), metadata={"description": "Repeat for several."})


class AuditLogQueryArgsSchema(AuditQueryArgsSchema):
    entity = fields.String(validate=validate.OneOf([name for name, _ in COLLECTIONS.values()]))
    entity_id = fields.Integer()
    user_id = fields.Integer(metadata={"description": "Changes made by this user (signed in)."})
    token_id = fields.Integer(metadata={"description": "Changes made with this API token."})
    after = fields.DateTime(metadata={"description": "Inclusive."})
    before = fields.DateTime(metadata={"description": "Exclusive."})


def entries() -> Any:
    """Audit entries with their actor's email / token name, in the same query."""
    return (
        AuditEntry.select(AuditEntry, User.email.alias("actor_email"), ApiToken.name.alias("actor_token_name"), ApiToken.user.alias("actor_token_user_id"))
        .join(User, join_type=peewee.JOIN.LEFT_OUTER, on=(AuditEntry.actor_user == User.id))
        .switch(AuditEntry)
        .join(ApiToken, join_type=peewee.JOIN.LEFT_OUTER, on=(AuditEntry.actor_token == ApiToken.id))
        .objects()
    )


def dump(rows: list[AuditEntry]) -> list[dict[str, Any]]:
    out = []
    for e in rows:
        if e.actor_user_id is not None:
            who: dict[str, Any] = {"type": "user", "id": e.actor_user_id, "email": e.actor_email}
        elif e.actor_token_id is not None:
            who = {"type": "token", "id": e.actor_token_id, "name": e.actor_token_name, "user_id": e.actor_token_user_id}
        else:
            who = {"type": "system", "id": None}
        out.append({"id": e.id, "entity": e.entity, "entity_id": e.entity_id, "action": e.action, "at": e.at, "actor": who, "changes": e.changes})
    return out


def page(query: Any, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("action"):
        query = query.where(AuditEntry.action.in_(args["action"]))
    rows, next_cursor = common.keyset_page(query, AuditEntry, "-at", args["limit"], args.get("cursor"))
    return {"items": dump(rows), "next_cursor": next_cursor}


@blp.route("/<any(leads,contacts,companies,deals,activities,notes,tasks,tags,'custom-fields'):collection>/<int:record_id>/audit")
class RecordAudit(MethodView):
    @blp.arguments(AuditQueryArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("audit:read")
    def get(self, args, collection, record_id):
        """A record's audit trail (newest first)

        Also for deleted records: their trail stays with the tenant that owned them.
        404 for ids this tenant never had.
        """
        entity, model = COLLECTIONS[collection]
        result = page(entries().where((AuditEntry.entity == entity) & (AuditEntry.entity_id == record_id)), args)
        if not result["items"] and not args.get("cursor"):
            ever = AuditEntry.select(AuditEntry.id).where((AuditEntry.entity == entity) & (AuditEntry.entity_id == record_id)).exists()
            if not ever and not model.select(model.id).where(model.id == record_id).exists():
                abort(404, message=f"no {entity} {record_id}")
        return result


@blp.route("/audit")
class AuditLog(MethodView):
    @blp.arguments(AuditLogQueryArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("audit:read")
    def get(self, args):
        """The tenant's audit trail (newest first)

        Filters combine with AND.
        """
        query = entries()
        if args.get("entity"):
            query = query.where(AuditEntry.entity == args["entity"])
        if "entity_id" in args:
            query = query.where(AuditEntry.entity_id == args["entity_id"])
        if "user_id" in args:
            query = query.where(AuditEntry.actor_user == args["user_id"])
        if "token_id" in args:
            query = query.where(AuditEntry.actor_token == args["token_id"])
        if args.get("after") is not None:
            query = query.where(AuditEntry.at >= common.naive_utc(args["after"]))
        if args.get("before") is not None:
            query = query.where(AuditEntry.at < common.naive_utc(args["before"]))
        return page(query, args)
