"""Tables of the chat plugin (all ``chat_*``)."""

from __future__ import annotations

import peewee

from crmcore.sdk import BaseModel, Contact, Lead, TenantModel, User, utcnow

STATUSES = ("open", "pending", "resolved")
SENDERS = ("visitor", "agent", "assistant", "system")


class ChatConversation(TenantModel):
    """One visitor's conversation; the visitor is known by the hash of their token only."""

    visitor_hash = peewee.CharField(max_length=64, unique=True)
    visitor_name = peewee.CharField(max_length=200, default="")
    visitor_email = peewee.CharField(max_length=254, null=True)
    visitor_phone = peewee.CharField(max_length=40, null=True)
    page_url = peewee.CharField(max_length=500, default="")
    origin = peewee.CharField(max_length=200, default="")
    status = peewee.CharField(max_length=10, default="open", index=True)
    assignee = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    lead = peewee.ForeignKeyField(Lead, null=True, on_delete="SET NULL", backref="+")
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="+")
    #: the existing lead / contact whose email or phone the visitor gave: a claim, not a
    #: link, until an agent confirms it (anyone can type a customer's address)
    claimed_lead = peewee.ForeignKeyField(Lead, null=True, on_delete="SET NULL", backref="+")
    claimed_contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="+")
    #: set when the assistant handed over to a human; cleared by the next agent reply
    handed_over = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    last_message_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "chat_conversation"


class ChatMessage(TenantModel):
    conversation = peewee.ForeignKeyField(ChatConversation, on_delete="CASCADE", backref="+")
    sender = peewee.CharField(max_length=10)
    author = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    content = peewee.TextField()
    #: the sender's own id for the message: a resend with the same id is the same message
    client_id = peewee.CharField(max_length=64, null=True)
    confidence = peewee.FloatField(null=True)
    #: True when a ChatAttachment belongs to it (so listing messages needs no extra query)
    has_attachment = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    read_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "chat_message"
        indexes = ((("conversation", "client_id"), True), (("conversation", "id"), False))


class ChatAttachment(TenantModel):
    """A file a visitor sent; stored under the instance folder by a random name (never the
    visitor's), served only to that visitor and to the tenant's signed-in users."""

    message = peewee.ForeignKeyField(ChatMessage, on_delete="CASCADE", backref="+", unique=True)
    name = peewee.CharField(max_length=200)
    content_type = peewee.CharField(max_length=100)
    size = peewee.IntegerField()
    storage_key = peewee.CharField(max_length=200)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "chat_attachment"


class ChatFaq(TenantModel):
    question = peewee.CharField(max_length=300)
    answer = peewee.TextField()
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "chat_faq"


class ChatAgent(TenantModel):
    """An agent's presence (heartbeat from the inbox page) and round-robin position."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+", unique=True)
    status = peewee.CharField(max_length=10, default="online")  # online / away
    last_seen_at = peewee.DateTimeField(default=utcnow)
    last_assigned_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "chat_agent"


class ChatRate(BaseModel):
    """Fixed-window counters of the public endpoints' rate limits (shared by every
    process through the database; ``key`` includes the tenant id)."""

    key = peewee.CharField(max_length=120)
    window = peewee.BigIntegerField()
    count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "chat_rate"
        indexes = ((("key", "window"), True),)
