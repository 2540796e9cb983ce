"""Tables of the webhooks plugin (``webhooks_*``): endpoints, messages (the outbox: one
row per event and endpoint) and the attempts to deliver them (the delivery log)."""

from __future__ import annotations

import peewee

from crmcore.sdk import IdField, JSONText, TenantModel, utcnow

#: A message's life: pending (an attempt is queued), delivered, failed (gave up, or the
#: endpoint was disabled; replayable).
MESSAGE_STATUSES = ("pending", "delivered", "failed")


class WebhookEndpoint(TenantModel):
    """Where a tenant wants its events POSTed, and the secret that signs them."""

    id = IdField()
    url = peewee.CharField(max_length=2000)
    description = peewee.CharField(max_length=500, default="")
    event_types = JSONText(default=list)  # the event types it subscribed to
    enabled = peewee.BooleanField(default=True)
    secret = peewee.CharField(max_length=100)  # whsec_...; needed in clear to sign
    previous_secret = peewee.CharField(max_length=100, null=True)  # still signs until:
    previous_secret_expires_at = peewee.DateTimeField(null=True)
    failing_since = peewee.DateTimeField(null=True)  # first failure of the current run of failures
    disabled_reason = peewee.TextField(null=True)  # set when the plugin disabled it
    disabled_at = peewee.DateTimeField(null=True)
    #: run time of the delivery task queued for this endpoint that has not started yet
    #: (None: none is known to be queued); see :mod:`crm_plugins.webhooks.drain`
    drain_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhooks_endpoint"


class WebhookMessage(TenantModel):
    """One event for one endpoint: the exact body (signed identically on every attempt)
    and its ``msg_id``, the ``webhook-id`` receivers deduplicate by."""

    id = IdField()
    msg_id = peewee.CharField(max_length=40, unique=True)
    endpoint = peewee.ForeignKeyField(WebhookEndpoint, on_delete="CASCADE", backref="+")
    event_type = peewee.CharField(max_length=100)
    body = peewee.TextField()
    status = peewee.CharField(max_length=10, default="pending")
    attempts = peewee.IntegerField(default=0)
    #: attempts made before the last replay: the retry schedule restarts from there
    round_start = peewee.IntegerField(default=0)
    #: when the next attempt is due; while a delivery task holds the message, the end of
    #: that task's lease (so a killed worker's messages become due again with its task)
    next_attempt_at = peewee.DateTimeField(null=True)
    last_status_code = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "webhooks_message"
        indexes = ((("tenant", "id"), False), (("tenant", "status", "created_at"), False), (("endpoint", "id"), False),
                   # the delivery task's query: an endpoint's pending messages in order
                   (("endpoint", "status", "id"), False))


class WebhookAttempt(TenantModel):
    """One POST of a message: what was sent (signature redacted) and what came back."""

    id = IdField()
    message = peewee.ForeignKeyField(WebhookMessage, on_delete="CASCADE", backref="+")
    number = peewee.IntegerField()  # 1 for the first attempt of the message
    started_at = peewee.DateTimeField(default=utcnow)
    duration_ms = peewee.IntegerField(default=0)
    request_headers = JSONText(default=dict)
    status_code = peewee.IntegerField(null=True)
    response_excerpt = peewee.TextField(default="")
    error = peewee.TextField(null=True)
    success = peewee.BooleanField(default=False)

    class Meta:
        table_name = "webhooks_attempt"
        indexes = ((("message", "number"), True),)


MODELS = [WebhookEndpoint, WebhookMessage, WebhookAttempt]
