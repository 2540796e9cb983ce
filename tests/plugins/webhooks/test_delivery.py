"""Delivery end to end: a loopback receiver verifies the Standard Webhooks signature;
retries, 410, timeouts, redirects, Retry-After, days of failures, rotation, replay."""

from __future__ import annotations

import datetime as dt
import time

import jsonschema
import pytest

from crm_plugins.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from crmcore import db
from crmcore.db import utcnow
from tests.plugins.webhooks.conftest import Api, drain, in_tenant, make_lead, token


def subscribe(admin: Api, receiver, events=("lead_created",)) -> dict:
    created = admin("POST", "/webhooks/endpoints", json={"url": receiver.url, "event_types": list(events), "description": "test"}, status=201)
    assert created["secret"].startswith("whsec_")
    receiver.secrets.append(created["secret"])
    return created


def messages(env, slug="acme") -> list[WebhookMessage]:
    with in_tenant(env, slug):
        return list(WebhookMessage.select().order_by(WebhookMessage.id))


def attempts(env, message_id: int) -> list[WebhookAttempt]:
    with in_tenant(env):
        return list(WebhookAttempt.select().where(WebhookAttempt.message == message_id).order_by(WebhookAttempt.number))


def test_a_lead_created_is_posted_signed_and_matches_its_schema(env, admin, receiver):
    endpoint = subscribe(admin, receiver)
    lead = make_lead(env, "Ada")
    assert drain(env) == 1
    [request] = receiver.requests
    assert request["verified"] == {endpoint["secret"]: True}
    assert request["json"]["type"] == "lead_created"
    assert request["json"]["data"]["record"]["id"] == lead.id and request["json"]["data"]["record"]["name"] == "Ada"
    [message] = messages(env)
    assert request["headers"]["webhook-id"] == message.msg_id and message.status == "delivered"
    schema = next(e for e in admin("GET", "/webhooks/events")["items"] if e["type"] == "lead_created")["schema"]
    jsonschema.validate(request["json"]["data"], schema)
    # The log keeps the attempt with the signature redacted.
    detail = admin("GET", f"/webhooks/deliveries/{message.id}")
    [attempt] = detail["attempt_log"]
    assert attempt["success"] and attempt["status_code"] == 200 and attempt["response_excerpt"] == "ok"
    assert attempt["request_headers"]["webhook-signature"] == "v1,<redacted>"
    assert detail["body"] == request["body"]


def test_hook_crm_webhooks_events(env, admin, receiver, register_plugin):
    """Another plugin's event type is offered, sent with its payload, and checked."""
    from crm_plugins.webhooks.contrib import WebhookEvent
    from crm_plugins.webhooks.hooks import connect_event_signals
    from crmcore.sdk import hookimpl, send_signal

    class Ticketing:
        @hookimpl
        def crm_webhooks_events(self, tenant):
            return [WebhookEvent("ticket_opened", "ticket_opened", lambda ticket_id=None, **_: {"ticket_id": ticket_id}, {"type": "object"}, "A ticket was opened.")]

    register_plugin(Ticketing(), name="ticketing")
    assert connect_event_signals(env.app) == ["ticket_opened"]
    assert "ticket_opened" in [e["type"] for e in admin("GET", "/webhooks/events")["items"]]
    subscribe(admin, receiver, events=["ticket_opened"])
    with in_tenant(env) as tenant:
        send_signal("ticket_opened", tenant, ticket_id=7)
    drain(env)
    assert [r["json"]["data"] for r in receiver.requests] == [{"ticket_id": 7}]


def test_deal_stage_changed_is_delivered_with_stage_names(env, admin, receiver):
    subscribe(admin, receiver, events=["deal_stage_changed"])
    deal = admin("POST", "/deals", json={"title": "Big one"})
    stages = admin("GET", "/pipelines")["items"][0]["stages"]
    target = next(s for s in stages if s["id"] != deal["stage_id"])
    admin("PATCH", f"/deals/{deal['id']}", json={"stage_id": target["id"]})
    drain(env)
    [request] = receiver.requests
    data = request["json"]["data"]
    assert request["json"]["type"] == "deal_stage_changed" and all(request["verified"].values())
    assert data["deal"]["id"] == deal["id"] and data["to_stage_id"] == target["id"] and data["to_stage"] == target["name"]


def test_failures_are_retried_with_the_same_webhook_id(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"status": 500}, {"status": 503}]
    make_lead(env)
    drain(env)
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [receiver.requests[0]["headers"]["webhook-id"]] * 3
    assert all(all(r["verified"].values()) for r in receiver.requests)
    [message] = messages(env)
    assert message.status == "delivered" and message.attempts == 3
    assert [(a.number, a.status_code, a.success) for a in attempts(env, message.id)] == [(1, 500, False), (2, 503, False), (3, 200, True)]


def test_a_message_fails_after_the_schedule_and_can_be_replayed(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"status": 500}] * 4  # the schedule has four attempts
    make_lead(env)
    drain(env)
    [message] = messages(env)
    assert message.status == "failed" and message.attempts == 4
    assert admin("GET", "/webhooks/deliveries?status=failed")["items"][0]["id"] == message.id
    replayed = admin("POST", f"/webhooks/deliveries/{message.id}/replay", status=202)
    assert replayed["status"] == "pending"
    admin("POST", f"/webhooks/deliveries/{message.id}/replay", status=409)  # still pending
    drain(env)
    assert len(receiver.requests) == 5 and receiver.requests[-1]["headers"]["webhook-id"] == message.msg_id
    assert messages(env)[0].status == "delivered"


def test_replay_every_failed_delivery_since_a_time(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"status": 500}] * 8
    make_lead(env, "One")
    make_lead(env, "Two")
    drain(env)
    assert {m.status for m in messages(env)} == {"failed"}
    since = (utcnow() - dt.timedelta(minutes=5)).isoformat()
    assert admin("POST", "/webhooks/deliveries/replay", json={"since": since}, status=202) == {"replayed": 2}
    drain(env)
    assert {m.status for m in messages(env)} == {"delivered"}
    admin("POST", "/webhooks/deliveries/replay", json={"since": "yesterday"}, status=422)
    admin("POST", "/webhooks/deliveries/replay", json={}, status=422)


def test_410_disables_the_endpoint(env, admin, receiver, captured_signals):
    endpoint = subscribe(admin, receiver)
    receiver.replies = [{"status": 410}]
    with captured_signals("webhook_endpoint_disabled") as sent:
        make_lead(env)
        drain(env)
    assert len(receiver.requests) == 1  # not retried
    state = admin("GET", f"/webhooks/endpoints/{endpoint['id']}")
    assert state["enabled"] is False and "410" in state["disabled_reason"]
    assert [s[0] for s in sent] == ["webhook_endpoint_disabled"] and sent[0][2]["endpoint"].id == endpoint["id"]
    make_lead(env, "Later")
    drain(env)
    assert len(receiver.requests) == 1 and len(messages(env)) == 1  # a disabled endpoint gets nothing


def test_days_of_failures_disable_the_endpoint_and_the_page_says_so(env, admin, receiver, captured_signals):
    endpoint = subscribe(admin, receiver)
    with in_tenant(env):
        WebhookEndpoint.update(failing_since=utcnow() - dt.timedelta(days=6)).execute()
    receiver.replies = [{"status": 500}]
    with captured_signals("webhook_endpoint_disabled") as sent:
        make_lead(env)
        drain(env)
    state = admin("GET", f"/webhooks/endpoints/{endpoint['id']}")
    assert state["enabled"] is False and "5 days" in state["disabled_reason"] and len(sent) == 1
    assert messages(env)[0].status == "failed"
    client = env.client("acme")
    env.login(client)
    page = client.get("/app/webhooks/").get_data(as_text=True)
    assert f'data-disabled-banner="{endpoint["id"]}"' in page and "5 days" in page
    # Enabling it again clears the banner and the run of failures.
    admin("PATCH", f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": True})
    assert "data-disabled-banner" not in client.get("/app/webhooks/").get_data(as_text=True)


def test_a_success_ends_the_run_of_failures(env, admin, receiver):
    endpoint = subscribe(admin, receiver)
    receiver.replies = [{"status": 500}]
    make_lead(env)
    drain(env)
    assert admin("GET", f"/webhooks/endpoints/{endpoint['id']}")["failing_since"] is None


def test_a_redirect_is_a_failure_and_is_not_followed(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"status": 302, "headers": {"Location": "http://127.0.0.1:1/elsewhere"}}]
    make_lead(env)
    drain(env)
    [message] = messages(env)
    first = attempts(env, message.id)[0]
    assert first.status_code == 302 and not first.success and "redirect" in first.error
    assert [r["path"] for r in receiver.requests] == ["/hook", "/hook"]


def test_a_slow_receiver_times_out_and_is_retried(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"sleep": 1.5}]
    started = time.monotonic()
    make_lead(env)
    drain(env)
    [message] = messages(env)
    first, second = attempts(env, message.id)
    assert first.status_code is None and "timed out" in first.error and first.duration_ms < 1400
    assert second.success and message.status == "delivered"
    assert time.monotonic() - started < 5


def test_retry_after_is_honoured(env, admin, receiver):
    subscribe(admin, receiver)
    receiver.replies = [{"status": 429, "headers": {"Retry-After": "120"}}]
    make_lead(env)
    with db.database.connection_context():
        from crmcore.tasks import Worker

        Worker(env.crm, worker_id="w").run_one()
    [message] = messages(env)
    assert message.status == "pending" and message.next_attempt_at >= utcnow() + dt.timedelta(seconds=100)


def test_rotation_signs_with_both_secrets_for_a_day(env, admin, receiver):
    endpoint = subscribe(admin, receiver)
    old = endpoint["secret"]
    rotated = admin("POST", f"/webhooks/endpoints/{endpoint['id']}/rotate")
    new = rotated["secret"]
    assert new != old and new.startswith("whsec_")
    receiver.secrets.append(new)
    make_lead(env)
    drain(env)
    request = receiver.requests[-1]
    assert request["verified"] == {old: True, new: True}
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    with in_tenant(env):
        WebhookEndpoint.update(previous_secret_expires_at=utcnow() - dt.timedelta(seconds=1)).execute()
    make_lead(env, "After")
    drain(env)
    assert receiver.requests[-1]["verified"] == {old: False, new: True}
    assert "secret" not in admin("GET", f"/webhooks/endpoints/{endpoint['id']}")


def test_a_worker_that_repeats_a_delivery_task_sends_nothing_twice(env, admin, receiver):
    """A delivery task run again (a worker that lost its lease) finds nothing due."""
    from crm_plugins.webhooks import drain as drain_

    subscribe(admin, receiver)
    make_lead(env)
    drain(env)
    [message] = messages(env)
    with in_tenant(env):
        assert drain_.drain(message.endpoint_id, utcnow() + dt.timedelta(seconds=30)) == 0
    assert len(receiver.requests) == 1


def test_private_addresses_are_checked_again_at_delivery(env, admin, receiver, monkeypatch):
    subscribe(admin, receiver)
    monkeypatch.delenv("CRM_WEBHOOKS_ALLOW_PRIVATE")
    make_lead(env)
    with db.database.connection_context():
        from crmcore.tasks import Worker

        Worker(env.crm, worker_id="w").run_one()
    [message] = messages(env)
    [attempt] = attempts(env, message.id)
    assert receiver.requests == [] and attempt.error.startswith("refused:") and "127.0.0.1" in attempt.error


def test_the_test_event_reaches_the_endpoint(env, admin, receiver):
    endpoint = subscribe(admin, receiver, events=["deal_created"])
    sent = admin("POST", f"/webhooks/endpoints/{endpoint['id']}/test", status=202)
    drain(env)
    assert receiver.requests[0]["json"]["type"] == "webhook_test" and receiver.requests[0]["headers"]["webhook-id"] == sent["msg_id"]
    log = admin("GET", f"/webhooks/deliveries?endpoint_id={endpoint['id']}&event_type=webhook_test&status=delivered")
    assert [m["id"] for m in log["items"]] == [sent["id"]]
    assert admin("GET", "/webhooks/deliveries?event_type=lead_created")["items"] == []


@pytest.mark.parametrize("slug", ["beta"])
def test_a_tenant_without_the_plugin_gets_nothing(env, receiver, slug):
    api = Api(env, slug, token(env, slug))
    api("GET", "/webhooks/endpoints", status=404)
    api("POST", "/webhooks/endpoints", json={"url": receiver.url, "event_types": ["lead_created"]}, status=404)
    make_lead(env, "Beta lead", slug=slug)
    assert messages(env, slug) == []
    client = env.client(slug)
    env.login(client, slug)
    assert client.get("/app/webhooks/").status_code == 404
