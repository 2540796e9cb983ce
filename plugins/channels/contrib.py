"""The channel contract: what a plugin gives through ``crm_channels`` (see hookspecs.py).

A channel plugin imports this module (a contract module, like ``webhooks.contrib``) and
nothing else of the channels plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: What a channel can do; the inbox and the API only offer what a channel declares.
CAPABILITIES = frozenset({"send", "receive", "attachments", "delivery_status", "threading"})
#: How a channel recognises a person: the lead/contact field it matches an address on.
IDENTITIES = frozenset({"email", "phone", "visitor"})
#: The columns of a row of the inbox, whatever channel keeps it (``Channel.conversations``):
#: the channel's name, the conversation's id (in the channel's table), its subject, the
#: customer's name and address, status (open, pending, resolved), assignee, lead and
#: contact ids, and the time of its last message.
INBOX_COLUMNS = ("channel", "id", "subject", "name", "address", "status", "assignee_id", "lead_id", "contact_id", "last_message_at")


class TemporaryFailure(Exception):
    """``send`` could not send now (a 4xx, a timeout): the outbox retries with backoff."""


class PermanentFailure(Exception):
    """``send`` will never succeed for this message (a 5xx, a refused address): the
    message is marked failed with ``str(exc)`` as its reason, not retried."""


class Refused(ValueError):
    """A message the channel will not take: ``messages`` maps fields to reasons (422)."""

    def __init__(self, messages: dict[str, list[str]]):
        self.messages = messages
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items()))


@dataclass(frozen=True)
class Learnt:
    """What ``send`` learnt from the provider, stored with the message's "sent" status in
    the same commit: its id there (an SMS provider's sid) and headers to merge. Should the
    headers have changed since the batch was read (a status callback came first),
    ``merge(stored, new)`` decides under a lock, as in :func:`note`."""

    message_id: str | None = None
    headers: dict[str, Any] | None = None
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Channel:
    """A way of talking to customers, registered by a plugin through ``crm_channels``.

    ``send(tenant, message, conversation)`` sends ONE outbound message (a
    :class:`crm_plugins.channels.models.Message` row, with its ``message_id`` already
    fixed) and returns None, or a :class:`Learnt` (what the provider answered, stored
    with the "sent" status in one commit), or raises :class:`TemporaryFailure` /
    :class:`PermanentFailure`.
    It runs in the outbox's drain task (the worker), never in a request; it may run again after
    a crash, so it must be idempotent towards the outside world where it can (email: the
    same Message-ID on every attempt).
    """

    name: str  # ^[a-z][a-z0-9_]{0,29}$, e.g. "email"
    label: str  # "Email"
    send: Callable[[Any, Any, Any], None] | None = None
    capabilities: frozenset[str] = frozenset({"send"})
    #: longest body the channel carries (None: no limit), checked before queueing
    max_length: int | None = None
    #: how the channel recognises a contact: "email", "phone" or "visitor"
    identity: str = "email"
    #: ``Activity.kind`` of the timeline entry of each message (a core or declared kind)
    activity_kind: str = "email"
    #: whether a message has a subject
    has_subject: bool = False
    #: ``prepare(tenant, draft) -> dict`` checks an outbound draft before it is queued
    #: (``draft``: to, cc, subject, body_text, body_html, conversation, purpose: "sales"
    #: or "marketing", author_id: the sending user's id or None) and returns what it fixes now: ``to``/``cc`` normalised,
    #: ``sender``, ``message_id``, ``headers``, and ``body_text``/``body_html`` when it
    #: adds to them (an unsubscribe footer).
    #: It raises :class:`Refused` for a draft the channel will not take (the API: 422).
    prepare: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    #: For a channel that keeps its conversations in its own tables (the website chat):
    #: ``conversations()`` returns a SELECT of the current tenant's conversations with
    #: the columns of :data:`INBOX_COLUMNS`, in that order; the inbox lists them beside
    #: the shared ones in one UNION query (filtered, ordered and paged there).
    conversations: Callable[[], Any] | None = None
    #: ``conversation_url(id)``: the page of one of those conversations (the channel's own)
    conversation_url: Callable[[int], str] | None = None
    #: ``live_topics()``: the realtime topics on which the channel announces changes of
    #: its conversations to the caller (the inbox page listens to them and refreshes)
    live_topics: Callable[[], list[str]] | None = None
    #: the consent record's address of a recipient (SMS: the number, without ``whatsapp:``);
    #: given, the outbox reads the consent of a batch's recipients in one query and fails
    #: a message to an opted-out address before ``send`` is called
    consent_address: Callable[[str], str] | None = None

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


# --------------------------------------------------------------------------- for channel plugins
# The channels plugin's services a channel plugin calls (this module is the only one of
# the channels plugin another plugin imports; the imports are deferred so the contract
# stays cheap to import).


def compose(tenant: Any, **kwargs: Any) -> Any:
    """Check, render and queue an outbound message (see ``service.compose``): raises
    :class:`Refused` for a bad draft; returns the queued Message."""
    from crm_plugins.channels import service

    return service.compose(tenant, **kwargs)


def receive(tenant: Any, channel_name: str, **kwargs: Any) -> Any:
    """Store an inbound message of the channel (see ``service.receive``): threaded,
    linked, on the timeline, ``message_received`` sent; None if its id was seen before."""
    from crm_plugins.channels import service

    return service.receive(tenant, service.channels_of(tenant)[channel_name], **kwargs)


def messages_of(entity: str, record_id: int, channel: str | None = None, limit: int = 10) -> list[Any]:
    """The newest messages of a record's conversations (of one channel), newest first."""
    from crm_plugins.channels.models import Conversation, Message

    conversations = Conversation.select(Conversation.id).where(getattr(Conversation, entity) == record_id)
    if channel:
        conversations = conversations.where(Conversation.channel == channel)
    return list(Message.select().where(Message.conversation.in_(conversations)).order_by(Message.id.desc()).limit(limit))


def templates_for(channel: str) -> list[Any]:
    """The templates a channel may use (its own and those for every channel), by name."""
    from crm_plugins.channels.models import MessageTemplate

    return list(MessageTemplate.select().where(MessageTemplate.channel.is_null() | (MessageTemplate.channel == channel))
                .order_by(MessageTemplate.name).limit(200))


def template(template_id: int) -> Any:
    from crm_plugins.channels.models import MessageTemplate

    return MessageTemplate.get_or_none(MessageTemplate.id == template_id)


def message_by_channel_id(channel: str, message_id: str) -> Any:
    """The stored message of the channel with that channel id (email: Message-ID)."""
    from crm_plugins.channels.models import Message

    return Message.select().where((Message.channel == channel) & (Message.message_id == message_id)).order_by(Message.id).first()


def mark_failed(tenant: Any, message: Any, reason: str) -> None:
    """A sent message did not arrive (a bounce): failed, ``message_failed`` sent."""
    from crm_plugins.channels import service

    service.mark_failed(tenant, message, reason)


def mark_delivered(tenant: Any, message: Any) -> None:
    from crm_plugins.channels import service

    service.mark_delivered(tenant, message)


def last_received_at(channel: str, address: str) -> Any:
    """When the channel last received a message from ``address`` (None: never); a
    window rule (WhatsApp's 24 hours) reads it."""
    from peewee import fn

    from crm_plugins.channels.models import Message

    return Message.select(fn.MAX(Message.created_at)).where(
        (Message.channel == channel) & (Message.direction == "in") & (Message.sender == address)).scalar()


# --------------------------------------------------------------------------- consent
# One per-address record for every channel (see models.Consent): an SMS "STOP" opts the
# number out of everything; an email unsubscribe opts the address out of marketing. Any
# channel that sends to that address refuses it, and the outbox checks again before
# sending (see consent.py).

#: what an opt-out covers
CONSENT_SCOPES = ("all", "marketing")


def opted_out(addresses: list[str], purpose: str = "sales") -> dict[str, Any]:
    """The addresses among ``addresses`` that may not get a message for ``purpose``
    (``sales``: opted out of everything; ``marketing``: of marketing too), each with its
    Consent row. Email addresses are compared in lower case."""
    from crm_plugins.channels import consent

    return consent.opted_out(addresses, purpose)


def opt_out_reason(row: Any) -> str:
    """Why nothing is sent to an opted-out address (a Consent row), as messages say it."""
    return f"{row.address} opted out ({row.source or row.channel} on {row.changed_at:%Y-%m-%d %H:%M} UTC): nothing is sent to it"


def set_consent(address: str, *, opted_out: bool, channel: str, source: str = "", scope: str = "all") -> bool:
    """Record that ``address`` opted out of ``scope`` (``all`` or ``marketing``), or back
    in, through ``channel``, saying ``source``. An opt-out of marketing does not narrow
    an opt-out of everything. True when this changed whether the address may get
    marketing (the first unsubscribe, not a repeated click)."""
    from crm_plugins.channels import consent

    return consent.set_consent(address, opted_out=opted_out, channel=channel, source=source, scope=scope)


def note(message: Any, *, message_id: str | None = None, headers: dict[str, Any] | None = None,
         merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Store what a channel learnt about one of its messages, committed at once: its
    provider's id (``message_id``, e.g. an SMS provider's sid, known after the send) and
    headers merged into the stored headers (a provider's status, error code).

    The row is read again, locked, so two notes at once (a status callback while the
    worker notes the send) both land: ``merge(stored, new)`` returns the headers to keep
    (default: ``new`` over ``stored``; a channel whose statuses must not move back keeps
    the stored one). ``message`` is refreshed from the row: its ``status`` may have
    moved on (a delivery report came before the send finished)."""
    from crm_plugins.channels.models import Message
    from crmcore.sdk import atomic, is_postgres

    with atomic():
        query = Message.select().where(Message.id == message.id)
        stored = (query.for_update() if is_postgres() else query).get_or_none()
        if stored is None:
            return
        fields: dict[str, Any] = {}
        if message_id:
            fields["message_id"] = message_id[:500]
        if headers:
            kept = (merge or (lambda old, new: {**old, **new}))(dict(stored.headers or {}), headers)
            if kept != (stored.headers or {}):
                fields["headers"] = kept
        if fields:
            Message.update(**fields).where(Message.id == message.id).execute()
        for name in ("message_id", "headers", "status", "failure_reason", "sent_at"):
            setattr(message, name, fields.get(name, getattr(stored, name)))
