"""/api/v1/activities: calls, emails, meetings, chats ... logged against a lead, contact,
company or deal (at least one). Same shape as /api/v1/leads; logging an inbound or
outbound activity on a lead moves the lead's ``last_contact_at`` (see
:func:`crmcore.entities.service.log_activity`).
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate

from crmcore import db
from crmcore.api import common, linking
from crmcore.api.common import require
from crmcore.api.schema import INT32_MAX, Blueprint, Schema
from crmcore.entities import links, service, vocabulary
from crmcore.entities.models import ACTIVITY_KINDS, DIRECTIONS, Activity
from crmcore.entities.service import touch_last_contact

#: An activity's content: a logged email's text or a call's notes (a note's body takes 20,000 too).
ACTIVITY_CONTENT_MAX = 20_000

blp = Blueprint("activities", __name__, url_prefix="/activities", description="Activities: calls, emails, meetings and other touches, linked to records.")


def known_kind(value: str) -> None:
    """A kind the current tenant accepts: the core's and its plugins' (crm_activity_kinds),
    checked at load time, so it is reported with the body's other errors."""
    if problem := vocabulary.check(value, vocabulary.activity_kinds(g.tenant)):
        raise ValidationError(problem)


class ActivitySchema(linking.LinkFieldsSchema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=[validate.Length(min=1, max=20), known_kind], metadata={"description": f"One of the tenant's activity kinds: {', '.join(ACTIVITY_KINDS)} and those its plugins add (chat ...).", "example": "call"})
    channel = fields.String(allow_none=True, validate=validate.Length(max=30), metadata={"description": "Free text: phone, zoom, whatsapp ..."})
    direction = fields.String(allow_none=True, validate=validate.OneOf(DIRECTIONS), metadata={"description": "in or out; on a lead, either moves its last_contact_at."})
    subject = fields.String(validate=validate.Length(max=300))
    content = fields.String(validate=validate.Length(max=ACTIVITY_CONTENT_MAX), metadata={"description": f"Up to {ACTIVITY_CONTENT_MAX} characters (a logged email's text, a call's notes)."})
    outcome = fields.String(allow_none=True, validate=validate.Length(max=200))
    next_step = fields.String(allow_none=True, validate=validate.Length(max=300))
    sentiment = fields.Float(allow_none=True, allow_nan=False, validate=validate.Range(min=-1, max=1), metadata={"description": "-1 (negative) .. 1 (positive)."})
    occurred_at = fields.DateTime(metadata={"description": "When it happened (default: now)."})
    duration_seconds = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=INT32_MAX))
    user_id = fields.Integer(allow_none=True, metadata={"description": "Who did it (default: the caller's user)."})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class ActivityPageSchema(Schema):
    items = fields.List(fields.Nested(ActivitySchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("-occurred_at", "occurred_at", "-created_at", "created_at", "id", "-id")


class ActivityQueryArgsSchema(linking.LinkFilterArgs):
    kind = fields.List(fields.String(validate=known_kind), metadata={"description": "Repeat for several: any of the tenant's activity kinds."})
    direction = fields.String(validate=validate.OneOf(DIRECTIONS))
    user_id = fields.Integer(metadata={"description": "0 for activities of nobody (imports, tokens without a user)."})
    occurred_after = fields.DateTime()
    occurred_before = fields.DateTime()
    sort = fields.String(load_default="-occurred_at", validate=validate.OneOf(SORTS))


def check_refs(data: dict[str, Any], record: Activity | None = None) -> None:
    """The domain's activity rules (:func:`crmcore.entities.links.activity_input`):
    links and user in this tenant, the caller as the default user."""
    links.activity_input(data, record, common.request_context())


def activity_or_404(activity_id: int) -> Activity:
    return linking.record_or_404(Activity, activity_id, "activity")


def filtered(args: dict[str, Any]) -> Any:
    query = linking.filter_links(linking.visible(Activity.select(), Activity), Activity, args)
    if args.get("kind"):
        query = query.where(Activity.kind.in_(args["kind"]))
    if args.get("direction"):
        query = query.where(Activity.direction == args["direction"])
    if "user_id" in args:
        query = query.where(Activity.user.is_null() if args["user_id"] == 0 else Activity.user == args["user_id"])
    if args.get("occurred_after") is not None:
        query = query.where(Activity.occurred_at >= common.naive_utc(args["occurred_after"]))
    if args.get("occurred_before") is not None:
        query = query.where(Activity.occurred_at < common.naive_utc(args["occurred_before"]))
    return query


@blp.route("")
class Activities(MethodView):
    @blp.arguments(ActivityQueryArgsSchema, location="query")
    @blp.response(200, ActivityPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List activities (newest first)

        Filters combine with AND; `occurred_after` is inclusive, `occurred_before`
        exclusive. Pages are keyset based: follow `next_cursor`.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Activity, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": rows, "next_cursor": next_cursor}

    @blp.arguments(ActivitySchema)
    @blp.response(201, ActivitySchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Log an activity"""
        check_refs(data)
        try:
            activity = service.log_activity(data)
        except service.Conflict as exc:  # a linked record vanished meanwhile
            common.conflict(exc, "activities")
        return activity, 201, common.with_etag(activity)


@blp.route("/<int:activity_id>")
class ActivityById(MethodView):
    @blp.response(200, ActivitySchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, activity_id):
        """Get an activity (with its ETag)"""
        activity = activity_or_404(activity_id)
        return activity, 200, common.with_etag(activity)

    @blp.arguments(ActivitySchema(partial=True))
    @blp.response(200, ActivitySchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, activity_id):
        """Change an activity (send If-Match with the ETag you read)"""
        activity = activity_or_404(activity_id)
        version = common.if_match_version(activity)
        check_refs(data, activity)
        try:
            with db.atomic():
                service.update(activity, data, if_version=version)
                touch_last_contact(activity)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "activities")
        return activity, 200, common.with_etag(activity)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, activity_id):
        """Delete an activity"""
        activity = activity_or_404(activity_id)
        version = common.if_match_version(activity)
        try:
            service.delete(activity, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
