"""Pages under /app/conversations: the inbox of every channel (filter by channel and
status) and a conversation with its messages and a reply box."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from crm_plugins.channels import inbox as inbox_rows
from crm_plugins.channels import service
from crm_plugins.channels.contrib import Refused
from crm_plugins.channels.models import CONVERSATION_STATUSES, Conversation, Message
from crmcore import sdk

bp = Blueprint("channels", __name__, url_prefix="/app/conversations", template_folder="templates",
               static_folder="static", static_url_path="/static")
PAGE_SIZE = 50


@bp.before_request
def _readers_only() -> None:
    if sdk.current_user() is None or not sdk.has_permission("channels:read"):
        abort(403)


def _choice(name: str, allowed: tuple[str, ...], default: str = "") -> str:
    value = request.args.get(name) or default
    return value if value in allowed else default


@bp.route("/")
def inbox() -> Any:
    """Conversations of every channel (the website chat's too), latest first; filters:
    ``channel``, ``status``, ``queue`` (all, unassigned, mine)."""
    tenant = sdk.current_tenant()
    channels = service.channels_of(tenant)
    channel = (request.args.get("channel") or "")[:30]  # a channel the tenant lacks: an empty list
    status = _choice("status", CONVERSATION_STATUSES)
    queue = _choice("queue", tuple(key for key, _ in inbox_rows.QUEUES), "all")
    rows, cursor = inbox_rows.page(channels, channel=channel, status=status, queue=queue, user_id=sdk.current_user_id(),
                                   limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
    names = {
        "lead": sdk.display_names(sdk.Lead, [c.lead_id for c in rows if c.lead_id]),
        "contact": sdk.display_names(sdk.Contact, [c.contact_id for c in rows if c.contact_id]),
        "user": dict(sdk.user_options(active_only=False)),
    }
    topics = ["list:conversation"] + [t for c in channels.values() if c.live_topics for t in c.live_topics()]
    return render_template("channels/inbox.html", rows=rows, next_cursor=cursor, channels=channels, channel=channel,
                           status=status, statuses=CONVERSATION_STATUSES, queue=queue, queues=inbox_rows.QUEUES, names=names,
                           inbox_topics=",".join(topics), since=sdk.live_since_id())


def _conversation_or_404(conversation_id: int) -> Conversation:
    """The conversation if the caller may see its lead and contact; else 404, hidden or
    missing alike (the inbox's rule)."""
    conversation = service.visible_conversations(Conversation.select().where(Conversation.id == conversation_id)).first()
    if conversation is None:
        abort(404)
    return conversation


def _page(conversation: Conversation, errors: dict[str, list[str]] | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Any:
    tenant = sdk.current_tenant()
    messages = list(Message.select().where(Message.conversation == conversation.id).order_by(Message.id.desc()).limit(200))[::-1]
    channel = service.channels_of(tenant).get(conversation.channel)
    return render_template("channels/conversation.html", conversation=conversation, messages=messages, channel=channel,
                           errors=errors or {}, values=values or {}, statuses=CONVERSATION_STATUSES, live_topics=["list:conversation"],
                           agents=service.agents(), canned=sdk.settings(tenant, "channels")["canned_responses"]), status


@bp.route("/<int:conversation_id>")
def conversation(conversation_id: int) -> Any:
    return _page(_conversation_or_404(conversation_id))


@bp.route("/<int:conversation_id>/assign", methods=["POST"])
def assign(conversation_id: int) -> Any:
    """Give the conversation to an agent, or back to the Unassigned queue (empty)."""
    if not sdk.has_permission("channels:send"):
        abort(403)
    conversation = _conversation_or_404(conversation_id)
    raw = (request.form.get("assignee_id") or "").strip()
    agent_ids = {user.id for user in service.agents()}
    if raw and (not raw.isdigit() or int(raw) not in agent_ids):
        return _page(conversation, {"assignee_id": [f"no active agent {raw} in this tenant"]}, status=422)
    service.set_assignee(sdk.current_tenant(), conversation, int(raw) if raw else None)
    flash("Assigned." if raw else "Back in the Unassigned queue.")
    return redirect(url_for("channels.conversation", conversation_id=conversation.id))


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
    service.set_status(sdk.current_tenant(), conversation, status)
    return redirect(url_for("channels.conversation", conversation_id=conversation.id))
