"""The chat plugin's write path: conversations, messages, lead capture, assignment,
live events and rate limits. The public API, the agent API, the visitor WebSocket and
the assistant all go through here, so a message is stored, deduplicated, announced and
captured the same way whichever door it came in by.

Live events (crmcore's realtime hub, so they cross processes with Redis):

* ``chat:conversation:<id>`` -- ``{"kind": "message", "message": {...}}``,
  ``{"kind": "typing", "sender": "visitor"|"agent"}``, ``{"kind": "read", "reader":
  "visitor"|"agent", "up_to": <message id>}``, ``{"kind": "conversation", "conversation":
  {...}}`` (status or assignee changed). The visitor's socket hears this topic only.
* ``chat:inbox`` -- ``{"kind": "conversation", "event": "started"|"message"|"assigned"|
  "status"|"lead", "conversation": {...}}`` for agents' inbox lists.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
import zoneinfo
from collections.abc import Iterable
from typing import Any

import peewee
from flask import current_app

from crm_plugins.chat import audience
from crm_plugins.chat.models import (
    ChatAgent,
    ChatAttachment,
    ChatConversation,
    ChatMessage,
    ChatRate,
)
from crmcore import sdk
from crmcore.sdk import Contact, Lead, User, utcnow

INBOX_TOPIC = audience.INBOX_TOPIC
ONLINE_SECONDS = 90  # an agent whose inbox has not checked in for this long is offline
_EMAIL_CANDIDATE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class RateLimited(Exception):
    """Too many requests; ``retry_after`` seconds until the window ends."""

    def __init__(self, retry_after: int):
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


def settings(tenant: Any) -> Any:

    return sdk.settings(tenant, "chat")


def conversation_topic(conversation_id: int) -> str:
    return f"{audience.CONVERSATION_PREFIX}{conversation_id}"


_sqlite_writer = threading.RLock()


def _one_writer() -> Any:
    """SQLite has one writer at a time; threads of this process queue for it on a lock
    rather than in SQLite's busy handler, which sleeps in growing steps (up to 100 ms)
    and made a burst of messages wait seconds. PostgreSQL needs no such thing."""
    return contextlib.nullcontext() if sdk.is_postgres() else _sqlite_writer


def _sql(query: str, params: tuple[Any, ...]) -> Any:
    """Run a hand-written query of the send path (``?`` placeholders, tenant filter
    written out): peewee's query building cost more than the queries themselves there
    (bench/results/chat.md)."""
    placeholder = sdk.database.param
    return sdk.database.execute_sql(query if placeholder == "?" else query.replace("?", placeholder), params)


# --------------------------------------------------------------------------- keys and tokens


def public_key(tenant: Any) -> str:
    """The tenant's widget key: the ``public_key`` setting, else one derived from the
    instance's secret key (stable, so the snippet never changes, and nothing to store)."""
    configured = settings(tenant)["public_key"]
    if configured:
        return configured
    secret = current_app.config["SECRET_KEY"].encode()
    return "pk_" + hmac.new(secret, f"crm-chat:{tenant.id}:{tenant.slug}".encode(), hashlib.sha256).hexdigest()[:24]


def key_valid(tenant: Any, key: str | None) -> bool:
    return bool(key) and hmac.compare_digest(str(key), public_key(tenant))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def conversation_for_token(token: str | None) -> ChatConversation | None:
    """The current tenant's conversation of a visitor token (None: unknown token)."""
    if not token or len(token) > 200:
        return None
    return ChatConversation.get_or_none(ChatConversation.visitor_hash == hash_token(token))


# --------------------------------------------------------------------------- rate limits


RATE_KEEP_SECONDS = 2 * 3600  # longer than the longest window (sessions per hour)


def hit(key: str, limit: int, window_seconds: int) -> None:
    """Count one request against ``key``; raise RateLimited past ``limit`` per window.

    A fixed window in the database: every process shares it, and it needs no extra
    service. (Flask-Limiter would keep its counters per process with its memory storage,
    and its limits are bound when the routes are decorated, while ours are per-tenant
    settings that change without a restart.) ``window`` is the window's start in epoch
    seconds, so windows of different lengths can be expired by one rule."""
    now = time.time()
    window = int(now // window_seconds) * window_seconds
    full_key = key[:120]
    with _one_writer(), sdk.atomic():
        ChatRate.insert(key=full_key, window=window, count=1).on_conflict(
            conflict_target=[ChatRate.key, ChatRate.window], update={ChatRate.count: ChatRate.count + 1}
        ).execute()
        count = ChatRate.select(ChatRate.count).where((ChatRate.key == full_key) & (ChatRate.window == window)).scalar()
    if secrets.randbelow(500) == 0:  # now and then, drop counters of long-gone windows
        expire_rates(now)
    if count > limit:
        raise RateLimited(max(1, int(window + window_seconds - now + 0.999)))


def expire_rates(now: float | None = None) -> int:
    """Delete counters whose window started more than RATE_KEEP_SECONDS ago."""
    cutoff = (now if now is not None else time.time()) - RATE_KEEP_SECONDS
    with _one_writer():
        return ChatRate.delete().where(ChatRate.window < cutoff).execute()


def check_visitor_rate(tenant: Any, conversation: ChatConversation) -> None:
    """The per-visitor message limit, counted from the messages themselves (a read, no
    counter to write: the send path's one write transaction stays the only one)."""
    limit = settings(tenant)["visitor_messages_per_minute"]
    since = utcnow() - dt.timedelta(seconds=60)
    rows = _sql(
        "SELECT created_at FROM chat_message WHERE tenant_id = ? AND conversation_id = ? AND sender = 'visitor' AND created_at > ? ORDER BY id DESC LIMIT ?",
        (tenant.id, conversation.id, since, limit),
    ).fetchall()
    if len(rows) >= limit:
        oldest = ChatMessage.created_at.python_value(rows[-1][0])
        raise RateLimited(max(1, int((oldest - since).total_seconds() + 0.999)))


def _existing_id(tenant: Any, conversation: ChatConversation, client_id: str) -> int | None:
    row = _sql("SELECT id FROM chat_message WHERE tenant_id = ? AND conversation_id = ? AND client_id = ?", (tenant.id, conversation.id, client_id)).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------- serialisation


def _iso(value: dt.datetime | None) -> str | None:
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z" if value else None


def attachment_dict(attachment: ChatAttachment | None) -> dict[str, Any] | None:
    if attachment is None:
        return None
    return {"id": attachment.id, "name": attachment.name, "content_type": attachment.content_type, "size": attachment.size}


def message_dict(message: ChatMessage, author_name: str | None = None) -> dict[str, Any]:
    """The wire form of a message (the same for visitors and agents)."""
    if author_name is None and message.author_id:
        user = User.get_or_none(User.id == message.author_id)
        author_name = (user.name or user.email.split("@")[0]) if user else None
    attachment = ChatAttachment.get_or_none(ChatAttachment.message == message.id) if message.has_attachment else None
    return {
        "attachment": attachment_dict(attachment),
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender": message.sender,
        "author_name": author_name,
        "content": message.content,
        "client_id": message.client_id,
        "created_at": _iso(message.created_at),
        "read_at": _iso(message.read_at),
    }


def conversation_dict(conversation: ChatConversation, unread: int | None = None) -> dict[str, Any]:
    if unread is None:
        unread = unread_counts([conversation.id]).get(conversation.id, 0)
    return {
        "id": conversation.id,
        "status": conversation.status,
        "visitor_name": conversation.visitor_name,
        "visitor_email": conversation.visitor_email,
        "visitor_phone": conversation.visitor_phone,
        "page_url": conversation.page_url,
        "assignee_id": conversation.assignee_id,
        "lead_id": conversation.lead_id,
        "contact_id": conversation.contact_id,
        "claimed_lead_id": conversation.claimed_lead_id,
        "claimed_contact_id": conversation.claimed_contact_id,
        "handed_over": conversation.handed_over,
        "created_at": _iso(conversation.created_at),
        "last_message_at": _iso(conversation.last_message_at),
        "unread": unread,
    }


def unread_counts(conversation_ids: Iterable[int]) -> dict[int, int]:
    """Visitor messages no agent has read yet, per conversation (one query)."""
    ids = list(conversation_ids)
    if not ids:
        return {}
    if len(ids) == 1:  # the send path's case
        row = _sql("SELECT COUNT(*) FROM chat_message WHERE tenant_id = ? AND conversation_id = ? AND sender = 'visitor' AND read_at IS NULL", (sdk.require_tenant_id(), ids[0])).fetchone()
        return {ids[0]: row[0]} if row and row[0] else {}
    rows = (
        ChatMessage.select(ChatMessage.conversation, peewee.fn.COUNT(ChatMessage.id))
        .where(ChatMessage.conversation.in_(ids) & (ChatMessage.sender == "visitor") & ChatMessage.read_at.is_null())
        .group_by(ChatMessage.conversation)
        .tuples()
    )
    return {cid: n for cid, n in rows}


# --------------------------------------------------------------------------- publishing


def _publish(tenant: Any, topic: str, data: dict[str, Any]) -> None:
    """After the commit, so nobody hears of a row that was rolled back."""
    sdk.on_commit(lambda: sdk.live_publish(tenant, topic, data))


def _publish_inbox(tenant: Any, conversation: ChatConversation, data: dict[str, Any], after_commit: bool = True) -> None:
    """An inbox event: to the whole feed and to the narrow topic of those who see only
    their own records (crm_plugins.chat.audience)."""
    narrow = audience.audience_topic(conversation)
    send = _publish if after_commit else sdk.live_publish
    send(tenant, INBOX_TOPIC, data)
    if narrow is not None:
        send(tenant, narrow, audience.narrowed(data))


def announce_conversation(tenant: Any, conversation: ChatConversation, event: str) -> None:
    data = {"kind": "conversation", "event": event, "conversation": conversation_dict(conversation)}
    _publish_inbox(tenant, conversation, data)
    _publish(tenant, conversation_topic(conversation.id), data)


def publish_ephemeral(tenant: Any, conversation_id: int, data: dict[str, Any]) -> None:
    sdk.live_publish(tenant, conversation_topic(conversation_id), data)


# --------------------------------------------------------------------------- opening hours


def is_open(tenant: Any, now: dt.datetime | None = None) -> bool:
    """Whether ``now`` (UTC) is inside the tenant's opening hours."""
    conf = settings(tenant)
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(conf["timezone"]))
    if local.weekday() not in conf["open_days"]:
        return False
    hhmm = local.strftime("%H:%M")
    return conf["open_from"] <= hhmm < conf["open_until"]


def agents_online(tenant: Any) -> list[ChatAgent]:
    cutoff = utcnow() - dt.timedelta(seconds=ONLINE_SECONDS)
    return list(
        ChatAgent.select(ChatAgent)
        .join(User, on=(ChatAgent.user == User.id))
        .where((ChatAgent.status == "online") & (ChatAgent.last_seen_at >= cutoff) & (User.active == True) & (User.role != "viewer"))
    )


def set_presence(user: Any, status: str) -> ChatAgent:
    agent, _ = ChatAgent.get_or_create(user=user.id, defaults={"status": status})
    ChatAgent.update(status=status, last_seen_at=utcnow()).where(ChatAgent.id == agent.id).execute()
    agent.status = status
    return agent


# --------------------------------------------------------------------------- conversations


def start_conversation(tenant: Any, *, name: str = "", email: str | None = None, phone: str | None = None, page_url: str = "", origin: str = "") -> tuple[ChatConversation, str]:
    """A new conversation and the visitor's token (shown to the visitor once)."""
    token = secrets.token_urlsafe(32)
    with sdk.atomic():
        conversation = ChatConversation.create(
            visitor_hash=hash_token(token), visitor_name=name[:200], visitor_email=email, visitor_phone=phone,
            page_url=page_url[:500], origin=origin[:200], status="open",
        )
        greeting = settings(tenant)["greeting"]
        if greeting:
            ChatMessage.create(conversation=conversation, sender="system", content=greeting)
        assign_round_robin(tenant, conversation)
        sdk.send_signal("chat_conversation_started", tenant, conversation=conversation)
        announce_conversation(tenant, conversation, "started")
        if email or phone:
            capture_lead(tenant, conversation, email=email, phone=phone, name=name)
    return conversation, token


def assign_round_robin(tenant: Any, conversation: ChatConversation) -> User | None:
    """Give the conversation to the online agent with room (fewer open conversations
    than ``agent_capacity``) who was assigned least recently; None: it waits in the queue."""
    capacity = settings(tenant)["agent_capacity"]
    agents = agents_online(tenant)
    if not agents:
        return None
    load = dict(
        ChatConversation.select(ChatConversation.assignee, peewee.fn.COUNT(ChatConversation.id))
        .where(ChatConversation.assignee.in_([a.user_id for a in agents]) & (ChatConversation.status != "resolved"))
        .group_by(ChatConversation.assignee)
        .tuples()
    )
    free = [a for a in agents if load.get(a.user_id, 0) < capacity]
    if not free:
        return None
    chosen = min(free, key=lambda a: (a.last_assigned_at or dt.datetime.min, a.id))
    ChatAgent.update(last_assigned_at=utcnow()).where(ChatAgent.id == chosen.id).execute()
    conversation.assignee = chosen.user_id
    conversation.save()
    return User.get_or_none(User.id == chosen.user_id)


def assign(tenant: Any, conversation: ChatConversation, user_id: int | None) -> ChatConversation:
    with sdk.atomic():
        conversation.assignee = user_id
        conversation.save()
        announce_conversation(tenant, conversation, "assigned")
    return conversation


def set_status(tenant: Any, conversation: ChatConversation, status: str) -> ChatConversation:
    with sdk.atomic():
        conversation.status = status
        conversation.save()
        announce_conversation(tenant, conversation, "status")
    return conversation


# --------------------------------------------------------------------------- messages


def post_message(tenant: Any, conversation: ChatConversation, *, sender: str, content: str, client_id: str | None = None, author: Any = None, confidence: float | None = None, attachment: dict[str, Any] | None = None) -> tuple[ChatMessage, bool]:
    """Store a message; ``(message, created)``. A ``client_id`` already used in this
    conversation returns the stored message (a resend after a dropped connection).
    A visitor's message raises RateLimited past ``visitor_messages_per_minute``.

    One short write transaction (message, conversation, assistant task); the lead capture
    (phone number parsing is not cheap) runs after it, so the database's write lock is not
    held while text is scanned."""
    if client_id:
        existing_id = _existing_id(tenant, conversation, client_id)
        if existing_id is not None:
            return ChatMessage.get_by_id(existing_id), False
    if sender == "visitor":
        check_visitor_rate(tenant, conversation)
    try:
        with _one_writer(), sdk.atomic():
            now = utcnow()
            changes: dict[str, Any] = {"last_message_at": now}
            if sender == "visitor" and conversation.status == "resolved":
                changes["status"] = "open"  # the visitor came back: it needs an answer again
            if sender == "agent":
                changes["handed_over"] = False
                if conversation.assignee_id is None and author is not None:
                    changes["assignee"] = author.id  # whoever answers first takes it
            # The conversation's row first: its lock, held to the commit, makes the
            # messages of one conversation take their ids in commit order (PostgreSQL
            # hands out ids in call order, not commit order), so "messages after id N"
            # never skips one that commits late (the widget resumes that way).
            ChatConversation.update(changes).where(ChatConversation.id == conversation.id).execute()
            message = ChatMessage.create(conversation=conversation, sender=sender, content=content, client_id=client_id or None, author=author.id if author is not None else None, confidence=confidence, has_attachment=attachment is not None, created_at=now)
            if attachment is not None:
                ChatAttachment.create(message=message, **attachment)
            for key, value in changes.items():
                setattr(conversation, key, value)
            wire = message_dict(message)
            _publish(tenant, conversation_topic(conversation.id), {"kind": "message", "message": wire})
            _publish_inbox(tenant, conversation, {"kind": "conversation", "event": "message", "conversation": conversation_dict(conversation), "message": wire})
            if sender == "visitor":
                schedule_assistant(tenant, conversation, message)
    except peewee.IntegrityError:
        # Two resends raced: the other one stored it.
        existing = ChatMessage.get_or_none((ChatMessage.conversation == conversation.id) & (ChatMessage.client_id == client_id))
        if existing is None:
            raise
        return existing, False
    if sender == "visitor":
        lead = capture_from_text(tenant, conversation, content) if attachment is None else (Lead.get_or_none(Lead.id == conversation.lead_id) if conversation.lead_id else None)
        sdk.send_signal("chat_message_received", tenant, conversation=conversation, message=message, lead=lead)
    return message, True


# --------------------------------------------------------------------------- attachments


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def sniff_type(head: bytes) -> str | None:
    """The file's type from its first bytes (a name or a browser-sent type proves nothing)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError:
            # a multi-byte character cut at the end of the sample is still text
            try:
                head[:-3].decode("utf-8")
                return "text/plain"
            except UnicodeDecodeError:
                return None
    return None


def attachment_dir(tenant: Any) -> Any:
    from pathlib import Path

    path = Path(current_app.instance_path) / "chat_attachments" / str(tenant.id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_attachment(tenant: Any, data: bytes, filename: str) -> dict[str, Any]:
    """Write ``data`` under a random name; the row fields for ChatAttachment."""
    import os
    import unicodedata

    kind = sniff_type(data[:512])
    name = unicodedata.normalize("NFC", os.path.basename(filename.replace("\\", "/")) or "file")[:200]
    key = secrets.token_hex(16)
    target = attachment_dir(tenant) / key
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {"name": name, "content_type": kind or "application/octet-stream", "size": len(data), "storage_key": key}


def attachment_path(tenant: Any, attachment: ChatAttachment) -> Any:
    return attachment_dir(tenant) / attachment.storage_key


def messages_after(conversation: ChatConversation, after: int = 0, limit: int = 200) -> list[ChatMessage]:
    return list(
        ChatMessage.select()
        .where((ChatMessage.conversation == conversation.id) & (ChatMessage.id > after))
        .order_by(ChatMessage.id)
        .limit(limit)
    )


def mark_read(tenant: Any, conversation: ChatConversation, reader: str, up_to: int | None = None) -> int:
    """Mark the other side's messages read (up to a message id); returns how many."""
    senders = ["visitor"] if reader == "agent" else ["agent", "assistant", "system"]
    query = ChatMessage.update(read_at=utcnow()).where((ChatMessage.conversation == conversation.id) & ChatMessage.sender.in_(senders) & ChatMessage.read_at.is_null())
    if up_to is not None:
        query = query.where(ChatMessage.id <= up_to)
    count = query.execute()
    if count:
        last = ChatMessage.select(peewee.fn.MAX(ChatMessage.id)).where((ChatMessage.conversation == conversation.id) & ChatMessage.sender.in_(senders) & ChatMessage.read_at.is_null(False)).scalar()
        publish_ephemeral(tenant, conversation.id, {"kind": "read", "reader": reader, "up_to": last})
        if reader == "agent":
            _publish_inbox(tenant, conversation, {"kind": "conversation", "event": "read", "conversation": conversation_dict(conversation, unread=0)}, after_commit=False)
    return count


# --------------------------------------------------------------------------- lead capture


def find_contact_details(text: str, region: str = "US") -> tuple[str | None, str | None]:
    """The first valid email address and phone number in ``text`` (or None)."""
    import phonenumbers
    from email_validator import EmailNotValidError, validate_email

    email = None
    for candidate in _EMAIL_CANDIDATE.findall(text or ""):
        try:
            email = validate_email(candidate.strip(".,;:"), check_deliverability=False).normalized
            break
        except EmailNotValidError:
            continue
    phone = None
    for match in phonenumbers.PhoneNumberMatcher(text or "", region):
        if phonenumbers.is_valid_number(match.number):
            phone = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            break
    return email, phone


def normalise_email(value: str | None) -> str | None:
    email, _ = find_contact_details(value or "")
    return email


def capture_from_text(tenant: Any, conversation: ChatConversation, text: str) -> Lead | None:
    """Capture contact details typed in a message; the conversation's lead (or None)."""
    # Cheap filters first: no "@" and fewer than 7 digits cannot hold an email or a phone
    # number, and parsing phone numbers is the costliest part of the send path.
    if "@" in text or sum(ch.isdigit() for ch in text) >= 7:
        email, phone = find_contact_details(text, settings(tenant)["phone_region"])
        if (email and email != conversation.visitor_email) or (phone and phone != conversation.visitor_phone):
            capture_lead(tenant, conversation, email=email, phone=phone, name=conversation.visitor_name)
    return Lead.get_or_none(Lead.id == conversation.lead_id) if conversation.lead_id else None


def capture_lead(tenant: Any, conversation: ChatConversation, *, email: str | None, phone: str | None, name: str = "") -> Lead | None:
    """Keep the contact details the visitor gave; a new address creates a lead (source
    ``chat``) through the core's write path, so the lead board hears of it, and links it.

    An address that belongs to an existing lead or contact is only a *claim*: anyone can
    type a customer's email into the form, so the conversation is not linked to that
    record (nothing is written on its timeline) but remembers it as ``claimed_lead`` /
    ``claimed_contact`` for an agent to confirm (:func:`confirm_claim`)."""
    with sdk.atomic():
        changes: dict[str, Any] = {}
        if email and not conversation.visitor_email:
            changes["visitor_email"] = email
        if phone and not conversation.visitor_phone:
            changes["visitor_phone"] = phone
        if changes:
            ChatConversation.update(changes).where(ChatConversation.id == conversation.id).execute()
            for key, value in changes.items():
                setattr(conversation, key, value)
        if conversation.lead_id or conversation.contact_id:
            if conversation.lead_id and changes:
                lead = Lead.get_or_none(Lead.id == conversation.lead_id)
                fill = {k: v for k, v in (("email", email), ("phone", phone)) if v and lead is not None and not getattr(lead, k)}
                if fill and not (email and Lead.select().where((Lead.email == email) & (Lead.id != lead.id)).exists()):
                    sdk.update_record(lead, fill)
            return Lead.get_or_none(Lead.id == conversation.lead_id) if conversation.lead_id else None
        lead = contact = None
        if email:
            lead = Lead.get_or_none(Lead.email == email)
            if lead is None:
                contact = Contact.get_or_none(Contact.email == email)
        if lead is None and contact is None and phone:
            lead = Lead.select().where(Lead.phone == phone).order_by(Lead.id).first()
            if lead is None:
                contact = Contact.select().where(Contact.phone == phone).order_by(Contact.id).first()
        if lead is not None or contact is not None:
            if lead is not None and lead.contact_id:
                contact = Contact.get_or_none(Contact.id == lead.contact_id)
            claims = {"claimed_lead": lead.id if lead else None, "claimed_contact": contact.id if contact else None}
            ChatConversation.update(claims).where(ChatConversation.id == conversation.id).execute()
            conversation.claimed_lead, conversation.claimed_contact = claims["claimed_lead"], claims["claimed_contact"]
            announce_conversation(tenant, conversation, "claim")
            return None
        lead = sdk.create_record(Lead, {"name": (name or email or phone or "Chat visitor")[:200], "email": email, "phone": phone, "source": "chat"})
        _link(tenant, conversation, lead, None, created=True)
    return lead


def confirm_claim(tenant: Any, conversation: ChatConversation) -> ChatConversation:
    """An agent checked that the visitor is who they claim to be: link the conversation to
    the claimed lead / contact, with the chat on its timeline (``chat_lead_captured``)."""
    with sdk.atomic():
        lead = Lead.get_or_none(Lead.id == conversation.claimed_lead_id) if conversation.claimed_lead_id else None
        contact = Contact.get_or_none(Contact.id == conversation.claimed_contact_id) if conversation.claimed_contact_id else None
        if lead is None and contact is None:
            raise sdk.NotFound("this conversation claims no existing lead or contact")
        ChatConversation.update(claimed_lead=None, claimed_contact=None).where(ChatConversation.id == conversation.id).execute()
        conversation.claimed_lead = conversation.claimed_contact = None
        _link(tenant, conversation, lead, contact, created=False)
    return conversation


def dismiss_claim(tenant: Any, conversation: ChatConversation) -> ChatConversation:
    """The visitor is not who they claimed to be: forget the claim (nothing was linked)."""
    with sdk.atomic():
        ChatConversation.update(claimed_lead=None, claimed_contact=None).where(ChatConversation.id == conversation.id).execute()
        conversation.claimed_lead = conversation.claimed_contact = None
        announce_conversation(tenant, conversation, "claim")
    return conversation


def _link(tenant: Any, conversation: ChatConversation, lead: Lead | None, contact: Contact | None, *, created: bool) -> None:
    """Link the conversation and put its transcript on the record's timeline."""
    ChatConversation.update(lead=lead.id if lead else None, contact=contact.id if contact else None).where(ChatConversation.id == conversation.id).execute()
    conversation.lead = lead.id if lead else None
    conversation.contact = contact.id if contact else None
    transcript = "\n".join(f"{m.sender}: {m.content}" for m in messages_after(conversation, 0, 20) if m.sender in ("visitor", "agent", "assistant"))
    who = conversation.visitor_name or conversation.visitor_email or conversation.visitor_phone
    sdk.log_activity({
        "kind": "chat", "channel": "chat", "direction": "in",
        "subject": f"Website chat with {who}"[:300],
        "content": transcript[:5000], "lead": lead.id if lead else None, "contact": contact.id if contact else None,
    })
    if lead is not None:
        sdk.send_signal("chat_lead_captured", tenant, conversation=conversation, lead=lead, created=created)
    announce_conversation(tenant, conversation, "lead")


# --------------------------------------------------------------------------- assistant


def schedule_assistant(tenant: Any, conversation: ChatConversation, message: ChatMessage) -> None:
    """After ``assistant_delay_seconds`` without an agent's reply (at once outside opening
    hours) the assistant answers: a durable task, so a restart does not forget it."""
    from crmcore.sdk import enqueue

    conf = settings(tenant)
    if not conf["assistant_enabled"] or conversation.handed_over:
        return
    delay = 0 if not is_open(tenant) else conf["assistant_delay_seconds"]
    enqueue("chat.assistant", {"conversation_id": conversation.id, "message_id": message.id},
            run_at=utcnow() + dt.timedelta(seconds=delay), idempotency_key=f"chat:assistant:{tenant.id}:{message.id}")


def run_assistant(tenant: Any, conversation_id: int, message_id: int) -> ChatMessage | None:
    """Answer ``message_id`` unless someone already did (an agent replied, a newer
    visitor message will be answered instead, or the conversation was handed over)."""
    from crm_plugins.chat.contrib import AssistantReply


    conversation = ChatConversation.get_or_none(ChatConversation.id == conversation_id)
    message = ChatMessage.get_or_none(ChatMessage.id == message_id)
    if conversation is None or message is None or conversation.handed_over or conversation.status == "resolved":
        return None
    later = ChatMessage.select().where((ChatMessage.conversation == conversation.id) & (ChatMessage.id > message.id) & ChatMessage.sender.in_(["visitor", "agent", "assistant"]))
    if later.exists():
        return None
    history = list(ChatMessage.select().where(ChatMessage.conversation == conversation.id).order_by(ChatMessage.id))
    # Contained: a raising (or wrongly typed) assistant is logged and the next one answers.
    reply = sdk.first_answer(tenant, "crm_chat_assistant_reply", tenant=tenant, conversation=conversation, message=message, history=history)
    if not isinstance(reply, AssistantReply):
        return None
    with sdk.atomic():
        answer, _ = post_message(tenant, conversation, sender="assistant", content=reply.text[:20000], client_id=f"assistant:{message.id}", confidence=reply.confidence)
        if reply.handover:
            ChatConversation.update(handed_over=True, status="open").where(ChatConversation.id == conversation.id).execute()
            conversation.handed_over, conversation.status = True, "open"
            announce_conversation(tenant, conversation, "status")
    return answer
