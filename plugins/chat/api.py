"""The agents' chat API: ``/api/v1/chat/...`` (session or bearer token, role-checked).

Permissions: ``chat:read`` (every role), ``chat:reply`` (admin, manager, agent: reply,
assign, status, presence), ``chat:manage`` (admin, manager: FAQ entries).
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from crm_plugins.chat import service
from crm_plugins.chat.models import STATUSES, ChatConversation, ChatFaq
from crmcore.sdk import Contact, Lead, User, current_user_id, require, visible

blp = Blueprint("chat_api", __name__, url_prefix="/chat", description="Website chat: conversations, messages, FAQ (agents).")


class ConversationSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    visitor_name = fields.String()
    visitor_email = fields.String(allow_none=True)
    visitor_phone = fields.String(allow_none=True)
    page_url = fields.String()
    assignee_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    claimed_lead_id = fields.Integer(allow_none=True, metadata={"description": "An existing lead whose email or phone the visitor gave: unverified, not linked until an agent confirms it (POST .../claim/confirm)."})
    claimed_contact_id = fields.Integer(allow_none=True, metadata={"description": "The same for an existing contact."})
    handed_over = fields.Boolean()
    created_at = fields.String()
    last_message_at = fields.String()
    unread = fields.Integer(metadata={"description": "Visitor messages no agent has read."})


class AttachmentSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    content_type = fields.String()
    size = fields.Integer(metadata={"description": "Bytes."})


class MessageSchema(Schema):
    id = fields.Integer()
    conversation_id = fields.Integer()
    sender = fields.String(metadata={"description": "visitor, agent, assistant or system"})
    author_name = fields.String(allow_none=True)
    content = fields.String()
    client_id = fields.String(allow_none=True)
    attachment = fields.Nested(AttachmentSchema, allow_none=True, metadata={"description": "A visitor's file: download at /app/chat/attachments/<id> (signed in)."})
    created_at = fields.String()
    read_at = fields.String(allow_none=True)


class ConversationArgs(Schema):
    view = fields.String(load_default="all", validate=validate.OneOf(("all", "mine", "unassigned")))
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), metadata={"description": "Repeat for several."})
    lead_id = fields.Integer()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class MessageArgs(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class ReplyIn(Schema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    client_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


class AssignIn(Schema):
    assignee_id = fields.Integer(required=True, allow_none=True, metadata={"description": "A user of the tenant, or null to put it back in the queue."})


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class ReadIn(Schema):
    up_to = fields.Integer(load_default=None, allow_none=True)


class PresenceIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("online", "away")))


class FaqSchema(Schema):
    id = fields.Integer(dump_only=True)
    question = fields.String(required=True, validate=validate.Length(min=1, max=300))
    answer = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    active = fields.Boolean(load_default=True)


def visible_conversations(query: Any) -> Any:
    """Limit ``query`` to conversations whose lead and contact the caller may see (the
    core's rule, e.g. ``agents_see_own_only``); one not linked to anything is visible."""
    return query.where(
        (ChatConversation.lead.is_null() | ChatConversation.lead.in_(visible(Lead.select(Lead.id), Lead)))
        & (ChatConversation.contact.is_null() | ChatConversation.contact.in_(visible(Contact.select(Contact.id), Contact)))
    )


def _conversation(conversation_id: int) -> ChatConversation:
    """The conversation if the caller may see it; else 404, hidden or missing alike."""
    conversation = visible_conversations(ChatConversation.select().where(ChatConversation.id == conversation_id)).first()
    if conversation is None:
        abort(404, message=f"no conversation {conversation_id}")
    return conversation


def _dict(conversation: ChatConversation, unread: int | None = None) -> dict[str, Any]:
    """The wire form, without a claim of a record the caller may not see."""
    data = service.conversation_dict(conversation, unread)
    for key, model in (("claimed_lead_id", Lead), ("claimed_contact_id", Contact)):
        if data[key] is not None and not visible(model.select(model.id).where(model.id == data[key]), model).exists():
            data[key] = None
    return data


def _author() -> Any:
    uid = current_user_id()
    return User.get_or_none(User.id == uid) if uid else None


@blp.route("/conversations")
class Conversations(MethodView):
    @require("chat:read")
    @blp.arguments(ConversationArgs, location="query")
    @blp.response(200, ConversationSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List conversations (``view``: all, mine, unassigned), newest activity first"""
        query = visible_conversations(ChatConversation.select())
        if args["view"] == "mine":
            query = query.where(ChatConversation.assignee == current_user_id())
        elif args["view"] == "unassigned":
            query = query.where(ChatConversation.assignee.is_null())
        if args.get("status"):
            query = query.where(ChatConversation.status.in_(args["status"]))
        if args.get("lead_id") is not None:
            query = query.where(ChatConversation.lead == args["lead_id"])
        rows = list(query.order_by(ChatConversation.last_message_at.desc(), ChatConversation.id.desc()).limit(args["limit"]))
        unread = service.unread_counts([c.id for c in rows])
        return [_dict(c, unread.get(c.id, 0)) for c in rows]


@blp.route("/conversations/<int:conversation_id>")
class ConversationOne(MethodView):
    @require("chat:read")
    @blp.response(200, ConversationSchema)
    def get(self, conversation_id: int) -> Any:
        """One conversation"""
        return _dict(_conversation(conversation_id))


@blp.route("/conversations/<int:conversation_id>/messages")
class Messages(MethodView):
    @require("chat:read")
    @blp.arguments(MessageArgs, location="query")
    @blp.response(200, MessageSchema(many=True))
    def get(self, args: dict[str, Any], conversation_id: int) -> Any:
        """Messages after ``after`` (a message id), oldest first"""
        conversation = _conversation(conversation_id)
        messages = service.messages_after(conversation, args["after"], args["limit"])
        names = {u.id: (u.name or u.email.split("@")[0]) for u in User.select().where(User.id.in_({m.author_id for m in messages if m.author_id}))}
        return [service.message_dict(m, names.get(m.author_id)) for m in messages]

    @require("chat:reply")
    @blp.arguments(ReplyIn)
    @blp.response(201, MessageSchema)
    def post(self, data: dict[str, Any], conversation_id: int) -> Any:
        """Reply as an agent (a resend with the same ``client_id`` is not duplicated)"""
        conversation = _conversation(conversation_id)
        content = data["content"].strip()
        if not content:
            abort(422, errors={"json": {"content": ["Write a message."]}})
        message, _ = service.post_message(g.tenant, conversation, sender="agent", content=content, client_id=data["client_id"], author=_author())
        return service.message_dict(message)


@blp.route("/conversations/<int:conversation_id>/assign")
class Assign(MethodView):
    @require("chat:reply")
    @blp.arguments(AssignIn)
    @blp.response(200, ConversationSchema)
    def put(self, data: dict[str, Any], conversation_id: int) -> Any:
        """Assign to a user (or null: back to the queue)"""
        conversation = _conversation(conversation_id)
        uid = data["assignee_id"]
        if uid is not None:
            user = User.get_or_none((User.id == uid) & (User.active == True))
            if user is None or user.role == "viewer":
                abort(422, errors={"json": {"assignee_id": [f"No active agent {uid} in this tenant."]}})
        return _dict(service.assign(g.tenant, conversation, uid))


@blp.route("/conversations/<int:conversation_id>/status")
class Status(MethodView):
    @require("chat:reply")
    @blp.arguments(StatusIn)
    @blp.response(200, ConversationSchema)
    def put(self, data: dict[str, Any], conversation_id: int) -> Any:
        """Set the status: open, pending or resolved"""
        return _dict(service.set_status(g.tenant, _conversation(conversation_id), data["status"]))


@blp.route("/conversations/<int:conversation_id>/read")
class Read(MethodView):
    @require("chat:reply")
    @blp.arguments(ReadIn)
    @blp.response(200, ConversationSchema)
    def post(self, data: dict[str, Any], conversation_id: int) -> Any:
        """Mark the visitor's messages read (up to a message id)"""
        conversation = _conversation(conversation_id)
        service.mark_read(g.tenant, conversation, "agent", data["up_to"])
        return _dict(conversation)


@blp.route("/conversations/<int:conversation_id>/typing")
class Typing(MethodView):
    @require("chat:reply")
    @blp.response(204)
    def post(self, conversation_id: int) -> None:
        """Tell the visitor an agent is typing"""
        import time

        service.publish_ephemeral(g.tenant, _conversation(conversation_id).id, {"kind": "typing", "sender": "agent", "at": time.time()})


@blp.route("/conversations/<int:conversation_id>/claim/confirm")
class ClaimConfirm(MethodView):
    @require("chat:reply")
    @blp.response(200, ConversationSchema)
    def post(self, conversation_id: int) -> Any:
        """Confirm the visitor is the lead or contact they claim to be: link the conversation (and its transcript) to it"""
        conversation = _conversation(conversation_id)
        shown = _dict(conversation)
        if shown["claimed_lead_id"] is None and shown["claimed_contact_id"] is None:
            abort(404, message=f"conversation {conversation_id} claims no record you can see")
        return _dict(service.confirm_claim(g.tenant, conversation))


@blp.route("/conversations/<int:conversation_id>/claim/dismiss")
class ClaimDismiss(MethodView):
    @require("chat:reply")
    @blp.response(200, ConversationSchema)
    def post(self, conversation_id: int) -> Any:
        """Dismiss the visitor's claim to be an existing lead or contact (nothing is linked)"""
        return _dict(service.dismiss_claim(g.tenant, _conversation(conversation_id)))


@blp.route("/leads/<int:lead_id>/conversations")
class LeadConversations(MethodView):
    @require("chat:read")
    @blp.response(200, ConversationSchema(many=True))
    def get(self, lead_id: int) -> Any:
        """A lead's conversations, newest first"""
        if not visible(Lead.select().where(Lead.id == lead_id), Lead).exists():
            abort(404, message=f"no lead {lead_id}")
        rows = list(ChatConversation.select().where(ChatConversation.lead == lead_id).order_by(ChatConversation.id.desc()))
        unread = service.unread_counts([c.id for c in rows])
        return [_dict(c, unread.get(c.id, 0)) for c in rows]


@blp.route("/presence")
class Presence(MethodView):
    @require("chat:reply")
    @blp.arguments(PresenceIn)
    @blp.response(200, PresenceIn)
    def put(self, data: dict[str, Any]) -> Any:
        """The signed-in agent's presence (the inbox page sends it every 30 s)"""
        user = _author()
        if user is None:
            abort(422, errors={"json": {"_schema": ["Presence needs a user (a session or a user's token)."]}})
        service.set_presence(user, data["status"])
        return data


@blp.route("/faq")
class Faqs(MethodView):
    @require("chat:read")
    @blp.response(200, FaqSchema(many=True))
    def get(self) -> Any:
        """FAQ entries the assistant answers from"""
        return list(ChatFaq.select().order_by(ChatFaq.id))

    @require("chat:manage")
    @blp.arguments(FaqSchema)
    @blp.response(201, FaqSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Add an FAQ entry"""
        return ChatFaq.create(**data)


@blp.route("/faq/<int:faq_id>")
class FaqOne(MethodView):
    @require("chat:manage")
    @blp.arguments(FaqSchema(partial=True))
    @blp.response(200, FaqSchema)
    def patch(self, data: dict[str, Any], faq_id: int) -> Any:
        """Change an FAQ entry"""
        faq = ChatFaq.get_or_none(ChatFaq.id == faq_id) or abort(404, message=f"no FAQ entry {faq_id}")
        for key, value in data.items():
            setattr(faq, key, value)
        faq.save()
        return faq

    @require("chat:manage")
    @blp.response(204)
    def delete(self, faq_id: int) -> None:
        """Delete an FAQ entry"""
        if not ChatFaq.delete().where(ChatFaq.id == faq_id).execute():
            abort(404, message=f"no FAQ entry {faq_id}")
