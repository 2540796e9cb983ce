"""/api/v1/notes: free-text notes on a lead, contact, company or deal, with @mentions.

A mention is ``@<email of a user>`` in the body or a user id in ``mentions``; the note
stores the ids of everyone it mentions (``note_created``/``note_updated`` carry them to
a notifications plugin). Unknown mentions are 422, so a typo never goes unnoticed.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from crmcore.api import common, linking
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import links, service
from crmcore.entities.links import MENTION, mentioned_in  # noqa: F401 - moved to the domain; importable here as before
from crmcore.entities.models import Note

blp = Blueprint("notes", __name__, url_prefix="/notes", description="Notes on records, with @mentions of users.")

class NoteSchema(linking.LinkFieldsSchema):
    id = fields.Integer(dump_only=True)
    body = fields.String(required=True, validate=validate.Length(min=1, max=20000), metadata={"description": "Text; `@user@example.com` mentions that user."})
    pinned = fields.Boolean(load_default=False)
    mentions = fields.List(fields.Integer(), metadata={"description": "User ids to mention besides the @emails in the body; read back: every mentioned user id."})
    author_id = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class NotePageSchema(Schema):
    items = fields.List(fields.Nested(NoteSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("-created_at", "created_at", "-updated_at", "updated_at", "id", "-id")


class NoteQueryArgsSchema(linking.LinkFilterArgs):
    pinned = fields.Boolean()
    author_id = fields.Integer()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


def check_refs(data: dict[str, Any], record: Note | None = None) -> None:
    """The domain's note rules (:func:`crmcore.entities.links.note_input`): links,
    mentions, the author."""
    links.note_input(data, record, common.request_context())


def note_or_404(note_id: int) -> Note:
    return linking.record_or_404(Note, note_id, "note")


def filtered(args: dict[str, Any]) -> Any:
    query = linking.filter_links(linking.visible(Note.select(), Note), Note, args)
    if "pinned" in args:
        query = query.where(Note.pinned == args["pinned"])
    if "author_id" in args:
        query = query.where(Note.author == args["author_id"])
    return query


@blp.route("")
class Notes(MethodView):
    @blp.arguments(NoteQueryArgsSchema, location="query")
    @blp.response(200, NotePageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List notes

        Filters combine with AND. Pages are keyset based: follow `next_cursor`.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Note, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": rows, "next_cursor": next_cursor}

    @blp.arguments(NoteSchema)
    @blp.response(201, NoteSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Add a note"""
        check_refs(data)
        try:
            note = service.create(Note, data)
        except service.Conflict as exc:  # a linked record vanished meanwhile
            common.conflict(exc, "notes")
        return note, 201, common.with_etag(note)


@blp.route("/<int:note_id>")
class NoteById(MethodView):
    @blp.response(200, NoteSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, note_id):
        """Get a note (with its ETag)"""
        note = note_or_404(note_id)
        return note, 200, common.with_etag(note)

    @blp.arguments(NoteSchema(partial=True))
    @blp.response(200, NoteSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, note_id):
        """Change a note (send If-Match with the ETag you read)"""
        note = note_or_404(note_id)
        version = common.if_match_version(note)
        check_refs(data, note)
        try:
            service.update(note, data, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "notes")
        return note, 200, common.with_etag(note)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, note_id):
        """Delete a note"""
        note = note_or_404(note_id)
        version = common.if_match_version(note)
        try:
            service.delete(note, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
