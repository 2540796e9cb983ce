"""/api/v1/tags: the tenant's tags (name, colour) and the bulk actions that put one tag
on many leads, contacts, companies or deals, or take it off them.

Records carry their tags by name (``tags`` on a lead); a tag's name is unique per
tenant. Deleting a tag takes it off every record first, so those records get a new
version and an audit entry like any other change.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore import db
from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import service
from crmcore.entities.models import TAGGABLE, Tag, Tagging

blp = Blueprint("tags", __name__, url_prefix="/tags", description="Tags: labels on leads, contacts, companies and deals; bulk tagging.")

MAX_BULK_IDS = 1000


class TagSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    colour = fields.String(load_default="#5b6b8c", validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="Must be a colour like #1a2b3c."))
    usage = fields.Dict(keys=fields.String(), values=fields.Integer(), dump_only=True, metadata={"description": "How many records of each kind carry the tag."})
    created_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class TagPageSchema(Schema):
    items = fields.List(fields.Nested(TagSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("name", "-name", "created_at", "-created_at", "id", "-id")


class TagQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "The name contains it. At most 200 characters."})
    sort = fields.String(load_default="name", validate=validate.OneOf(SORTS))


class TagApplySchema(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(TAGGABLE))
    ids = fields.List(fields.Integer(), required=True, validate=validate.Length(min=1, max=MAX_BULK_IDS), metadata={"description": f"Up to {MAX_BULK_IDS} record ids; all must be visible to you."})


class TagApplyResultSchema(Schema):
    tag_id = fields.Integer()
    entity = fields.String()
    changed = fields.List(fields.Integer(), metadata={"description": "Ids of the records that changed (the others already were as asked)."})


def normalise(data: dict[str, Any]) -> None:
    if "name" in data:
        data["name"] = data["name"].strip()
        if not data["name"]:
            abort(422, errors={"json": {"name": ["Must not be blank."]}})
    if "colour" in data:
        data["colour"] = data["colour"].lower()


def check_unique(name: str | None, exclude_id: int | None = None) -> None:
    """409 pointing at the tag that already has ``name``."""
    if name is None:
        return
    query = Tag.select().where(Tag.name == name)
    if exclude_id is not None:
        query = query.where(Tag.id != exclude_id)
    existing = query.first()
    if existing is not None:
        common.conflict(service.Conflict(f"a tag named {name!r} already exists", existing, "name"), "tags")


def with_usage(tags: list[Tag]) -> list[Tag]:
    """Set ``tag.usage`` ({entity: count}) on each tag, in one query."""
    usage: dict[int, dict[str, int]] = {t.id: {} for t in tags}
    if tags:
        from peewee import fn

        rows = Tagging.select(Tagging.tag, Tagging.entity, fn.COUNT(Tagging.id)).where(Tagging.tag.in_(list(usage))).group_by(Tagging.tag, Tagging.entity).tuples()
        for tag_id, entity, count in rows:
            usage[tag_id][entity] = count
    for tag in tags:
        tag.usage = usage[tag.id]
    return tags


def tag_or_404(tag_id: int) -> Tag:
    return common.get_or_404(Tag, tag_id, "tag")


@blp.route("")
class Tags(MethodView):
    @blp.arguments(TagQueryArgsSchema, location="query")
    @blp.response(200, TagPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List tags (with how often each is used)"""
        query = Tag.select()
        if args.get("q"):
            query = query.where(Tag.name.contains(args["q"].strip()))
        rows, next_cursor = common.keyset_page(query, Tag, args["sort"], args["limit"], args.get("cursor"))
        return {"items": with_usage(rows), "next_cursor": next_cursor}

    @blp.arguments(TagSchema)
    @blp.response(201, TagSchema)
    @blp.alt_response(409, description="A tag with this name exists; `existing` points at it.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a tag"""
        normalise(data)
        check_unique(data["name"])
        try:
            tag = service.create(Tag, data)
        except service.Conflict as exc:  # a concurrent create won the race
            common.conflict(exc, "tags")
        return with_usage([tag])[0], 201, common.with_etag(tag)


@blp.route("/<int:tag_id>")
class TagById(MethodView):
    @blp.response(200, TagSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, tag_id):
        """Get a tag (with its ETag)"""
        tag = tag_or_404(tag_id)
        return with_usage([tag])[0], 200, common.with_etag(tag)

    @blp.arguments(TagSchema(partial=True))
    @blp.response(200, TagSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, tag_id):
        """Rename or recolour a tag (records keep it under the new name)"""
        tag = tag_or_404(tag_id)
        version = common.if_match_version(tag)
        normalise(data)
        check_unique(data.get("name"), exclude_id=tag.id)
        try:
            service.update(tag, data, if_version=version)
        except service.Conflict as exc:
            common.conflict(exc, "tags")
        except service.StaleVersion as exc:
            common.stale(exc)
        return with_usage([tag])[0], 200, common.with_etag(tag)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, tag_id):
        """Delete a tag (taking it off every record)"""
        tag = tag_or_404(tag_id)
        version = common.if_match_version(tag)
        tagged: dict[str, list[int]] = {}
        for entity, entity_id in Tagging.select(Tagging.entity, Tagging.entity_id).where(Tagging.tag == tag.id).tuples():
            tagged.setdefault(entity, []).append(entity_id)
        try:
            with db.atomic():
                for entity, ids in tagged.items():
                    if entity in service.TAGGABLE_MODELS:
                        service.apply_tag(tag, entity, ids, remove=True)
                Tagging.delete().where(Tagging.tag == tag.id).execute()
                service.delete(tag, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)


def bulk(tag_id: int, data: dict[str, Any], remove: bool) -> dict[str, Any]:
    """Put the tag on (or take it off) the records; 422 naming every id that is not a
    visible record of this kind, before anything changes."""
    tag = tag_or_404(tag_id)
    entity, ids = data["entity"], sorted(set(data["ids"]))
    model = service.TAGGABLE_MODELS[entity]
    found = {i for (i,) in common.visible(model.select(model.id).where(model.id.in_(ids)), model).tuples()}
    missing = [i for i in ids if i not in found]
    if missing:
        abort(422, message=f"no {entity} with the ids {', '.join(map(str, missing))}", errors={"json": {"ids": {str(i): [f"No such {entity}."] for i in missing}}})
    changed = service.apply_tag(tag, entity, ids, remove=remove)
    return {"tag_id": tag.id, "entity": entity, "changed": changed}


@blp.route("/<int:tag_id>/apply")
class TagApply(MethodView):
    @blp.arguments(TagApplySchema)
    @blp.response(200, TagApplyResultSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:bulk")
    def post(self, data, tag_id):
        """Put a tag on many records

        All ids must be records of `entity` you can see, else 422 listing the bad
        ones and nothing changes. Records that already have the tag are left alone.
        """
        return bulk(tag_id, data, remove=False)


@blp.route("/<int:tag_id>/remove")
class TagRemove(MethodView):
    @blp.arguments(TagApplySchema)
    @blp.response(200, TagApplyResultSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:bulk")
    def post(self, data, tag_id):
        """Take a tag off many records (same rules as apply)"""
        return bulk(tag_id, data, remove=True)
