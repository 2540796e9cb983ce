"""The outbox: outbound messages are rows (status ``queued``, due at ``next_attempt_at``)
and one drain task per tenant and channel sends them.

Why not one task per message: the task queue's own work (claim, lease, done: three
commits) cost more than sending an email (bench/results/email.md). A drain task takes a
batch of due messages (holding them until its lease ends, so a killed worker's messages
become due again with its task), sends them one after the other (the email channel over
one connection), and commits each message's status as soon as it is known: a worker
killed mid-send re-sends at most the message it was sending, with the same Message-ID.
It works at most ``BUDGET_SECONDS`` and then hands over to a new task.

``Outbox.drain_at`` is the run time of the drain task queued and not started yet (None:
none), so queueing a message enqueues a task only when none is pending.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from peewee import fn

from crm_plugins.channels import consent, quiet_hours
from crm_plugins.channels.contrib import Learnt, PermanentFailure, TemporaryFailure
from crm_plugins.channels.models import Conversation, Message, Outbox
from crmcore import sdk
from crmcore.sdk import atomic, utcnow

DRAIN_TASK = "channels.drain"
BATCH = 100
BUDGET_SECONDS = 10.0
STALE_SECONDS = 600.0
#: a drain task's outcome is written only over "queued": a delivery report (a status
#: callback) may have come while the send was under way, and it stands
QUEUED = ("queued",)


def schedule(tenant: Any, channel: str, at: dt.datetime | None = None) -> None:
    """Make sure a drain task of the channel runs at ``at`` (now) or earlier; inside the
    transaction that queued the message (the task commits with it)."""
    at = at or utcnow()
    Outbox.insert(channel=channel, drain_at=None, tenant=tenant.id).on_conflict_ignore().execute()
    # a task due more than STALE_SECONDS ago that has not started is presumed gone (it was
    # cancelled while the plugin was off for the tenant): queue another
    stale = at - dt.timedelta(seconds=STALE_SECONDS)
    updated = Outbox.update(drain_at=at).where(
        (Outbox.channel == channel) & (Outbox.drain_at.is_null() | (Outbox.drain_at > at) | (Outbox.drain_at < stale))).execute()
    if updated:
        sdk.enqueue(DRAIN_TASK, {"channel": channel}, run_at=at, idempotency_key=f"channels:drain:{tenant.id}:{channel}:{uuid.uuid4().hex}")


def _take(task: Any, channel: str, hold_until: dt.datetime) -> list[Message]:
    """Hold the next due messages for this task (a message held by another live task is
    not due); counts their attempt."""
    now = utcnow()
    due = (Message.channel == channel) & (Message.status == "queued") & (Message.next_attempt_at <= now)
    ids = [m.id for m in Message.select(Message.id).where(due).order_by(Message.next_attempt_at, Message.id).limit(BATCH)]
    if not ids:
        return []
    with atomic():
        Message.update(held_by=task.id, next_attempt_at=hold_until, attempts=Message.attempts + 1).where(due & Message.id.in_(ids)).execute()
    return list(Message.select().where((Message.id.in_(ids)) & (Message.held_by == task.id) & (Message.next_attempt_at == hold_until)).order_by(Message.id))


def _release(messages: list[Message], due: dt.datetime | None = None) -> None:
    """Give back held messages not sent (the budget ran out: due at once; quiet hours:
    due when they end), attempt uncounted."""
    if messages:
        Message.update(held_by=None, next_attempt_at=due or utcnow(), attempts=Message.attempts - 1).where(
            Message.id.in_([m.id for m in messages]) & (Message.status == "queued")).execute()


def _backoff(conf: Any, attempts: int) -> float:
    return min(3600.0, conf["retry_seconds"] * (2 ** max(0, attempts - 1)))


def drain_task(task: Any) -> None:
    """Send the channel's due messages for at most ``BUDGET_SECONDS`` (and half the task's
    lease, so its holds outlast it); then hand the rest to a new task."""
    from crm_plugins.channels import service

    tenant = sdk.current_tenant()
    name = sdk.payload_of(task)["channel"]
    conf = sdk.settings(tenant, "channels")
    Outbox.update(drain_at=None).where((Outbox.channel == name) & (Outbox.drain_at <= utcnow())).execute()
    channel = service.channels_of(tenant).get(name)
    lease_end = task.locked_until or (utcnow() + dt.timedelta(seconds=30))
    budget = min(BUDGET_SECONDS, max(0.05, (lease_end - utcnow()).total_seconds() / 2))
    deadline = time.monotonic() + budget
    conversations: dict[int, Conversation] = {}
    while time.monotonic() < deadline:
        batch = _take(task, name, lease_end)
        if not batch:
            break
        missing = {m.conversation_id for m in batch} - set(conversations)
        if missing:  # the batch's conversations in one query
            conversations.update({c.id: c for c in Conversation.select().where(Conversation.id.in_(sorted(missing)))})
        # opted out since it was queued: failed; in its recipient's quiet hours: later
        refused = consent.blocked(batch, channel.consent_address if channel is not None else None)
        waiting = quiet_hours.postponed(conf, [m for m in batch if m.id not in refused], conversations, utcnow())
        for i, message in enumerate(batch):
            if time.monotonic() >= deadline:
                _release(batch[i:])
                break
            conversation = conversations.get(message.conversation_id)
            if conversation is None:
                conversation = conversations[message.conversation_id] = Conversation.get_by_id(message.conversation_id)
            if channel is None or channel.send is None:
                service.finish(tenant, message, "failed", f"channel {name!r} is not available", conversation, only_from=QUEUED)
                continue
            if message.id in refused:  # opted out after it was queued: never reaches the provider
                service.finish(tenant, message, "failed", refused[message.id], conversation, only_from=QUEUED)
                continue
            if message.id in waiting:
                _release([message], waiting[message.id])
                continue
            message.failure_reason = None  # the channel may note a partial failure of this attempt
            try:
                learnt = channel.send(tenant, message, conversation)
            except PermanentFailure as exc:
                service.finish(tenant, message, "failed", str(exc) or type(exc).__name__, conversation, only_from=QUEUED)
            except TemporaryFailure as exc:
                if message.attempts >= conf["send_attempts"]:
                    service.finish(tenant, message, "failed", f"gave up after {message.attempts} attempts: {exc}", conversation, only_from=QUEUED)
                else:
                    retry_at = utcnow() + dt.timedelta(seconds=_backoff(conf, message.attempts))
                    Message.update(held_by=None, next_attempt_at=retry_at, failure_reason=f"attempt {message.attempts}: {exc}"[:2000]).where(
                        (Message.id == message.id) & (Message.status == "queued")).execute()
            else:
                service.finish(tenant, message, "sent", message.failure_reason, conversation, only_from=QUEUED,
                               learnt=learnt if isinstance(learnt, Learnt) else None)
    # what is left: due now (the budget ran out) or later (retries, other tasks' holds)
    upcoming = Message.select(fn.MIN(Message.next_attempt_at)).where(
        (Message.channel == name) & (Message.status == "queued") & Message.next_attempt_at.is_null(False)).scalar()
    if upcoming is not None:
        with atomic():
            schedule(tenant, name, max(upcoming, utcnow()))
