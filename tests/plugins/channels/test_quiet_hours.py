"""Quiet hours: a non-urgent outbound message waits in the outbox until the recipient's
window ends (their contact's time zone, else the tenant's); it is held, not dropped."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from crm_plugins.channels.models import Message
from crm_plugins.channels.quiet_hours import parse_window, quiet_until
from crmcore import db
from crmcore.models import Task
from crmcore.sdk import Contact, create_record, utcnow
from crmcore.tasks import Worker
from tests.plugins.channels.conftest import email_settings, in_tenant, make_lead

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_window_ends_at_its_local_time_overnight_within_a_day_and_across_a_dst_change():
    night = parse_window("21:00-08:00")
    # 23:00 in Berlin the night clocks go forward (29 March 2026): 08:00 CEST is 06:00 UTC
    assert quiet_until(night, BERLIN, dt.datetime(2026, 3, 28, 22, 0)) == dt.datetime(2026, 3, 29, 6, 0)
    # 05:00 in Berlin in winter: the same morning, 08:00 CET is 07:00 UTC
    assert quiet_until(night, BERLIN, dt.datetime(2026, 1, 10, 4, 0)) == dt.datetime(2026, 1, 10, 7, 0)
    assert quiet_until(night, BERLIN, dt.datetime(2026, 1, 10, 7, 0)) is None  # 08:00 sharp: open
    assert quiet_until(night, BERLIN, dt.datetime(2026, 1, 10, 19, 59)) is None  # 20:59 local
    lunch = parse_window("12:00-14:00")
    assert quiet_until(lunch, ZoneInfo("UTC"), dt.datetime(2026, 1, 10, 12, 30)) == dt.datetime(2026, 1, 10, 14, 0)
    assert quiet_until(lunch, ZoneInfo("UTC"), dt.datetime(2026, 1, 10, 14, 0)) is None
    assert parse_window("") is None and quiet_until(None, BERLIN, dt.datetime(2026, 1, 1)) is None
    for bad in ("21-08", "25:00-08:00", "08:00-08:00", "21:00 - 08:00"):
        with pytest.raises(ValueError):
            parse_window(bad)


def window_around_now() -> str:
    """A two-hour UTC window the present falls in (wrapping over midnight as needed)."""
    hour = utcnow().hour
    return f"{(hour - 1) % 24:02d}:00-{(hour + 1) % 24:02d}:00"


def quiet_env(crm_env, smtp, quiet_hours: str):
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={
        "email": email_settings(smtp.port),
        "channels": {"send_attempts": 3, "retry_seconds": 0.05, "quiet_hours": quiet_hours, "time_zone": "UTC"}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=[])


@pytest.fixture
def env(crm_env, smtp):
    quiet_env(crm_env, smtp, window_around_now())
    crm_env.create_app()
    return crm_env


def run_due_tasks(env) -> int:
    """Run the tasks due now (a drain task queued for the window's end stays queued)."""
    worker, ran = Worker(env.crm, worker_id="test-worker"), 0
    with db.database.connection_context():
        while worker.run_one() is not None:
            ran += 1
    return ran


def opening_of_window_around_now() -> dt.datetime:
    now = utcnow()
    opening = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return opening


def test_a_message_in_quiet_hours_waits_and_goes_when_they_end_an_urgent_one_goes_now(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")  # a lead has no time zone: the tenant's (UTC)
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Hello", "body": "Hello Ada"}
    waiting = admin("POST", "/messages", json=send, status=201)
    assert waiting["status"] == "queued" and waiting["urgent"] is False
    assert waiting["waiting_until"].startswith(opening_of_window_around_now().isoformat()[:16])
    urgent = admin("POST", "/messages", json={**send, "subject": "Your server is down", "urgent": True}, status=201)
    assert urgent["waiting_until"] is None
    run_due_tasks(env)
    assert [m["Subject"] for m in smtp.accepted] == ["Your server is down"]
    assert admin("GET", f"/messages/{waiting['id']}")["status"] == "queued"
    refused = admin("POST", "/messages", json={**send, "purpose": "marketing", "urgent": True}, status=422)
    assert "never urgent" in refused["errors"]["json"]["urgent"][0]
    # the record page says how long it waits; its compose form has the urgent box
    client = env.client("acme")
    env.login(client)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert f"(waits until {opening_of_window_around_now():%Y-%m-%d %H:%M} UTC)" in page and 'name="urgent"' in page
    form = {"csrf_token": env.csrf(client), "to": "ada@example.com", "subject": "Call me now", "body": "x", "urgent": "1"}
    assert client.post(f"/app/email/compose/lead/{lead.id}", data=form).status_code == 302
    run_due_tasks(env)
    assert [m["Subject"] for m in smtp.accepted] == ["Your server is down", "Call me now"]
    # the window ends: the settings say so, and the clock reaches the opening
    quiet_env(env, smtp, "")
    env.reload()
    with in_tenant(env):
        Message.update(next_attempt_at=utcnow()).where(Message.id == waiting["id"]).execute()
        Task.update(next_run_at=utcnow()).where(Task.status == "queued").execute()
    run_due_tasks(env)
    assert [m["Subject"] for m in smtp.accepted] == ["Your server is down", "Call me now", "Hello"]
    sent = admin("GET", f"/messages/{waiting['id']}")
    assert sent["status"] == "sent" and sent["attempts"] == 1  # the wait was no attempt


def test_the_contacts_own_time_zone_decides_and_a_message_queued_before_the_window_waits_at_the_outbox(crm_env, smtp):
    quiet_env(crm_env, smtp, "")  # no quiet hours while the messages are queued
    crm_env.create_app()
    from tests.plugins.channels.conftest import Api, token

    admin = Api(crm_env, "acme", token(crm_env))
    hour = utcnow().hour
    # a zone six hours ahead of UTC, without summer time: the window around UTC-now is not theirs
    away_zone = "Asia/Dhaka"
    with in_tenant(crm_env):
        here = create_record(Contact, {"first_name": "Here", "email": "here@example.com", "timezone": "UTC"})
        away = create_record(Contact, {"first_name": "Away", "email": "away@example.com", "timezone": away_zone})
    for contact in (here, away):
        admin("POST", "/messages", json={"channel": "email", "entity": "contact", "record_id": contact.id, "subject": contact.first_name, "body": "Hi"}, status=201)
    quiet_env(crm_env, smtp, f"{(hour - 1) % 24:02d}:00-{(hour + 1) % 24:02d}:00")  # the window begins before the outbox runs
    crm_env.reload()
    run_due_tasks(crm_env)
    assert [m["Subject"] for m in smtp.accepted] == ["Away"]
    with in_tenant(crm_env):
        held = Message.get(Message.subject == "Here")
    assert (held.status, held.attempts, held.held_by) == ("queued", 0, None)
    assert held.next_attempt_at == opening_of_window_around_now()


def test_a_bad_window_or_time_zone_stops_the_config_with_the_key(crm_env, smtp):
    from crmcore.config import ConfigError

    crm_env.write_tenant("acme", plugins=["channels"], settings={"channels": {"quiet_hours": "late-early"}})
    with pytest.raises(ConfigError, match="quiet_hours"):
        crm_env.create_app()
    crm_env.write_tenant("acme", plugins=["channels"], settings={"channels": {"time_zone": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match="time_zone"):
        crm_env.create_app()
