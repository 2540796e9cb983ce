"""System mail (crmcore.system_mail): [mail] in crm.toml, sent through the task queue to
an aiosmtpd server on loopback; the daily notification digest (crmcore.accounts)."""

from __future__ import annotations

import pytest

from crmcore import accounts, auth, db, notifications
from crmcore.config import ConfigError
from crmcore.models import Task, User
from crmcore.sdk import send_system_mail
from crmcore.system_mail import MailNotConfigured
from crmcore.testing import drain_tasks, in_tenant
from tests.plugins.channels.conftest import SmtpServer


@pytest.fixture
def smtp():
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mail_env(crm_env, smtp):
    crm_env.write_instance(mail={"host": "127.0.0.1", "port": smtp.port, "security": "none",
                                 "from_address": "crm@example.test", "from_name": "Example CRM", "timeout_seconds": 5})
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.create_app()
    return crm_env


def test_system_mail_goes_through_the_queue_to_smtp(mail_env, smtp):
    with in_tenant(mail_env) as tenant:
        task = send_system_mail("ada@example.com", "Hello", "Body text", tenant=tenant)
        assert task.kind == "core:system_mail"
    assert smtp.accepted == []  # nothing sent before the worker runs
    assert drain_tasks(mail_env) == 1
    [message] = smtp.accepted
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Hello"
    assert message["From"] == "Example CRM <crm@example.test>"
    assert message["Message-ID"] == f"<crm-system-{task.id}@example.test>"
    assert message.get_content().strip() == "Body text"


def test_a_temporary_failure_is_retried_a_permanent_one_is_not(mail_env, smtp):
    smtp.replies = ["451 try later"]
    with in_tenant(mail_env):
        send_system_mail("ada@example.com", "Retried", "x")
    drain_tasks(mail_env)
    assert [m["Subject"] for m in smtp.accepted] == ["Retried"]
    assert smtp.attempts == 2
    smtp.replies = ["550 no such user"]
    with in_tenant(mail_env):
        task = send_system_mail("nobody@example.com", "Refused", "x")
    drain_tasks(mail_env)
    with mail_env.app.app_context(), db.connection():
        assert Task.get_by_id(task.id).status == "done"
    assert smtp.attempts == 3


def test_bad_input_is_refused_and_an_idempotency_key_queues_once(mail_env, smtp):
    from crmcore.sdk import Invalid

    with in_tenant(mail_env):
        with pytest.raises(Invalid) as refused:
            send_system_mail("a@example.com\r\nBcc: x@example.com", "Hi\nthere", "x")
        assert set(refused.value.errors) == {"to", "subject"}
        first = send_system_mail("a@example.com", "Once", "x", idempotency_key="once")
        again = send_system_mail("a@example.com", "Once", "x", idempotency_key="once")
        assert first.id == again.id
    drain_tasks(mail_env)
    assert len(smtp.accepted) == 1


def test_without_a_mail_host_nothing_is_queued(crm_env):
    crm_env.write_tenant("acme")
    crm_env.create_app()
    with in_tenant(crm_env):
        with pytest.raises(MailNotConfigured):
            send_system_mail("a@example.com", "Hi", "x")
        assert not Task.select().exists()


def test_a_bad_mail_setting_stops_startup_with_the_key(crm_env):
    crm_env.write_instance(mail={"host": "smtp.example.test", "security": "ssl-please"})
    with pytest.raises(ConfigError) as failed:
        crm_env.create_app()
    assert "mail.security" in str(failed.value)


def test_the_daily_digest_is_claimed_once_per_user_and_day(mail_env, smtp):
    with in_tenant(mail_env) as tenant:
        wants = auth.create_user(tenant, "wants@acme.test", "secret-pw", name="Wanda")
        muted = auth.create_user(tenant, "no@acme.test", "secret-pw")
        idle = auth.create_user(tenant, "idle@acme.test", "secret-pw")
        User.update(digest_daily=True).where(User.id.in_([wants.id, idle.id])).execute()
        for n in range(accounts.DIGEST_LIMIT + 3):
            notifications.notify(tenant, [wants.id, muted.id], title=f"Note {n}")
        assert accounts.send_digests(tenant) == 1  # idle has nothing unread, muted wants none
        assert accounts.send_digests(tenant) == 0  # the day is claimed
    drain_tasks(mail_env)
    [digest] = smtp.accepted
    assert digest["To"] == "wants@acme.test"
    assert digest["Subject"] == f"Acme Ltd: {accounts.DIGEST_LIMIT + 3} unread notifications"
    body = digest.get_content()
    assert f"- Note {accounts.DIGEST_LIMIT + 2}" in body and "- Note 0\n" not in body
    assert "... and 3 more." in body
