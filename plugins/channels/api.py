"""/api/v1/messages (send, list by record or conversation, status) and /api/v1/templates
(CRUD, preview): the same for every channel.

Permissions: ``channels:read`` (every role) to read, ``channels:send`` (admin, manager,
agent) to send, ``channels:templates`` (admin, manager) to change templates.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MarshmallowError

from crm_plugins.channels import service, templating
from crm_plugins.channels.contrib import Refused
from crm_plugins.channels.models import Conversation, Message, MessageTemplate
from crmcore import sdk
from crmcore.sdk import Contact, PageArgs, User, require, utcnow

messages_blp = Blueprint("channels_messages", __name__, url_prefix="/messages", description="Messages of every channel: send, list, status.")
templates_blp = Blueprint("channels_templates", __name__, url_prefix="/templates", description="Message templates shared by every channel.")
SECURITY = [{"bearerAuth": []}]
ENTITIES = ("lead", "contact", "deal")
Address = fields.String(validate=validate.Length(min=1, max=320))


class ChannelMessageSchema(Schema):
    id = fields.Integer()
    conversation_id = fields.Integer()
    channel = fields.String()
    direction = fields.String(metadata={"description": "in or out"})
    status = fields.String(metadata={"description": "queued, sent, delivered, failed (outbound) or received (inbound)"})
    failure_reason = fields.String(allow_none=True)
    attempts = fields.Integer()
    subject = fields.String()
    body_text = fields.String()
    body_html = fields.String(metadata={"description": "Sanitised HTML (nh3)."})
    sender = fields.String()
    recipients = fields.List(fields.String())
    cc = fields.List(fields.String())
    message_id = fields.String(allow_none=True, metadata={"description": "The channel's id (email: Message-ID), fixed before the first attempt."})
    in_reply_to = fields.String(allow_none=True)
    references = fields.List(fields.String())
    idempotency_key = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    purpose = fields.String(metadata={"description": "sales or marketing"})
    urgent = fields.Boolean(metadata={"description": "Sent during quiet hours too."})
    waiting_until = fields.Function(
        lambda m: m.next_attempt_at.isoformat() if m.status == "queued" and m.held_by is None and m.next_attempt_at and m.next_attempt_at > utcnow() else None,
        allow_none=True, metadata={"type": "string", "format": "date-time",
                                   "description": "A queued message waits until then (quiet hours, a retry's backoff)."})


class ChannelMessagePageSchema(Schema):
    items = fields.List(fields.Nested(ChannelMessageSchema))
    next_cursor = fields.String(allow_none=True)


class SendMessageSchema(Schema):
    channel = fields.String(required=True, validate=validate.Length(min=1, max=30))
    entity = fields.String(validate=validate.OneOf(ENTITIES), metadata={"description": "The record the message is about (with record_id)."})
    record_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    conversation_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "Reply in this conversation."})
    to = fields.List(Address, validate=validate.Length(max=50), metadata={"description": "Default: the record's (or conversation's) address."})
    cc = fields.List(Address, validate=validate.Length(max=50), load_default=list)
    subject = fields.String(validate=validate.Length(max=300))
    body = fields.String(validate=validate.Length(max=100_000), metadata={"description": "Plain text."})
    html = fields.String(validate=validate.Length(max=500_000), metadata={"description": "Rich text; sanitised (nh3)."})
    template_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    idempotency_key = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "A send asked again with the same key is the same message."})
    purpose = fields.String(load_default="sales", validate=validate.OneOf(["sales", "marketing"]),
                            metadata={"description": "marketing: carries an unsubscribe link (email: RFC 8058 one-click headers); refused to who unsubscribed."})
    urgent = fields.Boolean(load_default=False, metadata={"description": "Send during the recipient's quiet hours too (never for marketing); otherwise it waits for them to end."})
    channel_options = fields.Dict(keys=fields.String(validate=validate.Length(max=50)), validate=validate.Length(max=20),
                                  metadata={"description": "Channel-specific parameters, checked by the channel (WhatsApp: "
                                            '{"template": name, "variables": {"1": ...}}, an approved template, sent outside the 24-hour window too).'})

    @validates_schema
    def _about_something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("conversation_id") and not (data.get("entity") and data.get("record_id")):
            raise MarshmallowError("give conversation_id, or entity and record_id", "record_id")


class MessageListArgs(PageArgs):
    conversation_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    entity = fields.String(validate=validate.OneOf(ENTITIES))
    record_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))


class MessageTemplateSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    channel = fields.String(allow_none=True, validate=validate.Length(min=1, max=30), metadata={"description": "Only for this channel (null: any)."})
    subject = fields.String(load_default="", validate=validate.Length(max=300))
    body = fields.String(load_default="", validate=validate.Length(max=100_000))
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class MessageTemplateListSchema(Schema):
    items = fields.List(fields.Nested(MessageTemplateSchema))


class TemplatePreviewSchema(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(ENTITIES))
    record_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class RenderedTemplateSchema(Schema):
    subject = fields.String()
    body = fields.String()


def record_or_404(entity: str, record_id: int) -> Any:
    """The record if the caller may see it (the core's visibility rules), else 404."""
    if entity == "lead":
        return sdk.visible_lead(record_id)
    if entity == "deal":
        return sdk.visible_deal(record_id)
    contact = Contact.get_or_none(Contact.id == record_id)
    if contact is None:
        abort(404, message=f"no contact {record_id}")
    return contact


def conversation_or_404(conversation_id: int) -> Conversation:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        abort(404, message=f"no conversation {conversation_id}")
    if conversation.lead_id and not conversation.contact_id:
        sdk.visible_lead(conversation.lead_id)  # an agent who may not see the lead may not see its mail
    return conversation


def template_or_404(template_id: int) -> MessageTemplate:
    template = MessageTemplate.get_or_none(MessageTemplate.id == template_id)
    if template is None:
        abort(404, message=f"no template {template_id}")
    return template


def refused(exc: Refused) -> None:
    abort(422, errors={"json": exc.messages})


@messages_blp.route("")
class Messages(MethodView):
    @messages_blp.arguments(MessageListArgs, location="query")
    @messages_blp.response(200, ChannelMessagePageSchema)
    @messages_blp.doc(security=SECURITY)
    @require("channels:read")
    def get(self, args):
        """Messages of a conversation or of a record (its conversations), newest first"""
        query = Message.select()
        if args.get("conversation_id"):
            query = query.where(Message.conversation == conversation_or_404(args["conversation_id"]).id)
        elif args.get("entity") and args.get("record_id"):
            record_or_404(args["entity"], args["record_id"])
            field = getattr(Conversation, args["entity"])
            query = query.where(Message.conversation.in_(Conversation.select(Conversation.id).where(field == args["record_id"])))
        else:
            abort(422, errors={"query": {"conversation_id": ["give conversation_id, or entity and record_id"]}})
        rows, cursor = sdk.keyset_page(query, Message, "-id", args["limit"], args["cursor"])
        return {"items": rows, "next_cursor": cursor}

    @messages_blp.arguments(SendMessageSchema)
    @messages_blp.response(201, ChannelMessageSchema)
    @messages_blp.doc(security=SECURITY)
    @require("channels:send")
    def post(self, data):
        """Send a message (queued at once; the outbox sends it): on a record, or a reply in a conversation"""
        conversation = conversation_or_404(data["conversation_id"]) if data.get("conversation_id") else None
        entity, record = (data.get("entity"), record_or_404(data["entity"], data["record_id"])) if data.get("record_id") and data.get("entity") else (None, None)
        template = template_or_404(data["template_id"]) if data.get("template_id") else None
        user = User.get_or_none(User.id == sdk.current_user_id()) if sdk.current_user_id() else None
        try:
            return service.compose(
                sdk.current_tenant(), channel_name=data["channel"], entity=entity, record=record, conversation=conversation,
                to=data.get("to"), cc=data.get("cc"), subject=data.get("subject"), body=data.get("body"), html=data.get("html"),
                template=template, user=user, idempotency_key=data.get("idempotency_key"), purpose=data["purpose"],
                urgent=data["urgent"],
                options=data.get("channel_options"),
            )
        except Refused as exc:
            refused(exc)


@messages_blp.route("/<int:channel_message_id>")
class OneMessage(MethodView):
    @messages_blp.response(200, ChannelMessageSchema)
    @messages_blp.doc(security=SECURITY)
    @require("channels:read")
    def get(self, channel_message_id):
        """One message and its status (failure_reason says why a failed one failed)"""
        message = Message.get_or_none(Message.id == channel_message_id)
        if message is None:
            abort(404, message=f"no message {channel_message_id}")
        conversation_or_404(message.conversation_id)
        return message


def _check(data: dict[str, Any]) -> None:
    try:
        templating.check_syntax("subject", data.get("subject", ""))
        templating.check_syntax("body", data.get("body", ""))
    except templating.TemplateProblem as exc:
        abort(422, errors={"json": {exc.field: [str(exc)]}})


def _unique_name(name: str, template_id: int | None = None) -> None:
    query = MessageTemplate.select().where(MessageTemplate.name == name)
    if template_id:
        query = query.where(MessageTemplate.id != template_id)
    if query.exists():
        abort(409, message=f"a template named {name!r} exists")


@templates_blp.route("")
class Templates(MethodView):
    @templates_blp.response(200, MessageTemplateListSchema)
    @templates_blp.doc(security=SECURITY)
    @require("channels:read")
    def get(self):
        """The tenant's templates"""
        return {"items": list(MessageTemplate.select().order_by(MessageTemplate.name).limit(1000))}

    @templates_blp.arguments(MessageTemplateSchema)
    @templates_blp.response(201, MessageTemplateSchema)
    @templates_blp.doc(security=SECURITY)
    @require("channels:templates")
    def post(self, data):
        """Add a template (Jinja2, sandboxed); a syntax error is a 422 naming the line"""
        _check(data)
        _unique_name(data["name"])
        return MessageTemplate.create(**data)


@templates_blp.route("/<int:template_id>")
class OneTemplate(MethodView):
    @templates_blp.response(200, MessageTemplateSchema)
    @templates_blp.doc(security=SECURITY)
    @require("channels:read")
    def get(self, template_id):
        """One template"""
        return template_or_404(template_id)

    @templates_blp.arguments(MessageTemplateSchema(partial=True))
    @templates_blp.response(200, MessageTemplateSchema)
    @templates_blp.doc(security=SECURITY)
    @require("channels:templates")
    def patch(self, data, template_id):
        """Change a template"""
        template = template_or_404(template_id)
        _check({"subject": data.get("subject", template.subject), "body": data.get("body", template.body)})
        if "name" in data:
            _unique_name(data["name"], template.id)
        MessageTemplate.update(updated_at=utcnow(), **data).where(MessageTemplate.id == template.id).execute()
        return MessageTemplate.get_by_id(template.id)

    @templates_blp.response(204)
    @templates_blp.doc(security=SECURITY)
    @require("channels:templates")
    def delete(self, template_id):
        """Delete a template"""
        template_or_404(template_id).delete_instance()


@templates_blp.route("/<int:template_id>/preview")
class Preview(MethodView):
    @templates_blp.arguments(TemplatePreviewSchema)
    @templates_blp.response(200, RenderedTemplateSchema)
    @templates_blp.doc(security=SECURITY)
    @require("channels:read")
    def post(self, data, template_id):
        """Render a template against a real record (missing values: the tenant's default)"""
        template = template_or_404(template_id)
        record = record_or_404(data["entity"], data["record_id"])
        user = User.get_or_none(User.id == sdk.current_user_id()) if sdk.current_user_id() else None
        try:
            return service.render_template(sdk.current_tenant(), template, data["entity"], record, user)
        except templating.TemplateProblem as exc:
            abort(422, errors={"json": {exc.field: [str(exc)]}})
