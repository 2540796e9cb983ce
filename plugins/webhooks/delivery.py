"""From a signal to a signed POST: the outbox, scheduling the delivery task, retries, replay.

A signal receiver (quick: no HTTP) writes one :class:`WebhookMessage` per subscribed
endpoint and makes sure a delivery task of that endpoint is queued, in one transaction
(the outbox pattern). The task (``webhooks.drain``, in :mod:`.drain`) POSTs the endpoint's
due messages in order, logs each attempt, and writes the next attempt's time on the
message row (Svix's schedule, which the queue's exponential backoff cannot express);
the next task of the endpoint finds it in SQL. A worker that dies between a POST and its
log entry sends the POST again with the same ``webhook-id``, which receivers deduplicate
by (at least once).

At most one not-yet-started task per endpoint is tracked (``WebhookEndpoint.drain_at``):
:func:`schedule_drain` queues one only when none is queued to run by the wanted time, so
10,000 events give a few batch tasks, not 10,000 tasks. Every change of it holds the
endpoint row's lock (an UPDATE of the row, which on SQLite is the write lock), and a task
clears it under that lock before it reads the due messages: a message committed before
that is seen by the task; one committed after finds it cleared and queues another task.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets as _secrets
import uuid
from typing import Any

from standardwebhooks import Webhook

from crm_plugins.webhooks import events as catalogue_
from crm_plugins.webhooks import transport
from crm_plugins.webhooks.models import WebhookEndpoint, WebhookMessage
from crmcore import sdk
from crmcore.sdk import atomic, enqueue, payload_of, utcnow

log = logging.getLogger("crm_plugins.webhooks")

#: The delivery task (one endpoint's due messages, see :mod:`.drain`).
DRAIN_KIND = "webhooks.drain"
#: The former one-attempt task; kept so that tasks an older version queued still run.
TASK_KIND = "webhooks.deliver"
DISABLED_SIGNAL = "webhook_endpoint_disabled"
REDACTED = "<redacted>"


def new_secret() -> str:
    """A ``whsec_`` secret: 24 random bytes, base64 (as Svix issues them)."""
    import base64

    return "whsec_" + base64.b64encode(_secrets.token_bytes(24)).decode()


def new_msg_id() -> str:
    return "msg_" + uuid.uuid4().hex


def settings(tenant: Any) -> Any:
    return sdk.settings(tenant, "webhooks")


# --------------------------------------------------------------------------- the outbox


def lock_endpoint(endpoint_id: int, **changes: Any) -> bool:
    """Lock the endpoint's row until the transaction ends (making ``changes``); False if it
    is gone. An UPDATE locks the row on PostgreSQL and takes the write lock on SQLite."""
    changes = changes or {"drain_at": WebhookEndpoint.drain_at}
    return bool(WebhookEndpoint.update(**changes).where(WebhookEndpoint.id == endpoint_id).execute())


def schedule_drain(endpoint_id: int, at: dt.datetime | None = None) -> None:
    """Make sure a delivery task of the endpoint runs at ``at`` (default now) or earlier.

    Called in the transaction that makes a message due (or its own): the task cannot
    start reading before that transaction commits (see the module's docstring)."""
    at = at or utcnow()
    with atomic():
        if not lock_endpoint(endpoint_id):
            return
        queued_at = WebhookEndpoint.select(WebhookEndpoint.drain_at).where(WebhookEndpoint.id == endpoint_id).scalar()
        if queued_at is not None and queued_at <= at:
            return  # a task that has not started yet runs by then: it will see the message
        WebhookEndpoint.update(drain_at=at).where(WebhookEndpoint.id == endpoint_id).execute()
        enqueue(DRAIN_KIND, {"endpoint_id": endpoint_id}, run_at=at)


def create_messages(event_type: str, data: dict[str, Any], endpoints: list[WebhookEndpoint]) -> list[WebhookMessage]:
    """One message per endpoint with its first attempt queued, in one transaction."""
    if not endpoints:
        return []
    body = json.dumps(catalogue_.envelope(event_type, data), separators=(",", ":"), default=str)
    schedule = settings(sdk.current_tenant())["retry_schedule"]
    first_at = utcnow() + dt.timedelta(seconds=schedule[0])
    messages = []
    with atomic():
        # The inserts first: on SQLite the transaction then holds the write lock.
        for endpoint in endpoints:
            messages.append(WebhookMessage.create(msg_id=new_msg_id(), endpoint=endpoint.id, event_type=event_type, body=body, next_attempt_at=first_at))
        for endpoint_id in sorted({e.id for e in endpoints}):  # one lock order: no deadlock
            schedule_drain(endpoint_id, first_at)
    return messages


def subscribed(event_type: str) -> list[WebhookEndpoint]:
    """The current tenant's enabled endpoints that subscribed to ``event_type``."""
    rows = WebhookEndpoint.select().where(WebhookEndpoint.enabled == True)
    return [e for e in rows if event_type in (e.event_types or [])]


def on_signal(signal_name: str) -> Any:
    """The receiver of one signal: every event type of the tenant's catalogue that the
    signal announces becomes messages for the endpoints that subscribed to it."""

    def receive(tenant: Any, **data: Any) -> None:
        for event in catalogue_.catalogue(tenant).values():
            if event.signal != signal_name:
                continue
            endpoints = subscribed(event.type)
            if not endpoints:
                continue
            payload = event.payload(**data)
            if payload is not None:
                create_messages(event.type, payload, endpoints)

    receive.__name__ = f"on_{signal_name}"
    return receive


def send_test(endpoint: WebhookEndpoint) -> WebhookMessage:
    """Queue a ``webhook_test`` event for one endpoint (whatever it subscribed to)."""
    data = {"message": "A test event from the CRM's webhooks page.", "endpoint_id": endpoint.id}
    return create_messages(catalogue_.TEST_EVENT, data, [endpoint])[0]


# --------------------------------------------------------------------------- signing


def signed_headers(endpoint: WebhookEndpoint, message: WebhookMessage, now: dt.datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation's overlap both secrets sign (the
    signatures space-separated, as the specification allows)."""
    stamp = dt.datetime.fromtimestamp(int(now.replace(tzinfo=dt.UTC).timestamp()), dt.UTC)
    signatures = [Webhook(endpoint.secret).sign(message.msg_id, stamp, message.body)]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        signatures.append(Webhook(endpoint.previous_secret).sign(message.msg_id, stamp, message.body))
    return {
        "Content-Type": "application/json",
        "webhook-id": message.msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def redacted(headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    if "webhook-signature" in out:
        out["webhook-signature"] = " ".join(f"{s.split(',', 1)[0]},{REDACTED}" for s in out["webhook-signature"].split(" "))
    return out


# --------------------------------------------------------------------------- the task


def deliver_task(task: Any) -> None:
    """The former ``webhooks.deliver`` handler: a task queued by an older version hands its
    message over to the endpoint's delivery task."""
    message = WebhookMessage.get_or_none(WebhookMessage.id == int(payload_of(task)["message_id"]))
    if message is not None and message.status == "pending":
        schedule_drain(message.endpoint_id)


def describe_failure(outcome: transport.Outcome) -> str | None:
    """The error logged for an attempt (None for a 2xx answer)."""
    if outcome.status_code is None:
        return outcome.error
    if 200 <= outcome.status_code < 300:
        return None
    return f"HTTP {outcome.status_code}" + (" (a redirect counts as a failure)" if 300 <= outcome.status_code < 400 else "")


def next_attempt_delay(message: WebhookMessage, number: int, outcome: transport.Outcome, schedule: list[float]) -> float | None:
    """Seconds until the next attempt after failed attempt ``number``, or None: give up."""
    in_round = number - message.round_start  # attempts made in this round, this one included
    if outcome.status_code == 410 or in_round >= len(schedule):
        return None
    delay = schedule[in_round]
    if outcome.retry_after is not None and outcome.status_code in (429, 503):
        delay = max(delay, min(outcome.retry_after, 86400.0))
    return delay


def count_failure(endpoint: WebhookEndpoint, days: float, now: dt.datetime) -> None:
    """Start the endpoint's run of failures, or disable it when the run is long enough."""
    if endpoint.failing_since is None:
        WebhookEndpoint.update(failing_since=now).where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.failing_since.is_null()).execute()
        endpoint.failing_since = now
    if now - endpoint.failing_since >= dt.timedelta(days=days):
        disable(endpoint, f"every delivery failed for {days:g} days (since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC)")


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Disable an endpoint the plugin gave up on; its pending messages fail (replayable)
    and ``webhook_endpoint_disabled`` is sent after commit."""
    now = utcnow()
    with atomic():
        changed = WebhookEndpoint.update(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now).where(
            WebhookEndpoint.id == endpoint.id, WebhookEndpoint.enabled == True
        ).execute()
        if not changed:
            return
        WebhookMessage.update(status="failed", next_attempt_at=None).where(WebhookMessage.endpoint == endpoint.id, WebhookMessage.status == "pending").execute()
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
        log.warning("webhooks: endpoint %s (%s) disabled: %s", endpoint.id, endpoint.url, reason)
        sdk.send_signal(DISABLED_SIGNAL, sdk.current_tenant(), endpoint=endpoint, reason=reason)


# --------------------------------------------------------------------------- replay


def replay(message: WebhookMessage) -> bool:
    """Send a delivered or failed message again (same ``webhook-id``), its retry schedule
    restarting; False if it is still pending."""
    with atomic():
        changed = WebhookMessage.update(status="pending", round_start=WebhookMessage.attempts, next_attempt_at=utcnow()).where(
            WebhookMessage.id == message.id, WebhookMessage.status != "pending"
        ).execute()
        if changed:
            schedule_drain(message.endpoint_id)
    return bool(changed)


def replay_failed(since: dt.datetime, endpoint_id: int | None = None) -> int:
    """Replay every failed message created since ``since`` (of one endpoint, if given)
    whose endpoint is enabled."""
    enabled = WebhookEndpoint.select(WebhookEndpoint.id).where(WebhookEndpoint.enabled == True)
    query = WebhookMessage.select().where(WebhookMessage.status == "failed", WebhookMessage.created_at >= since, WebhookMessage.endpoint.in_(enabled))
    if endpoint_id is not None:
        query = query.where(WebhookMessage.endpoint == endpoint_id)
    return sum(replay(m) for m in query.order_by(WebhookMessage.id).limit(10000))
