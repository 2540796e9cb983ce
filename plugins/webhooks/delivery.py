"""From a signal to a signed POST: the outbox, the delivery task, retries, replay.

A signal receiver (quick: no HTTP) writes one :class:`WebhookMessage` per subscribed
endpoint and enqueues its first attempt, in one transaction (the outbox pattern). The
task (``webhooks.deliver``, not transactional: it calls the outside world) POSTs the
message, logs the attempt, and schedules the next attempt itself as a new task with
``run_at`` (the queue's exponential backoff cannot express Svix's schedule). Each
attempt's task has the idempotency key ``webhooks:<msg_id>:<n>``, and an attempt already
logged is not made again, so a worker that dies after logging repeats nothing; one
that dies between the POST and the log sends the POST again with the same
``webhook-id``, which receivers deduplicate by (at least once).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets as _secrets
import uuid
from typing import Any

from crm_plugins.webhooks import events as catalogue_
from crm_plugins.webhooks import transport
from crm_plugins.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from standardwebhooks import Webhook

from crmcore import sdk
from crmcore.sdk import atomic, enqueue, payload_of, utcnow

log = logging.getLogger("crm_plugins.webhooks")

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


def _queue_attempt(message: WebhookMessage, number: int, run_at: dt.datetime | None = None, round_start: int | None = None) -> None:
    # The round is in the key so that a replay never waits behind a stale retry task of
    # the same attempt number (whichever runs first makes the attempt, the other no-ops).
    start = message.round_start if round_start is None else round_start
    key = f"webhooks:{message.msg_id}:{start}:{number}"
    enqueue(TASK_KIND, {"message_id": message.id, "attempt": number}, idempotency_key=key, run_at=run_at)


def create_messages(event_type: str, data: dict[str, Any], endpoints: list[WebhookEndpoint]) -> list[WebhookMessage]:
    """One message per endpoint with its first attempt queued, in one transaction."""
    if not endpoints:
        return []
    body = json.dumps(catalogue_.envelope(event_type, data), separators=(",", ":"), default=str)
    schedule = settings(sdk.current_tenant())["retry_schedule"]
    first_at = utcnow() + dt.timedelta(seconds=schedule[0])
    messages = []
    with atomic():
        for endpoint in endpoints:
            message = WebhookMessage.create(msg_id=new_msg_id(), endpoint=endpoint.id, event_type=event_type, body=body, next_attempt_at=first_at)
            _queue_attempt(message, 1, first_at if schedule[0] else None)
            messages.append(message)
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
    """The ``webhooks.deliver`` handler: one attempt of one message (idempotent)."""
    payload = payload_of(task)
    deliver(int(payload["message_id"]), int(payload["attempt"]))


def deliver(message_id: int, number: int) -> WebhookAttempt | None:
    """Make attempt ``number`` of a message, unless it is no longer due (delivered,
    given up, already made, endpoint gone): then nothing."""
    message = WebhookMessage.get_or_none(WebhookMessage.id == message_id)
    if message is None or message.status != "pending" or message.attempts >= number:
        return None
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == message.endpoint_id)
    if endpoint is None:
        return None
    tenant = sdk.current_tenant()
    cfg = settings(tenant)
    now = utcnow()
    if not endpoint.enabled:
        WebhookMessage.update(status="failed", next_attempt_at=None).where(WebhookMessage.id == message.id, WebhookMessage.status == "pending").execute()
        return None
    headers = signed_headers(endpoint, message, now)
    outcome = transport.post(endpoint.url, message.body, headers, cfg["timeout_seconds"])
    success = outcome.status_code is not None and 200 <= outcome.status_code < 300
    error = outcome.error
    if outcome.status_code is not None and not success:
        error = f"HTTP {outcome.status_code}" + (" (a redirect counts as a failure)" if 300 <= outcome.status_code < 400 else "")
    schedule = cfg["retry_schedule"]
    in_round = number - message.round_start  # attempts made in this round, this one included
    with atomic():
        attempt = WebhookAttempt.create(
            message=message.id, number=number, started_at=now, duration_ms=outcome.duration_ms,
            request_headers=redacted(headers), status_code=outcome.status_code,
            response_excerpt=outcome.excerpt, error=error, success=success,
        )
        fields: dict[str, Any] = {"attempts": number, "last_status_code": outcome.status_code}
        if success:
            fields.update(status="delivered", delivered_at=utcnow(), next_attempt_at=None)
            if endpoint.failing_since is not None:
                WebhookEndpoint.update(failing_since=None).where(WebhookEndpoint.id == endpoint.id).execute()
        elif outcome.status_code == 410:
            fields.update(status="failed", next_attempt_at=None)
            disable(endpoint, "the endpoint answered 410 Gone")
        elif in_round < len(schedule):
            delay = schedule[in_round]
            if outcome.retry_after is not None and outcome.status_code in (429, 503):
                delay = max(delay, min(outcome.retry_after, 86400.0))
            next_at = utcnow() + dt.timedelta(seconds=delay)
            fields.update(next_attempt_at=next_at)
            _queue_attempt(message, number + 1, next_at)
        else:
            fields.update(status="failed", next_attempt_at=None)
        WebhookMessage.update(**fields).where(WebhookMessage.id == message.id).execute()
        if not success and outcome.status_code != 410:
            _count_failure(endpoint, cfg["disable_after_days"], now)
    return attempt


def _count_failure(endpoint: WebhookEndpoint, days: float, now: dt.datetime) -> None:
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
        changed = WebhookMessage.update(status="pending", round_start=message.attempts, next_attempt_at=utcnow()).where(
            WebhookMessage.id == message.id, WebhookMessage.status != "pending"
        ).execute()
        if changed:
            _queue_attempt(message, message.attempts + 1, round_start=message.attempts)
    return bool(changed)


def replay_failed(since: dt.datetime, endpoint_id: int | None = None) -> int:
    """Replay every failed message created since ``since`` (of one endpoint, if given)
    whose endpoint is enabled."""
    enabled = WebhookEndpoint.select(WebhookEndpoint.id).where(WebhookEndpoint.enabled == True)
    query = WebhookMessage.select().where(WebhookMessage.status == "failed", WebhookMessage.created_at >= since, WebhookMessage.endpoint.in_(enabled))
    if endpoint_id is not None:
        query = query.where(WebhookMessage.endpoint == endpoint_id)
    return sum(replay(m) for m in query.order_by(WebhookMessage.id).limit(10000))
