"""Batched delivery: one task per endpoint POSTs its due messages in order, a failing
message does not hold up the others, a message is never lost between two tasks, and a
worker that dies holding a batch loses nothing (same ``webhook-id`` when sent again)."""

from __future__ import annotations

import datetime as dt
import time

from crm_plugins.webhooks import delivery
from crm_plugins.webhooks import drain as drain_
from crm_plugins.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from crmcore import db
from crmcore.db import utcnow
from crmcore.models import Task
from tests.plugins.webhooks.conftest import drain, in_tenant, make_lead
from tests.plugins.webhooks.test_delivery import messages, subscribe


def drain_tasks() -> int:
    with db.database.connection_context():
        return Task.select().where(Task.kind == delivery.DRAIN_KIND).count()


def run_due(env) -> None:
    """Run the tasks due now (not the ones queued for later)."""
    from crmcore.tasks import Worker

    worker = Worker(env.crm, worker_id="w")
    with db.database.connection_context():
        while worker.run_one() is not None:
            pass


def test_twenty_events_are_delivered_in_order_by_one_task_and_a_failure_blocks_nothing(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{}] * 4 + [{"status": 500}]  # the 5th POST fails once
    for i in range(20):
        make_lead(env, f"Lead{i:02d}")
    assert drain_tasks() == 1  # 20 events, one queued delivery task for the endpoint
    drain(env)
    sent = [r["json"]["data"]["record"]["name"] for r in receiver.requests]
    names = [f"Lead{i:02d}" for i in range(20)]
    # In order; the failed one (the 5th) did not wait for its retry to let the others go.
    assert sent[:20] == names and sent[20:] == ["Lead04"]
    rows = messages(env)
    assert {m.status for m in rows} == {"delivered"} and [m.attempts for m in rows] == [1] * 4 + [2] + [1] * 15
    with in_tenant(env):
        logged = [(a.message_id, a.number, a.success) for a in WebhookAttempt.select().order_by(WebhookAttempt.message, WebhookAttempt.number)]
    assert len(logged) == 21 and logged[4:6] == [(rows[4].id, 1, False), (rows[4].id, 2, True)]
    assert drain_tasks() == 2  # the batch, and the one its last log queued for the retry


def test_a_message_written_while_a_task_holds_the_batch_gets_its_own_task(env, admin, receiver):
    endpoint = subscribe(admin, receiver)
    make_lead(env, "First")
    with in_tenant(env):
        _, held = drain_.take_due(endpoint["id"], utcnow() + dt.timedelta(seconds=30))  # a task started
    assert len(held) == 1
    before = drain_tasks()
    make_lead(env, "Second")  # after the task read its batch: must not wait for the held one
    assert drain_tasks() == before + 1
    run_due(env)
    assert [r["json"]["data"]["record"]["name"] for r in receiver.requests] == ["Second"]
    first, second = messages(env)
    assert (first.status, second.status) == ("pending", "delivered")
    with db.database.connection_context():  # and a task is queued for when the hold ends
        assert Task.select().where(Task.kind == delivery.DRAIN_KIND, Task.status == "queued", Task.next_run_at >= first.next_attempt_at).exists()


def test_a_worker_that_dies_holding_a_batch_loses_nothing(env, admin, receiver):
    """Held messages are due again when the hold (the task's lease) ends; the next task
    sends them with the same webhook-id."""
    endpoint = subscribe(admin, receiver)
    for i in range(3):
        make_lead(env, f"Lead{i}")
    with in_tenant(env):
        _, held = drain_.take_due(endpoint["id"], utcnow() + dt.timedelta(seconds=0.3))  # then "SIGKILL"
        assert len(held) == 3
        assert drain_.drain(endpoint["id"], utcnow() + dt.timedelta(seconds=30)) == 0  # held: not sent twice
    time.sleep(0.4)
    drain(env)
    rows = messages(env)
    assert {m.status for m in rows} == {"delivered"}
    assert sorted(r["headers"]["webhook-id"] for r in receiver.requests) == sorted(m.msg_id for m in rows)


def test_a_task_queued_by_the_former_version_hands_over_to_the_endpoint_task(env, admin, receiver):
    from crmcore.sdk import enqueue

    subscribe(admin, receiver)
    make_lead(env)
    [message] = messages(env)
    with in_tenant(env):  # as a database upgraded with this task queued looks
        Task.delete().where(Task.kind == delivery.DRAIN_KIND).execute()
        WebhookEndpoint.update(drain_at=None).execute()
        enqueue(delivery.TASK_KIND, {"message_id": message.id, "attempt": 1})
    drain(env)
    assert [m.status for m in messages(env)] == ["delivered"] and len(receiver.requests) == 1


def test_a_task_out_of_time_hands_the_rest_to_the_next_task(env, admin, receiver, monkeypatch):
    monkeypatch.setattr(drain_, "MAX_BATCH_SECONDS", 0.0)  # one POST per task, then out of time
    subscribe(admin, receiver)
    for i in range(3):
        make_lead(env, f"Lead{i}")
    drain(env)
    assert [r["json"]["data"]["record"]["name"] for r in receiver.requests] == ["Lead0", "Lead1", "Lead2"]
    assert {m.status for m in messages(env)} == {"delivered"} and drain_tasks() == 3


def test_a_pending_message_without_a_time_is_due(env, admin, receiver):
    """Written so by an older version: delivered by the next task, not stranded."""
    endpoint = subscribe(admin, receiver)
    make_lead(env)
    with in_tenant(env):
        WebhookMessage.update(next_attempt_at=None).execute()
        assert drain_.drain(endpoint["id"], utcnow() + dt.timedelta(seconds=30)) == 1
    assert [m.status for m in messages(env)] == ["delivered"]
