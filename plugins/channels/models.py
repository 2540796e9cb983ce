"""Tables of the channels plugin (``channels_*``): conversations, their messages (the
outbox too: an outbound message is queued, then sent, delivered or failed) and the
templates every channel shares."""

from __future__ import annotations

import peewee

from crmcore.sdk import Contact, Deal, IdField, JSONText, Lead, TenantModel, User, utcnow

CONVERSATION_STATUSES = ("open", "pending", "resolved")
DIRECTIONS = ("in", "out")
#: queued (in the outbox), sent (handed to the channel), delivered (the channel says it
#: arrived), failed (``failure_reason`` says why), received (an inbound message)
MESSAGE_STATUSES = ("queued", "sent", "delivered", "failed", "received")


class Conversation(TenantModel):
    """One thread with a customer on one channel, linked to a lead, contact or deal."""

    id = IdField()
    channel = peewee.CharField(max_length=30)
    subject = peewee.CharField(max_length=300, default="")
    status = peewee.CharField(max_length=10, default="open")
    assignee = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    lead = peewee.ForeignKeyField(Lead, null=True, on_delete="SET NULL", backref="+")
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="+")
    deal = peewee.ForeignKeyField(Deal, null=True, on_delete="SET NULL", backref="+")
    #: the customer's address on the channel (email address, phone number ...)
    address = peewee.CharField(max_length=320, default="")
    last_message_at = peewee.DateTimeField(default=utcnow)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channels_conversation"
        indexes = ((("tenant", "last_message_at", "id"), False), (("tenant", "channel", "last_message_at"), False))


class Message(TenantModel):
    """One message in or out; an outbound one is the outbox's unit of work."""

    id = IdField()
    conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE", backref="+")
    channel = peewee.CharField(max_length=30)
    direction = peewee.CharField(max_length=3)
    status = peewee.CharField(max_length=10)
    failure_reason = peewee.TextField(null=True)
    attempts = peewee.IntegerField(default=0)
    subject = peewee.CharField(max_length=300, default="")
    body_text = peewee.TextField(default="")
    body_html = peewee.TextField(default="")  # sanitised (nh3) before it is stored
    sender = peewee.CharField(max_length=320, default="")
    recipients = JSONText(default=list)  # ["a@x.org"]
    cc = JSONText(default=list)
    #: the channel's own id of the message (email: the Message-ID, fixed before the first
    #: attempt) and its threading headers
    message_id = peewee.CharField(max_length=500, null=True)
    in_reply_to = peewee.CharField(max_length=500, null=True)
    references = JSONText(default=list)
    headers = JSONText(default=dict)  # other headers worth keeping (Auto-Submitted ...)
    #: unique per tenant: a send asked twice with the same key is one message
    idempotency_key = peewee.CharField(max_length=200, null=True)
    author = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    activity_id = peewee.IntegerField(null=True)  # its timeline entry (crm_activity)
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    #: a queued message is due at this time (a retry later); while a drain task holds it,
    #: the end of that hold (so a killed worker's messages become due again)
    next_attempt_at = peewee.DateTimeField(null=True)
    held_by = peewee.IntegerField(null=True)  # the drain task (crm_task_queue id) holding it
    #: "sales" (a rep's own) or "marketing": what consent it needs (migration 0004)
    purpose = peewee.CharField(max_length=10, default="sales")
    #: sent during the tenant's quiet hours too (otherwise it waits for them to end)
    urgent = peewee.BooleanField(default=False)

    class Meta:
        table_name = "channels_message"
        indexes = (
            (("tenant", "channel", "status", "next_attempt_at"), False),
            (("tenant", "idempotency_key"), True),
            (("tenant", "message_id"), False),
            (("conversation", "id"), False),
        )


class MessageTemplate(TenantModel):
    """A reusable message: Jinja2 (sandboxed) subject and body, for any channel."""

    id = IdField()
    name = peewee.CharField(max_length=100)
    channel = peewee.CharField(max_length=30, null=True)  # None: every channel
    subject = peewee.CharField(max_length=300, default="")
    body = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channels_template"
        indexes = ((("tenant", "name"), True),)


class Outbox(TenantModel):
    """One row per tenant and channel: ``drain_at`` is the run time of the drain task
    queued for it that has not started yet (None: none is known to be queued), so a new
    message queues a task only when none is pending."""

    id = IdField()
    channel = peewee.CharField(max_length=30)
    drain_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "channels_outbox"
        indexes = ((("tenant", "channel"), True),)


class Consent(TenantModel):
    """A customer's address (an E.164 number, an email address) that asked for no more
    messages: ``opted_out`` until they opt back in (the row stays, for the record of when
    and how). Channel plugins read and write it through ``contrib.opted_out`` /
    ``contrib.set_consent``; a channel checks it before it queues and before it sends
    (the sms plugin does; email keeps its own marketing unsubscribes for now)."""

    id = IdField()
    address = peewee.CharField(max_length=320)
    opted_out = peewee.BooleanField(default=True)
    channel = peewee.CharField(max_length=30)  # where the request came in (sms ...)
    source = peewee.CharField(max_length=200, default="")  # what was said ("STOP please")
    changed_at = peewee.DateTimeField(default=utcnow)
    #: what the opt-out covers: "all" messages (an SMS STOP) or only "marketing" (an email
    #: unsubscribe: a rep's own mail still goes) (migration 0004)
    scope = peewee.CharField(max_length=10, default="all")

    class Meta:
        table_name = "channels_consent"
        indexes = ((("tenant", "address"), True),)


MODELS = [Conversation, Message, MessageTemplate, Outbox, Consent]
