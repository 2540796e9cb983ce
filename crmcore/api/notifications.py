"""/api/v1/notifications: the caller's own in-app notifications and preferences.

Only ever the caller's user's rows (another user's notification is a 404); a token that
belongs to no user has no notifications: its lists are empty, and it cannot set
preferences (422). Creating notifications is not an API
operation: the CRM and its plugins send them (``crmcore.notifications.notify``).
"""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore import notifications
from crmcore.api import common
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.notifications import Notification

blp = Blueprint("notifications", __name__, url_prefix="/notifications", description="In-app notifications of the caller's user: list, unread count, mark read, preferences.")
PERMISSION = "notifications:own"
SECURITY = [{"bearerAuth": []}]


class NotificationSchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "What it is about (task_reminder, automation ...): preferences mute kinds."})
    title = fields.String()
    text = fields.String()
    link = fields.String(allow_none=True, metadata={"description": "Where to look: a page of this site or a URL."})
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    next_cursor = fields.String(allow_none=True)
    unread = fields.Integer(metadata={"description": "The caller's unread notifications in all."})


class NotificationArgs(common.PageArgs):
    unread = fields.Boolean(load_default=False, metadata={"description": "Only unread ones."})


class UnreadSchema(Schema):
    unread = fields.Integer()


class MarkedSchema(Schema):
    marked = fields.Integer(metadata={"description": "How many were unread and are now read."})


class PreferencesSchema(Schema):
    muted = fields.List(fields.String(validate=validate.Length(min=1, max=40)), required=True, validate=validate.Length(max=100),
                        metadata={"description": "Kinds the caller does not want notifications of."})
    kinds = fields.Dict(keys=fields.String(), values=fields.String(), dump_only=True,
                        metadata={"description": "Known kinds and their labels (the core's, and those received or muted)."})


def me() -> int:
    user_id = common.current_user_id()
    if user_id is None:
        abort(422, errors={"json": {"user": ["This token belongs to no user: it has no notifications."]}})
    return user_id


@blp.route("")
class Notifications(MethodView):
    @blp.arguments(NotificationArgs, location="query")
    @blp.response(200, NotificationPageSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, args):
        """List the caller's notifications, newest first"""
        user_id = common.current_user_id()
        if user_id is None:  # a token of no user: nobody to notify, nothing to list
            return {"items": [], "next_cursor": None, "unread": 0}
        query = notifications.mine(user_id)
        if args["unread"]:
            query = query.where(Notification.read_at.is_null())
        rows, next_cursor = common.keyset_page(query, Notification, "-id", args["limit"], args.get("cursor"), plain=True)
        return {"items": rows, "next_cursor": next_cursor, "unread": notifications.unread_count(user_id)}


@blp.route("/unread-count")
class UnreadCount(MethodView):
    @blp.response(200, UnreadSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """How many of the caller's notifications are unread"""
        user_id = common.current_user_id()
        return {"unread": notifications.unread_count(user_id) if user_id is not None else 0}


@blp.route("/<int:notification_id>/read")
class MarkOne(MethodView):
    @blp.response(200, NotificationSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, notification_id):
        """Mark one notification read (again: no change)"""
        user_id = common.current_user_id()  # a token without a user has none: 404
        row = notifications.mine(user_id).where(Notification.id == notification_id).first() if user_id is not None else None
        if row is None:
            abort(404, message="notification not found")
        notifications.mark_read(user_id, notification_id)
        return Notification.get_by_id(notification_id)


@blp.route("/read-all")
class MarkAll(MethodView):
    @blp.response(200, MarkedSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self):
        """Mark all the caller's notifications read"""
        user_id = common.current_user_id()
        return {"marked": notifications.mark_read(user_id) if user_id is not None else 0}


@blp.route("/preferences")
class Preferences(MethodView):
    @blp.response(200, PreferencesSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """The caller's muted kinds"""
        user_id = common.current_user_id()
        if user_id is None:
            return {"muted": [], "kinds": dict(notifications.CORE_KINDS)}
        return {"muted": sorted(notifications.muted_kinds(user_id)), "kinds": notifications.known_kinds(user_id)}

    @blp.arguments(PreferencesSchema)
    @blp.response(200, PreferencesSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def put(self, data):
        """Replace the caller's muted kinds"""
        user_id = me()
        muted = notifications.set_muted(user_id, data["muted"])
        return {"muted": sorted(muted), "kinds": notifications.known_kinds(user_id)}
