"""System mail: the instance's own messages to its users (invitations, password resets,
the daily notification digest), sent through the SMTP server of ``[mail]`` in crm.toml.

This is not the email plugin's customer mail (a tenant's own SMTP server, its outbox,
the timeline): it needs no plugin, and every tenant's system mail leaves from the one
server the operator configured.

``send_system_mail(to, subject, text)`` only enqueues a ``core:system_mail`` task (so a
request or a receiver never waits on SMTP, and a message is not lost when the server is
down); the worker sends it, retried with backoff. The handler is not transactional and
may run twice after a crash: the message's ``Message-ID`` is derived from the task, so a
duplicate is recognisable as one by the receiving side. A recipient the server refuses
for good (5xx) is logged and not retried: retrying cannot change the answer.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any, Mapping

from crmcore import db
from crmcore.db import Tenant
from crmcore.entities.errors import Invalid

log = logging.getLogger("crmcore.system_mail")

TASK_KIND = "core:system_mail"
SUBJECT_MAX = 250
TEXT_MAX = 100_000


class MailNotConfigured(RuntimeError):
    """crm.toml has no ``[mail]`` host: system mail cannot be sent."""


def _settings() -> Mapping[str, Any]:
    from crmcore.app import crm_state

    return crm_state().config.instance.mail


def configured() -> bool:
    """Whether the instance has an SMTP server for system mail."""
    return bool(_settings()["host"])


def send_system_mail(to: str, subject: str, text: str, *, tenant: Tenant | None = None, idempotency_key: str | None = None) -> Any:
    """Queue a plain-text system email to ``to``; returns the task.

    Inside :func:`crmcore.db.atomic` the message is queued only if the surrounding work
    commits. ``idempotency_key`` makes a repeated call queue nothing more. Raises
    :class:`MailNotConfigured` when crm.toml has no ``[mail]`` host and :class:`Invalid`
    for an address or subject that cannot be sent (a line break in it, say)."""
    from crmcore.tasks import enqueue

    if not configured():
        raise MailNotConfigured("system mail is off: set [mail] host in config/crm.toml")
    errors: dict[str, list[str]] = {}
    if not isinstance(to, str) or "@" not in to or any(c in to for c in "\r\n,;<>") or len(to) > 254:
        errors["to"] = ["One email address."]
    if not isinstance(subject, str) or not subject.strip() or any(c in subject for c in "\r\n") or len(subject) > SUBJECT_MAX:
        errors["subject"] = [f"One line of text, at most {SUBJECT_MAX} characters."]
    if not isinstance(text, str) or len(text) > TEXT_MAX:
        errors["text"] = [f"Text of at most {TEXT_MAX} characters."]
    if errors:
        raise Invalid(errors)
    tenant = tenant if tenant is not None else db.current_tenant()
    return enqueue(TASK_KIND, {"to": to.strip(), "subject": subject.strip(), "text": text}, tenant=tenant,
                   idempotency_key=idempotency_key)


def compose(settings: Mapping[str, Any], task_id: int, to: str, subject: str, text: str) -> EmailMessage:
    """The message of task ``task_id``: the same Message-ID on every attempt."""
    message = EmailMessage()
    message["From"] = formataddr((settings["from_name"], settings["from_address"]))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = settings["from_address"].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<crm-system-{task_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # no auto-replies to a machine's message
    message.set_content(text)
    return message


def _connect(settings: Mapping[str, Any]) -> smtplib.SMTP:
    timeout = settings["timeout_seconds"]
    if settings["security"] == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings["host"], settings["port"], timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(settings["host"], settings["port"], timeout=timeout)
        if settings["security"] == "starttls":
            client.starttls(context=ssl.create_default_context())
    if settings["username"]:
        client.login(settings["username"], settings["password"])
    return client


def deliver(task: Any) -> None:
    """Task handler of ``core:system_mail``: one message over SMTP. A temporary failure
    (4xx, connection refused, timeout) raises, so the queue retries it with backoff."""
    from crmcore.tasks import payload_of

    settings = _settings()
    if not settings["host"]:
        raise MailNotConfigured("system mail is off: set [mail] host in config/crm.toml")
    payload = payload_of(task)
    message = compose(settings, task.id, payload["to"], payload["subject"], payload["text"])
    client = _connect(settings)
    try:
        client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            log.warning("system mail task %s: %s refused for good (%s); not retried", task.id, payload["to"], codes)
            return
        raise
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            log.warning("system mail task %s to %s refused for good: %s %s", task.id, payload["to"], exc.smtp_code, exc.smtp_error)
            return
        raise
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass
