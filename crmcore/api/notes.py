"""/api/v1/notes: free-text notes on a lead, contact, company or deal, with @mentions.

A mention is ``@<email of a user>`` in the body or a user id in ``mentions``; the note
stores the ids of everyone it mentions (``note_created``/``note_updated`` carry them to
a notifications plugin). Unknown mentions are 422, so a typo never goes unnoticed.
"""

from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore.api.schema import Blueprint, Schema
from crmcore.api import common, linking
from crmcore.api.common import require
from crmcore.entities import service
from crmcore.entities.models import Note
from crmcore.models import User

blp = Blueprint("notes", __name__, url_prefix="/notes", description="Notes on records, with @mentions of users.")

#: ``@ada@example.com``: an @ not glued to a word, then an email address
MENTION = re.compile(r"(?<![\w.+-])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


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


def mentioned_in(body: str, errors: dict[str, Any] | None = None) -> set[int]:
    """Ids of the users ``body`` mentions by email (one query); unknown ones go to
    ``errors["body"]`` when errors is given, and are ignored otherwise."""
    emails = {m.lower() for m in MENTION.findall(body or "")}
    if not emails:
        return set()
    found = dict(User.select(User.email, User.id).where(User.email.in_(sorted(emails))).tuples())
    unknown = sorted(emails - set(found))
    if unknown and errors is not None:
        errors["body"] = [f"No user with the email {e} to mention." for e in unknown]
    return set(found.values())


def check_refs(data: dict[str, Any], record: Note | None = None) -> None:
    """Links in this tenant; mentions resolved to user ids (422 for unknown ones)."""
    errors: dict[str, Any] = {}
    linking.check_links(data, errors, record)
    if "body" in data or "mentions" in data:
        body = data.get("body", record.body if record is not None else "")
        in_body = mentioned_in(body, errors)
        if "mentions" in data:
            explicit = set(data["mentions"])
            known = {i for (i,) in User.select(User.id).where(User.id.in_(sorted(explicit))).tuples()} if explicit else set()
            if explicit - known:
                errors["mentions"] = [f"No user {i} in this tenant." for i in sorted(explicit - known)]
        else:  # keep the explicit mentions; the body's are recomputed
            explicit = set(record.mentions or []) - mentioned_in(record.body) if record is not None else set()
        data["mentions"] = sorted(explicit | in_body)
    if errors:
        abort(422, errors={"json": errors})
    linking.rename_links(data)
    if record is None:
        data["author"] = common.current_user_id()


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
