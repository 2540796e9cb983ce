"""Pages under /app/conversations: the inbox of every channel (filter by channel and
status) and a conversation with its messages and a reply box."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from crm_plugins.channels import service
from crm_plugins.channels.contrib import Refused
from crm_plugins.channels.models import CONVERSATION_STATUSES, Conversation, Message
from crmcore import sdk

bp = Blueprint("channels", __name__, url_prefix="/app/conversations", template_folder="templates")
PAGE_SIZE = 50


@bp.before_request
def _readers_only() -> None:
    if sdk.current_user() is None or not sdk.has_permission("channels:read"):
        abort(403)


@bp.route("/")
def inbox() -> Any:
    """Conversations of every channel, latest first; ``channel`` and ``status`` filter."""
    tenant = sdk.current_tenant()
    channels = service.channels_of(tenant)
    query = Conversation.select()
    channel, status = request.args.get("channel") or "", request.args.get("status") or ""
    if channel:
        query = query.where(Conversation.channel == channel)
    if status in CONVERSATION_STATUSES:
        query = query.where(Conversation.status == status)
    rows, cursor = sdk.keyset_page(query, Conversation, "-last_message_at", PAGE_SIZE, request.args.get("cursor") or None)
    names = {
        "lead": sdk.display_names(sdk.Lead, [c.lead_id for c in rows if c.lead_id]),
        "contact": sdk.display_names(sdk.Contact, [c.contact_id for c in rows if c.contact_id]),
    }
    return render_template("channels/inbox.html", rows=rows, next_cursor=cursor, channels=channels, channel=channel,
                           status=status, statuses=CONVERSATION_STATUSES, names=names, live_topics=["list:conversation"])


def _conversation_or_404(conversation_id: int) -> Conversation:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        abort(404)
    return conversation


def _page(conversation: Conversation, errors: dict[str, list[str]] | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Any:
    messages = list(Message.select().where(Message.conversation == conversation.id).order_by(Message.id.desc()).limit(200))[::-1]
    channel = service.channels_of(sdk.current_tenant()).get(conversation.channel)
    return render_template("channels/conversation.html", conversation=conversation, messages=messages, channel=channel,
                           errors=errors or {}, values=values or {}, statuses=CONVERSATION_STATUSES, live_topics=["list:conversation"]), status


@bp.route("/<int:conversation_id>")
def conversation(conversation_id: int) -> Any:
    return _page(_conversation_or_404(conversation_id))


@bp.route("/<int:conversation_id>/reply", methods=["POST"])
def reply(conversation_id: int) -> Any:
    if not sdk.has_permission("channels:send"):
        abort(403)
    conversation = _conversation_or_404(conversation_id)
    body = (request.form.get("body") or "").strip()
    try:
        service.compose(sdk.current_tenant(), channel_name=conversation.channel, entity=None, record=None, conversation=conversation,
                        to=None, cc=None, subject=None, body=body, html=None, template=None, user=sdk.current_user(),
                        idempotency_key=(request.form.get("idempotency_key") or None))
    except Refused as exc:
        return _page(conversation, exc.messages, {"body": body}, 422)
    flash("Reply queued.")
    return redirect(url_for("channels.conversation", conversation_id=conversation.id))


@bp.route("/<int:conversation_id>/status", methods=["POST"])
def set_status(conversation_id: int) -> Any:
    if not sdk.has_permission("channels:send"):
        abort(403)
    conversation = _conversation_or_404(conversation_id)
    status = request.form.get("status")
    if status not in CONVERSATION_STATUSES:
        return _page(conversation, {"status": ["unknown status"]}, status=422)
    Conversation.update(status=status).where(Conversation.id == conversation.id).execute()
    return redirect(url_for("channels.conversation", conversation_id=conversation.id))
