"""The agents' pages: the inbox (``/app/chat/``) and the widget & FAQ page (``/app/chat/setup``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from crm_plugins.chat import audience, service
from crm_plugins.chat.api import visible_conversations
from crm_plugins.chat.models import ChatConversation, ChatFaq
from crmcore import sdk
from crmcore.sdk import Contact, Lead, User, has_permission, visible

pages = Blueprint("chat_pages", __name__, url_prefix="/app/chat", template_folder="templates", static_folder="static", static_url_path="/static")

VIEWS = (("unassigned", "Unassigned"), ("mine", "Mine"), ("all", "All"))


@pages.route("/")
def inbox() -> Any:
    """Conversation list (a view and a status) beside the open conversation."""
    view = request.args.get("view", "all")
    view = view if view in dict(VIEWS) else "all"
    status = request.args.get("status", "open")
    status = status if status in ("open", "pending", "resolved", "any") else "open"
    query = visible_conversations(ChatConversation.select())
    if view == "mine":
        query = query.where(ChatConversation.assignee == g.user.id)
    elif view == "unassigned":
        query = query.where(ChatConversation.assignee.is_null())
    if status != "any":
        query = query.where(ChatConversation.status == status)
    conversations = list(query.order_by(ChatConversation.last_message_at.desc(), ChatConversation.id.desc()).limit(200))
    unread = service.unread_counts([c.id for c in conversations])
    current = None
    selected = request.args.get("c", type=int)
    messages: list[dict[str, Any]] = []
    lead = contact = claimed_lead = claimed_contact = None
    if selected:
        current = visible_conversations(ChatConversation.select().where(ChatConversation.id == selected)).first()
        if current is None:
            abort(404)
        names = {u.id: (u.name or u.email.split("@")[0]) for u in User.select()}
        messages = [service.message_dict(m, names.get(m.author_id)) for m in service.messages_after(current, 0, 1000)]
        lead = Lead.get_or_none(Lead.id == current.lead_id) if current.lead_id else None
        contact = Contact.get_or_none(Contact.id == current.contact_id) if current.contact_id else None
        claimed_lead, claimed_contact = _claims(current)
    agents = list(User.select().where((User.active == True) & (User.role != "viewer")).order_by(User.name, User.email))
    topics = audience.inbox_topics() + ([service.conversation_topic(current.id)] if current else [])

    return render_template(
        "chat/inbox.html", conversations=conversations, unread=unread, view=view, status=status, views=VIEWS,
        current=current, messages=messages, lead=lead, contact=contact, claimed_lead=claimed_lead, claimed_contact=claimed_contact, agents=agents, agent_names={a.id: a.name or a.email for a in agents},
        can_reply=has_permission("chat:reply"), topics=",".join(topics), since=sdk.live_since_id(),
        canned=canned_responses(g.tenant),
        every_channel_url=url_for("channels.inbox") if sdk.is_enabled(g.tenant, "channels") else None,
    )


def canned_responses(tenant: Any) -> list[str]:
    """The chat's canned responses, then those of the inbox of every channel (with the
    channels plugin on: the same texts on every channel), each once."""
    texts = list(service.settings(tenant)["canned_responses"])
    if sdk.is_enabled(tenant, "channels"):
        texts += [t for t in sdk.settings(tenant, "channels")["canned_responses"] if t not in texts]
    return texts


def _claims(conversation: ChatConversation) -> tuple[Any, Any]:
    """The lead and contact the visitor claims to be, those the user may see."""
    lead = visible(Lead.select().where(Lead.id == conversation.claimed_lead_id), Lead).first() if conversation.claimed_lead_id else None
    contact = visible(Contact.select().where(Contact.id == conversation.claimed_contact_id), Contact).first() if conversation.claimed_contact_id else None
    return lead, contact


@pages.route("/<int:conversation_id>/claim", methods=["POST"])
def claim(conversation_id: int) -> Any:
    """Confirm (``action=confirm``) or dismiss the visitor's claim to be an existing record."""
    conversation = visible_conversations(ChatConversation.select().where(ChatConversation.id == conversation_id)).first()
    if conversation is None or not any(_claims(conversation)):
        abort(404)
    if not has_permission("chat:reply"):
        abort(403)
    if request.form.get("action") == "confirm":
        service.confirm_claim(g.tenant, conversation)
        flash("Linked: the conversation is now on the record's timeline.")
    else:
        service.dismiss_claim(g.tenant, conversation)
        flash("Claim dismissed: nothing was linked.")
    return redirect(url_for(".inbox", c=conversation.id))


@pages.route("/attachments/<int:attachment_id>")
def attachment(attachment_id: int) -> Any:
    """A visitor's file, for the tenant's signed-in users."""
    from crm_plugins.chat.models import ChatAttachment
    from crm_plugins.chat.public import send_attachment

    found = ChatAttachment.get_or_none(ChatAttachment.id == attachment_id)
    if found is None or not has_permission("chat:read"):
        abort(404)
    return send_attachment(g.tenant, found)


@pages.route("/setup", methods=["GET", "POST"])
def setup() -> Any:
    """The widget snippet and the assistant's FAQ entries (admins and managers)."""
    if not has_permission("chat:manage"):
        abort(403)
    errors: dict[str, list[str]] = {}
    form = {"question": "", "answer": ""}
    # ?edit=<id>: the form below the list edits that entry instead of adding one
    editing = ChatFaq.get_or_none(ChatFaq.id == request.values.get("edit", type=int)) if request.values.get("edit") else None
    if request.values.get("edit") and editing is None:
        abort(404)
    if editing is not None:
        form = {"question": editing.question, "answer": editing.answer}
    if request.method == "POST":
        action = request.form.get("action", "add")
        if action == "delete":
            ChatFaq.delete().where(ChatFaq.id == request.form.get("faq_id", type=int)).execute()
            flash("FAQ entry deleted.")
            return redirect(url_for(".setup"))
        form = {"question": request.form.get("question", "").strip(), "answer": request.form.get("answer", "").strip()}
        if not form["question"]:
            errors["question"] = ["Write the question a visitor might ask."]
        elif len(form["question"]) > 300:
            errors["question"] = ["At most 300 characters."]
        if not form["answer"]:
            errors["answer"] = ["Write the answer the assistant gives."]
        elif len(form["answer"]) > 5000:
            errors["answer"] = ["At most 5000 characters."]
        if not errors and editing is not None:
            ChatFaq.update(**form).where(ChatFaq.id == editing.id).execute()
            flash("FAQ entry saved.")
            return redirect(url_for(".setup"))
        if not errors:
            ChatFaq.create(**form)
            flash("FAQ entry added.")
            return redirect(url_for(".setup"))
    faqs = list(ChatFaq.select().order_by(ChatFaq.id))
    base = request.host_url.rstrip("/")
    snippet = f'<script src="{base}{url_for("chat_assets.widget_js")}" data-key="{service.public_key(g.tenant)}" async></script>'
    return render_template("chat/setup.html", faqs=faqs, errors=errors, form=form, editing=editing, snippet=snippet, conf=service.settings(g.tenant)), (422 if errors else 200)
