"""Conversations and messages of every channel: queueing outbound messages (sent by
outbox.py) and recording their statuses, inbound messages (dedupe, threading, linking),
the timeline entries and the signals.

Signals, each sent after commit with ``message``, ``conversation`` and ``channel`` (the
channel's name): ``message_received``, ``message_sent``, ``message_delivered``,
``message_failed`` (``reason`` too).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import nh3
from peewee import fn

from crm_plugins.channels import outbox
from crm_plugins.channels.contrib import Channel, Refused  # noqa: F401
from crm_plugins.channels.models import Conversation, Message
from crmcore import sdk
from crmcore.sdk import Activity, Contact, Lead, atomic, on_commit, send_signal, utcnow

log = logging.getLogger("crm_plugins.channels")

LIVE_TOPIC = "channels"
SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def channels_of(tenant: Any) -> dict[str, Channel]:
    """The channels of the tenant's enabled plugins, by name."""
    found: dict[str, Channel] = {}
    for plugin, answer in sdk.call_hook(tenant, "crm_channels", tenant=tenant):
        for channel in answer or []:
            if isinstance(channel, Channel) and channel.name not in found:
                found[channel.name] = channel
            else:
                log.warning("plugin %s: ignored channel %r (not a Channel or a duplicate name)", plugin, channel)
    return found


def sanitise_html(html: str) -> str:
    """Safe HTML for storage and display (nh3: no scripts, handlers or javascript: URLs)."""
    return nh3.clean(html or "", link_rel="noopener noreferrer nofollow")


def text_of_html(html: str) -> str:
    text = nh3.clean(re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", html or ""), tags=set())
    import html as html_module

    return re.sub(r"\n{3,}", "\n\n", html_module.unescape(text)).strip()


def thread_subject(subject: str) -> str:
    """The subject without Re:/Fwd: prefixes, lower-case (for threading by subject)."""
    return SUBJECT_PREFIX.sub("", subject or "").strip().lower()


def links_of(entity: str | None, record: Any) -> dict[str, int | None]:
    """The lead/contact/deal ids a conversation about ``record`` links to."""
    links: dict[str, int | None] = {"lead": None, "contact": None, "deal": None}
    if entity in links and record is not None:
        links[entity] = record.id
    if entity == "deal":
        links["contact"] = record.contact_id
        links["lead"] = record.lead_id
    return links


# --------------------------------------------------------------------------- timeline


def attachment_lines(message: Message) -> str:
    """The message's attachments (``headers["attachments"]``: ``[{"url", "content_type"}]``,
    a channel's convention) as lines under the timeline entry's text."""
    attachments = (message.headers or {}).get("attachments") or []
    lines = [f"[{a.get('content_type') or 'file'}] {a.get('url') or a.get('refused', '')}" for a in attachments[:10] if isinstance(a, dict)]
    return ("\n" if (message.body_text or "").strip() and lines else "") + "\n".join(lines)


def _timeline(message: Message, conversation: Conversation, channel: Channel | None) -> None:
    if not (conversation.lead_id or conversation.contact_id or conversation.deal_id):
        return
    activity = sdk.log_activity({
        "kind": channel.activity_kind if channel else "email", "channel": message.channel,
        "direction": message.direction, "subject": (message.subject or "")[:300],
        "content": (message.body_text or "")[:5000] + attachment_lines(message), "outcome": message.status,
        "lead": conversation.lead_id, "contact": conversation.contact_id, "deal": conversation.deal_id,
        "user": message.author_id,
    })
    Message.update(activity_id=activity.id).where(Message.id == message.id).execute()
    message.activity_id = activity.id


def _publish(tenant: Any, conversation_id: int, message_id: int, status: str, channel: str) -> None:
    """After commit: the ``channels`` topic (its data for scripts) and ``list:conversation``
    (the inbox's and conversation pages' "New or changed ... Reload" notice)."""
    event = {"conversation_id": conversation_id, "message_id": message_id, "status": status, "channel": channel}

    def publish() -> None:
        sdk.live_publish(tenant, LIVE_TOPIC, event)
        sdk.live_publish(tenant, "list:conversation", {"kind": "updated", "id": conversation_id, "actor_id": None})

    on_commit(publish)


def _announce(tenant: Any, name: str, message: Message, conversation: Conversation, **extra: Any) -> None:
    send_signal(name, tenant, message=message, conversation=conversation, channel=message.channel, **extra)
    _publish(tenant, conversation.id, message.id, message.status, message.channel)


# --------------------------------------------------------------------------- assignment and status


def visible_conversations(query: Any) -> Any:
    """Limit ``query`` to conversations whose lead and contact the caller may see (the
    core's rule, e.g. ``agents_see_own_only``); one linked to nothing is everybody's."""
    return query.where(
        (Conversation.lead.is_null() | Conversation.lead.in_(sdk.visible(Lead.select(Lead.id), Lead)))
        & (Conversation.contact.is_null() | Conversation.contact.in_(sdk.visible(Contact.select(Contact.id), Contact))))


def agents() -> list[Any]:
    """Users a conversation may be assigned to: the tenant's active users but viewers."""
    return list(sdk.User.select().where((sdk.User.active == True) & (sdk.User.role != "viewer"))  # noqa: E712
                .order_by(sdk.User.name, sdk.User.email))


def _changed(tenant: Any, conversation: Conversation) -> None:
    on_commit(lambda: sdk.live_publish(tenant, "list:conversation", {"kind": "updated", "id": conversation.id, "actor_id": None}))


def set_assignee(tenant: Any, conversation: Conversation, user_id: int | None) -> None:
    """Assign the conversation (None: back to the Unassigned queue); the inbox hears it."""
    with atomic():
        Conversation.update(assignee=user_id).where(Conversation.id == conversation.id).execute()
        conversation.assignee = user_id
        _changed(tenant, conversation)


def set_status(tenant: Any, conversation: Conversation, status: str) -> None:
    """Open, pending or resolved; the inbox hears it."""
    with atomic():
        Conversation.update(status=status).where(Conversation.id == conversation.id).execute()
        conversation.status = status
        _changed(tenant, conversation)


# --------------------------------------------------------------------------- outbound


def queue_outbound(tenant: Any, channel: Channel, conversation: Conversation | None, *, links: dict[str, int | None],
                   to: list[str], cc: list[str], subject: str, body_text: str, body_html: str,
                   author_id: int | None, idempotency_key: str | None, prepared: dict[str, Any],
                   purpose: str = "sales", urgent: bool = False) -> Message:
    """Store an outbound message (status queued) and its send task, in one transaction.

    ``prepared`` is what the channel's preparation fixed (sender, message_id, headers ...).
    With an ``idempotency_key`` already used, the message stored then is returned. A
    message that is not ``urgent`` is due when the recipient's quiet hours end."""
    if idempotency_key:
        existing = Message.get_or_none(Message.idempotency_key == idempotency_key)
        if existing is not None:
            return existing
    with atomic():
        now = utcnow()
        if conversation is None:
            conversation = Conversation.create(channel=channel.name, subject=subject[:300], address=(to or [""])[0][:320],
                                               last_message_at=now, **links)
        previous = (Message.select().where((Message.conversation == conversation.id) & Message.message_id.is_null(False))
                    .order_by(Message.id.desc()).first())
        references = list(previous.references or []) + [previous.message_id] if previous else []
        due = now if urgent else (_quiet_hours_end(tenant, conversation.contact_id, now) or now)
        message = Message.create(
            conversation=conversation.id, channel=channel.name, direction="out", status="queued",
            subject=subject[:300], body_text=body_text, body_html=body_html, recipients=to, cc=cc,
            in_reply_to=previous.message_id if previous else None, references=references[-50:],
            idempotency_key=idempotency_key, author=author_id, created_at=now, next_attempt_at=due, purpose=purpose, urgent=urgent,
            message_id=prepared.get("message_id") or f"<{uuid.uuid4().hex}@crm.invalid>",
            sender=prepared.get("sender", ""), headers=prepared.get("headers", {}),
        )
        Conversation.update(last_message_at=now, status="open" if conversation.status == "resolved" else conversation.status).where(
            Conversation.id == conversation.id).execute()
        _timeline(message, conversation, channel)
        outbox.schedule(tenant, channel.name, due)
        _publish(tenant, conversation.id, message.id, "queued", channel.name)
    return message


def _quiet_hours_end(tenant: Any, contact_id: int | None, now: Any) -> Any:
    """When the quiet hours of the conversation's contact (or the tenant's) end; None
    outside them."""
    from crm_plugins.channels import quiet_hours

    conf = sdk.settings(tenant, "channels")
    if not conf["quiet_hours"]:
        return None
    contact_zone = Contact.select(Contact.timezone).where(Contact.id == contact_id).scalar() if contact_id else None
    return quiet_hours.opening_for(conf, contact_zone, now)


def finish(tenant: Any, message: Message, status: str, reason: str | None = None, conversation: Conversation | None = None,
           only_from: tuple[str, ...] | None = None, learnt: Any = None) -> bool:
    """Record a message's new status (its timeline entry too) and announce it, in one
    transaction; False (nothing announced) when ``only_from`` is given and the stored
    status is not one of them: it moved on meanwhile (a delivery report that came before
    the send finished is not overwritten by "sent"). ``learnt`` (a contrib.Learnt: the
    provider's id and headers) is stored in the same commit when the stored headers are
    still those read with the message; otherwise merged under a lock first."""
    conversation = conversation or Conversation.get_by_id(message.conversation_id)
    with atomic():
        fields: dict[str, Any] = {"status": status, "failure_reason": reason, "held_by": None, "next_attempt_at": None}
        if status == "sent":
            fields["sent_at"] = utcnow()
        where = Message.id == message.id
        if only_from is not None:
            where &= Message.status.in_(only_from)
        written = False
        if learnt is not None:
            noted: dict[str, Any] = {}
            if learnt.message_id:
                noted["message_id"] = learnt.message_id[:500]
            if learnt.headers:
                noted["headers"] = {**(message.headers or {}), **learnt.headers}
            # one UPDATE while nobody changed the headers since the batch was read
            written = bool(Message.update(**fields, **noted).where(where & (Message.headers == (message.headers or {}))).execute())
            if written:
                for key, value in noted.items():
                    setattr(message, key, value)
            else:  # a callback came first: merge under a lock (the status may have moved on too)
                from crm_plugins.channels import contrib

                contrib.note(message, message_id=learnt.message_id, headers=learnt.headers, merge=learnt.merge)
        if not written:
            written = bool(Message.update(**fields).where(where).execute())
        if not written:
            if status == "sent":  # it was sent, whatever the provider reported first
                Message.update(sent_at=fields["sent_at"], held_by=None).where((Message.id == message.id) & Message.sent_at.is_null()).execute()
            return False
        for key, value in fields.items():
            setattr(message, key, value)
        if message.activity_id:
            outcome = f"{status}: {reason}" if reason else status
            Activity.update(outcome=outcome[:200]).where(Activity.id == message.activity_id).execute()
        _announce(tenant, f"message_{status}", message, conversation, **({"reason": reason} if status == "failed" else {}))
    return True


def mark_delivered(tenant: Any, message: Message) -> None:
    """The channel learnt that ``message`` arrived (a delivery report)."""
    finish(tenant, message, "delivered", only_from=("queued", "sent"))


def mark_failed(tenant: Any, message: Message, reason: str) -> None:
    """The channel learnt that ``message`` did not arrive (a bounce): failed with ``reason``."""
    finish(tenant, message, "failed", reason, only_from=("queued", "sent", "delivered"))


# --------------------------------------------------------------------------- inbound


def find_person(channel: Channel, address: str, match: list[str] | None = None) -> tuple[Contact | None, Lead | None]:
    """The contact, else the lead, whose email (or phone) is ``address`` (for a phone:
    any of ``match``, the ways the channel says the number may be written)."""
    if not address or channel.identity not in ("email", "phone"):
        return None, None
    if channel.identity == "email":
        address = address.lower()
        contact = Contact.select().where(fn.LOWER(Contact.email) == address).order_by(Contact.id).first()
        lead = None if contact else Lead.select().where(fn.LOWER(Lead.email) == address).order_by(Lead.id.desc()).first()
    else:
        forms = list(match or [address])[:20]
        contact = Contact.select().where(Contact.phone.in_(forms)).order_by(Contact.id).first()
        lead = None if contact else Lead.select().where(Lead.phone.in_(forms)).order_by(Lead.id.desc()).first()
    return contact, lead


def _thread(channel: Channel, address: str, subject: str, in_reply_to: str | None, references: list[str]) -> Conversation | None:
    ids = [i for i in [in_reply_to, *reversed(references)] if i]
    if ids:
        known = (Message.select(Message.conversation).where(Message.message_id.in_(ids[:50]))
                 .order_by(Message.id.desc()).first())
        if known is not None:
            return Conversation.get_or_none(Conversation.id == known.conversation_id)
    if not channel.has_subject and address:  # a chat-like channel: one running thread per address
        return (Conversation.select().where((Conversation.channel == channel.name) & (Conversation.address == address))
                .order_by(Conversation.last_message_at.desc()).first())
    topic = thread_subject(subject)
    if topic and address:
        candidates = (Conversation.select().where((Conversation.channel == channel.name) & (Conversation.address == address))
                      .order_by(Conversation.last_message_at.desc()).limit(20))
        for conversation in candidates:
            if thread_subject(conversation.subject) == topic:
                return conversation
    return None


def receive(tenant: Any, channel: Channel, *, address: str, name: str = "", subject: str = "", body_text: str = "",
            body_html: str = "", message_id: str | None = None, in_reply_to: str | None = None,
            references: list[str] | None = None, headers: dict[str, Any] | None = None,
            recipients: list[str] | None = None, create_lead: bool = True, match: list[str] | None = None) -> Message | None:
    """Store an inbound message: None when its ``message_id`` was imported before.

    Threading: In-Reply-To / References onto a known message's conversation, then the
    same subject (without Re:) from the same address (for a channel without subjects:
    the address's latest conversation), else a new conversation. A new
    conversation links to the contact, else the lead, with that address; an unknown
    address becomes a lead when ``create_lead``. ``match``: the forms of a phone number
    a contact's or lead's phone may be written in (the channel knows them)."""
    references = [r for r in (references or []) if r][-50:]
    # RFC 3834: an auto-reply (out of office ...) is stored and shown, but makes no lead
    # and is flagged in message_received (automation must not answer it)
    automated = str((headers or {}).get("Auto-Submitted", "no")).strip().lower() not in ("", "no")
    # seen before: imported already, or one of ours (a copy of a sent message in a polled folder)
    if message_id and Message.select().where((Message.message_id == message_id) & (Message.channel == channel.name)).exists():
        return None
    body_html = sanitise_html(body_html) if body_html else ""
    body_text = body_text or text_of_html(body_html)
    with atomic():
        now = utcnow()
        conversation = _thread(channel, address, subject, in_reply_to, references)
        if conversation is None:
            contact, lead = find_person(channel, address, match)
            if contact is None and lead is None and create_lead and address and not automated:
                lead = sdk.create_record(Lead, {"name": (name or address)[:200], "email": address if channel.identity == "email" else None,
                                                "phone": address if channel.identity == "phone" else None, "source": "email" if channel.identity == "email" else "sms"})
            conversation = Conversation.create(channel=channel.name, subject=(subject or "")[:300], address=address[:320], last_message_at=now,
                                               lead=lead.id if lead else None, contact=contact.id if contact else None)
        message = Message.create(
            conversation=conversation.id, channel=channel.name, direction="in", status="received",
            subject=(subject or "")[:300], body_text=body_text, body_html=body_html, sender=address[:320],
            recipients=recipients or [], message_id=(message_id or "")[:500] or None, in_reply_to=(in_reply_to or "")[:500] or None,
            references=references, headers=headers or {}, created_at=now,
        )
        Conversation.update(last_message_at=now, status="open").where(Conversation.id == conversation.id).execute()
        _timeline(message, conversation, channel)
        _announce(tenant, "message_received", message, conversation, automated=automated)
    return message


# --------------------------------------------------------------------------- compose


def render_template(tenant: Any, template: Any, entity: str | None, record: Any, user: Any) -> dict[str, str]:
    from crm_plugins.channels import templating

    context = templating.context_for(entity, record, user)
    default = sdk.settings(tenant, "channels")["template_default"]
    return templating.render({"subject": template.subject, "body": template.body}, context, default)


def compose(tenant: Any, *, channel_name: str, entity: str | None, record: Any, conversation: Conversation | None,
            to: list[str] | None, cc: list[str] | None, subject: str | None, body: str | None, html: str | None,
            template: Any, user: Any, idempotency_key: str | None = None, purpose: str = "sales", urgent: bool = False,
            options: dict[str, Any] | None = None) -> Message:
    """Check, render and queue one outbound message about ``record`` (or a reply in
    ``conversation``); raises :class:`Refused` (field messages) for a bad draft. A
    message that is not ``urgent`` (marketing never is) waits out the recipient's quiet
    hours in the outbox.

    ``options``: channel-specific parameters, passed to the channel's ``prepare`` as
    ``draft["options"]`` (WhatsApp: an approved template and its variables); with options
    the body may be empty when ``prepare`` supplies it."""
    if urgent and purpose == "marketing":
        raise Refused({"urgent": ["marketing is never urgent: it waits for quiet hours to end"]})
    channel = channels_of(tenant).get(channel_name)
    if channel is None or not channel.can("send"):
        raise Refused({"channel": [f"no channel {channel_name!r} that can send for this tenant"]})
    if conversation is not None:
        if conversation.channel != channel.name:
            raise Refused({"channel": [f"the conversation is on {conversation.channel!r}"]})
        links = {"lead": conversation.lead_id, "contact": conversation.contact_id, "deal": conversation.deal_id}
        to = to or ([conversation.address] if conversation.address else [])
        if subject is None and conversation.subject:
            subject = conversation.subject if thread_subject(conversation.subject) != conversation.subject.strip().lower() else f"Re: {conversation.subject}"
    else:
        links = links_of(entity, record)
        if not to and record is not None:
            address = getattr(record, channel.identity, None) if channel.identity in ("email", "phone") else None
            to = [address] if address else []
    if template is not None:
        if template.channel and template.channel != channel.name:
            raise Refused({"template_id": [f"the template is for the {template.channel!r} channel"]})
        from crm_plugins.channels.templating import TemplateProblem

        try:
            rendered = render_template(tenant, template, entity, record, user)
        except TemplateProblem as exc:
            raise Refused({f"template.{exc.field}": [str(exc)]}) from None
        subject = subject if subject else rendered["subject"]
        if not body and not html:
            body = rendered["body"]
    subject = (subject or "").strip()
    if "\r" in subject or "\n" in subject:
        raise Refused({"subject": ["must be one line (no CR or LF)"]})
    body_html = sanitise_html(html) if html else ""
    body_text = body if body else text_of_html(body_html)
    if not body_text.strip() and not body_html and not options:
        raise Refused({"body": ["the message is empty"]})
    if not to:
        raise Refused({"to": ["no recipient: give one (the record has no address on this channel)"]})
    if channel.max_length and len(body_text) > channel.max_length:
        raise Refused({"body": [f"longer than the channel's {channel.max_length} characters"]})
    draft = {"to": list(to), "cc": list(cc or []), "subject": subject, "body_text": body_text, "body_html": body_html,
             "conversation": conversation, "purpose": purpose, "author_id": getattr(user, "id", None),
             "options": dict(options or {})}
    prepared = channel.prepare(tenant, draft) if channel.prepare else {}
    if conversation is None and not channel.has_subject:  # chat-like: one running thread per (normalised) address
        address = prepared.get("to", draft["to"])[0]
        conversation = (Conversation.select().where((Conversation.channel == channel.name) & (Conversation.address == address))
                        .order_by(Conversation.last_message_at.desc()).first())
    body_text = prepared.get("body_text", body_text)
    body_html = prepared.get("body_html", body_html)
    if not body_text.strip() and not body_html and not (prepared.get("headers") or {}).get("attachments"):
        raise Refused({"body": ["the message is empty"]})
    return queue_outbound(
        tenant, channel, conversation, links=links, to=prepared.get("to", draft["to"]), cc=prepared.get("cc", draft["cc"]),
        subject=subject, body_text=body_text, body_html=body_html, author_id=getattr(user, "id", None),
        idempotency_key=idempotency_key, prepared=prepared, purpose=purpose, urgent=urgent,
    )
