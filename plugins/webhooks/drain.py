"""The delivery task ``webhooks.drain``: one endpoint's due messages POSTed in order.

A task (queued by :func:`~crm_plugins.webhooks.delivery.schedule_drain`) takes up to
:data:`BATCH_SIZE` due messages of its endpoint in one transaction and *holds* them: their
``next_attempt_at`` becomes the end of the task's lease, so no other task takes them,
and if the worker dies they are due again when its task is (the queue then runs the task
again). It checks the endpoint's URL once and POSTs every message to that checked address
over one keep-alive connection, then logs the attempts every :data:`LOG_SECONDS` (or :data:`LOG_MAX` attempts), each
log in one transaction (attempt rows, message rows, the endpoint's run of failures). A
failed message gets its next attempt's time on its row and the batch goes on (one bad
message does not hold up the others); the last log also queues the endpoint's next task
for its earliest pending message.

Durability is that of one task per message: a message is marked delivered only in the
transaction that logs its 2xx answer, and a worker killed between POSTs and their log
leaves those messages pending and held until its lease ends; they are POSTed again then,
with the same ``webhook-id`` (at least once: a killed worker's duplicates are what it
sent in its last :data:`LOG_SECONDS`).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import peewee

from crm_plugins.webhooks import delivery, transport
from crm_plugins.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from crmcore import sdk
from crmcore.sdk import atomic, payload_of, utcnow

TASK_KIND = delivery.DRAIN_KIND
#: Messages one task takes at most (the rest wait for the next task of the endpoint).
BATCH_SIZE = 500
#: Attempts are logged (one transaction) every LOG_SECONDS, or every LOG_MAX attempts if
#: sooner: a killed worker sends again at most what it sent in that time (PostgreSQL
#: syncs its log at each commit, so a commit per message would cost more than the POST).
LOG_SECONDS = 0.5
LOG_MAX = 200
#: Longest a task starts POSTs for: a slow endpoint must not keep a worker thread from
#: other tenants' tasks for long (the rest of its messages go to its next task).
MAX_BATCH_SECONDS = 10.0
#: How long messages are held when the task's lease is unknown (a direct call).
DEFAULT_HOLD = dt.timedelta(seconds=60)


@dataclass
class _Made:
    """One attempt made, not yet logged."""

    message: WebhookMessage
    number: int
    started_at: dt.datetime
    headers: dict[str, str]
    outcome: transport.Outcome


def drain_task(task: Any) -> None:
    """The ``webhooks.drain`` handler: messages are held until the task's lease ends."""
    hold_until = task.locked_until or utcnow() + DEFAULT_HOLD
    drain(int(payload_of(task)["endpoint_id"]), hold_until)


def take_due(endpoint_id: int, hold_until: dt.datetime) -> tuple[WebhookEndpoint | None, list[WebhookMessage]]:
    """The endpoint and its due messages in order (at most :data:`BATCH_SIZE`), held until
    ``hold_until``; the endpoint's queued-task mark is cleared first (see ``delivery``)."""
    with atomic():
        if not delivery.lock_endpoint(endpoint_id, drain_at=None):
            return None, []
        endpoint = WebhookEndpoint.get_by_id(endpoint_id)
        pending = WebhookMessage.select().where(WebhookMessage.endpoint == endpoint_id, WebhookMessage.status == "pending")
        if not endpoint.enabled:  # disabled by hand: its pending messages fail (replayable)
            WebhookMessage.update(status="failed", next_attempt_at=None).where(WebhookMessage.endpoint == endpoint_id, WebhookMessage.status == "pending").execute()
            return endpoint, []
        # (no time: written by an older version without one; due)
        is_due = (WebhookMessage.next_attempt_at <= utcnow()) | WebhookMessage.next_attempt_at.is_null()
        due = list(pending.where(is_due).order_by(WebhookMessage.id).limit(BATCH_SIZE))
        if due:
            WebhookMessage.update(next_attempt_at=hold_until).where(WebhookMessage.id.in_([m.id for m in due])).execute()
    return endpoint, due


def drain(endpoint_id: int, hold_until: dt.datetime) -> int:
    """POST the endpoint's due messages in order and log them; return the attempts made."""
    endpoint, due = take_due(endpoint_id, hold_until)
    if endpoint is None or not endpoint.enabled:
        return 0
    if not due:  # later messages still need a task (this one may be a stale one)
        with atomic():
            delivery.lock_endpoint(endpoint_id)
            _schedule_next(endpoint_id, utcnow())
        return 0
    cfg = delivery.settings(sdk.current_tenant())
    try:
        pinned: transport.Pinned | transport.RefusedUrl = transport.pin(endpoint.url)
    except transport.RefusedUrl as exc:
        pinned = exc
    # Start no POST after half the hold: the last one must end (and be logged) before
    # the lease does, or another worker would send it too.
    deadline = time.monotonic() + min(MAX_BATCH_SECONDS, max(0.0, (hold_until - utcnow()).total_seconds()) / 2)
    made: list[_Made] = []
    sent = 0
    logged_at = time.monotonic()
    for index, message in enumerate(due):
        if sent and time.monotonic() > deadline:
            _log(endpoint, made, cfg, release=due[index:])  # the rest: due again, for the next task
            return sent
        now = utcnow()
        headers = delivery.signed_headers(endpoint, message, now)
        outcome = transport.post(endpoint.url, message.body, headers, cfg["timeout_seconds"], pinned=pinned)
        made.append(_Made(message, message.attempts + 1, now, headers, outcome))
        sent += 1
        last = index == len(due) - 1
        if last or len(made) >= LOG_MAX or time.monotonic() - logged_at >= LOG_SECONDS or outcome.status_code == 410:
            enabled = _log(endpoint, made, cfg, last=last)
            made, logged_at = [], time.monotonic()
            if not enabled:  # its pending messages, held ones too, are failed now
                return sent
    return sent


def _log(endpoint: WebhookEndpoint, made: list[_Made], cfg: Any, release: list[WebhookMessage] = (), last: bool = True) -> bool:
    """Log attempts in one transaction: attempt rows, messages' status or next attempt,
    the endpoint's run of failures. ``release``: held messages not sent (due again now).
    The last log queues the endpoint's next task. False when the endpoint got disabled."""
    schedule = cfg["retry_schedule"]
    now = utcnow()
    with atomic():
        delivery.lock_endpoint(endpoint.id)  # first: the same lock order as take_due
        if made:
            WebhookAttempt.insert_many([
                {"tenant": endpoint.tenant_id, "message": m.message.id, "number": m.number, "started_at": m.started_at,
                 "duration_ms": m.outcome.duration_ms, "request_headers": delivery.redacted(m.headers), "status_code": m.outcome.status_code,
                 "response_excerpt": m.outcome.excerpt, "error": delivery.describe_failure(m.outcome), "success": _success(m.outcome)}
            for m in made
            ]).on_conflict_ignore().execute()  # an attempt already logged (a lease lost) stays as it was
        delivered: dict[tuple[int, int], list[int]] = {}
        for m in made:
            if _success(m.outcome):
                delivered.setdefault((m.outcome.status_code, m.number), []).append(m.message.id)
                continue
            delay = delivery.next_attempt_delay(m.message, m.number, m.outcome, schedule)
            fields: dict[str, Any] = {"attempts": m.number, "last_status_code": m.outcome.status_code}
            if delay is None:
                fields.update(status="failed", next_attempt_at=None)
            else:
                fields.update(next_attempt_at=now + dt.timedelta(seconds=delay))
            WebhookMessage.update(**fields).where(WebhookMessage.id == m.message.id).execute()
        # Successes in one statement per (status, attempt number): usually one.
        for (status_code, number), ids in delivered.items():
            WebhookMessage.update(status="delivered", delivered_at=now, next_attempt_at=None, attempts=number, last_status_code=status_code).where(
                WebhookMessage.id.in_(ids)
            ).execute()
        if release:
            WebhookMessage.update(next_attempt_at=now).where(WebhookMessage.id.in_([m.id for m in release]), WebhookMessage.status == "pending").execute()
        enabled = _track_failures(endpoint, made, cfg, now)
        if enabled and (last or release):
            _schedule_next(endpoint.id, now)
    return enabled


def _schedule_next(endpoint_id: int, now: dt.datetime) -> None:
    """Queue the endpoint's next task for its earliest pending message (if any); a task
    running then queues the one after, and so on."""
    earliest = WebhookMessage.select(peewee.fn.MIN(WebhookMessage.next_attempt_at)).where(
        WebhookMessage.endpoint == endpoint_id, WebhookMessage.status == "pending"
    ).scalar()
    if earliest is not None:
        delivery.schedule_drain(endpoint_id, max(earliest, now))


def _success(outcome: transport.Outcome) -> bool:
    return outcome.status_code is not None and 200 <= outcome.status_code < 300


def _track_failures(endpoint: WebhookEndpoint, made: list[_Made], cfg: Any, now: dt.datetime) -> bool:
    """410 disables the endpoint; a success ends its run of failures, a failure starts or
    extends it (disabling it after ``disable_after_days``). False when it got disabled."""
    for m in made:
        if m.outcome.status_code == 410:
            delivery.disable(endpoint, "the endpoint answered 410 Gone")
        elif _success(m.outcome):
            if endpoint.failing_since is not None:
                WebhookEndpoint.update(failing_since=None).where(WebhookEndpoint.id == endpoint.id).execute()
                endpoint.failing_since = None
        else:
            delivery.count_failure(endpoint, cfg["disable_after_days"], now)
        if not endpoint.enabled:
            return False
    return True
