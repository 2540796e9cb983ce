"""/api/v1/webhooks: the event catalogue, endpoints, the delivery log, replay and tests.

Every operation needs ``webhooks:manage`` (admins): endpoints carry secrets and decide
where the tenant's data goes.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate

from crm_plugins.webhooks import delivery, events, service
from crm_plugins.webhooks.models import (
    MESSAGE_STATUSES,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from crmcore import sdk
from crmcore.sdk import PageArgs, require, utcnow

blp = Blueprint("webhooks_api", __name__, url_prefix="/webhooks", description="Outgoing webhooks: endpoints, events, delivery log, replay.")
PERMISSION = "webhooks:manage"
SECURITY = [{"bearerAuth": []}]


class EventTypeSchema(Schema):
    type = fields.String()
    description = fields.String()
    signal = fields.String(metadata={"description": "The signal that announces it."})
    schema = fields.Dict(metadata={"description": "JSON Schema of the delivery's `data`."})


class EventListSchema(Schema):
    envelope = fields.Dict(metadata={"description": "JSON Schema of every delivery's body (type, timestamp, data)."})
    items = fields.List(fields.Nested(EventTypeSchema))


class EndpointSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    description = fields.String()
    event_types = fields.List(fields.String())
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True, metadata={"description": "Why the plugin disabled it (410, days of failures); null otherwise."})
    disabled_at = fields.DateTime(allow_none=True)
    failing_since = fields.DateTime(allow_none=True, metadata={"description": "Start of the current run of failed deliveries."})
    previous_secret_expires_at = fields.DateTime(allow_none=True, metadata={"description": "Until then the secret before the last rotation signs too."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class EndpointWithSecretSchema(EndpointSchema):
    secret = fields.String(metadata={"description": "The signing secret (whsec_...): shown only in this answer."})


class EndpointPatch(service.EndpointInput):
    """Any of the endpoint's fields (only those sent change)."""

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)


class EndpointListSchema(Schema):
    items = fields.List(fields.Nested(EndpointSchema))


class AttemptSchema(Schema):
    number = fields.Integer()
    started_at = fields.DateTime()
    duration_ms = fields.Integer()
    request_headers = fields.Dict(metadata={"description": "As sent, the signatures redacted."})
    status_code = fields.Integer(allow_none=True)
    response_excerpt = fields.String()
    error = fields.String(allow_none=True)
    success = fields.Boolean()


class DeliverySchema(Schema):
    id = fields.Integer()
    msg_id = fields.String(metadata={"description": "The `webhook-id` header (the same on every attempt)."})
    endpoint_id = fields.Integer()
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed."})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)


class DeliveryDetailSchema(DeliverySchema):
    body = fields.String(metadata={"description": "The exact body that was signed."})
    attempt_log = fields.List(fields.Nested(AttemptSchema))


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))
    next_cursor = fields.String(allow_none=True)


class DeliveryArgs(PageArgs):
    endpoint_id = fields.Integer(validate=validate.Range(min=1))
    event_type = fields.String(validate=validate.Length(min=1, max=100))
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))
    since = fields.DateTime(metadata={"description": "Created at or after (UTC)."})


class ReplayFailedSchema(Schema):
    since = fields.DateTime(required=True, metadata={"description": "Replay failed deliveries created since (UTC)."})
    endpoint_id = fields.Integer(validate=validate.Range(min=1))


class CountSchema(Schema):
    replayed = fields.Integer()


def naive_utc(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id)
    if endpoint is None:
        abort(404, message=f"no webhook endpoint {endpoint_id}")
    return endpoint


def message_or_404(message_id: int) -> WebhookMessage:
    message = WebhookMessage.get_or_none(WebhookMessage.id == message_id)
    if message is None:
        abort(404, message=f"no delivery {message_id}")
    return message


def checked(call: Any, *args: Any) -> Any:
    """Run a service call: its validation errors become a 422 with field messages."""
    try:
        return call(*args)
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})
    except service.LimitReached as exc:
        abort(409, message=str(exc))


def with_secret(endpoint: WebhookEndpoint, secret: str) -> dict[str, Any]:
    body = {name: getattr(endpoint, name) for name in EndpointSchema().fields}
    body["secret"] = secret
    return body


def detail(message: WebhookMessage) -> dict[str, Any]:
    body = {name: getattr(message, name) for name in DeliverySchema().fields}
    body["body"] = message.body
    body["attempt_log"] = list(WebhookAttempt.select().where(WebhookAttempt.message == message.id).order_by(WebhookAttempt.number))
    return body


def deliveries(args: dict[str, Any]) -> Any:
    """Messages filtered as the log's arguments say (newest first when paged)."""
    query = WebhookMessage.select()
    if args.get("endpoint_id"):
        query = query.where(WebhookMessage.endpoint == args["endpoint_id"])
    if args.get("event_type"):
        query = query.where(WebhookMessage.event_type == args["event_type"])
    if args.get("status"):
        query = query.where(WebhookMessage.status == args["status"])
    if args.get("since"):
        query = query.where(WebhookMessage.created_at >= naive_utc(args["since"]))
    return query


ENVELOPE = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}, "data": {"type": "object"}},
    "required": ["type", "timestamp", "data"],
}


@blp.route("/events")
class EventTypes(MethodView):
    @blp.response(200, EventListSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """The event types endpoints can subscribe to, each with the JSON Schema of its data"""
        items = [{"type": e.type, "description": e.description, "signal": e.signal, "schema": e.schema} for e in events.catalogue(sdk.current_tenant()).values()]
        items.append({"type": events.TEST_EVENT, "description": "Sent by “send a test event” only (no subscription needed).", "signal": "", "schema": events.TEST_SCHEMA})
        return {"envelope": ENVELOPE, "items": items}


@blp.route("/endpoints")
class Endpoints(MethodView):
    @blp.response(200, EndpointListSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """The tenant's endpoints (secrets are never listed)"""
        return {"items": list(WebhookEndpoint.select().order_by(WebhookEndpoint.id))}

    @blp.arguments(service.EndpointInput)
    @blp.response(201, EndpointWithSecretSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, data):
        """Add an endpoint; the answer holds its secret, shown this once"""
        endpoint, secret = checked(service.create, data)
        return with_secret(endpoint, secret)


@blp.route("/endpoints/<int:endpoint_id>")
class Endpoint(MethodView):
    @blp.response(200, EndpointSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, endpoint_id):
        """One endpoint"""
        return endpoint_or_404(endpoint_id)

    @blp.arguments(EndpointPatch)
    @blp.response(200, EndpointSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def patch(self, data, endpoint_id):
        """Change an endpoint's URL, events, description or enabled state"""
        return checked(service.update, endpoint_or_404(endpoint_id), data)

    @blp.response(204)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def delete(self, endpoint_id):
        """Delete an endpoint with its delivery log"""
        endpoint_or_404(endpoint_id).delete_instance()


@blp.route("/endpoints/<int:endpoint_id>/rotate")
class Rotate(MethodView):
    @blp.response(200, EndpointWithSecretSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, endpoint_id):
        """New secret (shown this once); the old one keeps signing too for 24 hours"""
        endpoint = endpoint_or_404(endpoint_id)
        secret = service.rotate(endpoint)
        return with_secret(WebhookEndpoint.get_by_id(endpoint.id), secret)


@blp.route("/endpoints/<int:endpoint_id>/test")
class TestEvent(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, endpoint_id):
        """Send a `webhook_test` event to the endpoint (see it in the delivery log)"""
        endpoint = endpoint_or_404(endpoint_id)
        if not endpoint.enabled:
            abort(409, message="the endpoint is disabled: enable it first")
        return delivery.send_test(endpoint)


@blp.route("/deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryArgs, location="query")
    @blp.response(200, DeliveryPageSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, args):
        """The delivery log, newest first, filtered by endpoint, event type, status, time"""
        rows, cursor = sdk.keyset_page(deliveries(args), WebhookMessage, "-id", args["limit"], args["cursor"])
        return {"items": rows, "next_cursor": cursor}


@blp.route("/deliveries/<int:delivery_id>")
class Delivery(MethodView):
    @blp.response(200, DeliveryDetailSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, delivery_id):
        """One delivery with its body and every attempt (headers, status, answer, time)"""
        return detail(message_or_404(delivery_id))


@blp.route("/deliveries/<int:delivery_id>/replay")
class Replay(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, delivery_id):
        """Send a delivered or failed delivery again (same `webhook-id`)"""
        message = message_or_404(delivery_id)
        if not WebhookEndpoint.get_by_id(message.endpoint_id).enabled:
            abort(409, message="the endpoint is disabled: enable it first")
        if not delivery.replay(message):
            abort(409, message="the delivery is still pending")
        return WebhookMessage.get_by_id(message.id)


@blp.route("/deliveries/replay")
class ReplayFailed(MethodView):
    @blp.arguments(ReplayFailedSchema)
    @blp.response(202, CountSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, data):
        """Replay every failed delivery created since a time (of enabled endpoints)"""
        if data["since"] and naive_utc(data["since"]) > utcnow():
            abort(422, errors={"json": {"since": ["Must not be in the future."]}})
        return {"replayed": delivery.replay_failed(naive_utc(data["since"]), data.get("endpoint_id"))}
