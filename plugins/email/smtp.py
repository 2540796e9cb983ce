"""Email out: checking a draft (addresses, one-line headers, Message-ID fixed now) and
sending one message over SMTP, its failures sorted into temporary and permanent."""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses
from typing import Any

from email_validator import EmailNotValidError, validate_email

from crm_plugins.channels.contrib import PermanentFailure, Refused, TemporaryFailure, opted_out
from crmcore import sdk

PLUGIN = "email"


def settings(tenant: Any) -> dict[str, Any]:
    return dict(sdk.settings(tenant, PLUGIN))


def check_addresses(field: str, values: list[str], problems: dict[str, list[str]]) -> list[str]:
    """Each value as ``Name <address>`` or ``address``, validated (email-validator,
    no DNS); a CR or LF anywhere is refused (header injection)."""
    out = []
    for raw in values:
        if "\r" in raw or "\n" in raw:
            problems.setdefault(field, []).append(f"{raw[:80]!r}: CR or LF is not allowed")
            continue
        parsed = getaddresses([raw])
        if len(parsed) != 1 or not parsed[0][1]:
            problems.setdefault(field, []).append(f"{raw[:80]!r} is not one email address")
            continue
        name, address = parsed[0]
        try:
            address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.setdefault(field, []).append(f"{address[:80]}: {exc}")
            continue
        out.append(formataddr((name, address)) if name else address)
    return out


def prepare(tenant: Any, draft: dict[str, Any]) -> dict[str, Any]:
    """The channel's check of an outbound draft; fixes the sender and the Message-ID."""
    conf = settings(tenant)
    problems: dict[str, list[str]] = {}
    from crm_plugins.email import providers

    transport_problem = providers.problem(tenant, conf)
    if not conf["from_address"] or transport_problem:
        problems["channel"] = [transport_problem or "email sending is not configured for this tenant (settings.email from_address)"]
    to = check_addresses("to", draft["to"], problems)
    cc = check_addresses("cc", draft["cc"], problems)
    if not problems:
        from crm_plugins.email import bounces

        for field, values in (("to", to), ("cc", cc)):
            bounced = bounces.undeliverable([a for _, a in getaddresses(values)])
            for address, reason in bounced.items():
                problems.setdefault(field, []).append(f"{address} bounced ({reason}): fix the address, or mark it fixed on the email admin page")
    marketing = draft.get("purpose") == "marketing"
    if not problems:  # the channels consent record: an unsubscribe (marketing) or "no messages at all"
        opted = opted_out([a for _, a in getaddresses(to + cc)], "marketing" if marketing else "sales")
        for address, row in sorted(opted.items()):
            what = "unsubscribed from marketing email" if row.scope == "marketing" else "asked for no messages at all"
            problems.setdefault("to", []).append(f"{address} {what}")
    if not problems and marketing:
        if len(to) != 1 or cc:
            problems.setdefault("to", []).append("marketing email goes to one recipient (its unsubscribe link is theirs)")
    if problems:
        raise Refused(problems)
    from crm_plugins.email import reply_tokens

    message_id, token = reply_tokens.new_message_id(conf["from_address"].rsplit("@", 1)[1].lower())
    prepared = {
        "to": to, "cc": cc,
        "sender": formataddr((conf["from_name"], conf["from_address"])) if conf["from_name"] else conf["from_address"],
        "message_id": message_id, "headers": {},
    }
    reply_address = reply_tokens.reply_to(conf["from_address"], token) if conf["reply_tokens"] else None
    if reply_address:
        prepared["headers"]["Reply-To"] = formataddr((conf["from_name"], reply_address)) if conf["from_name"] else reply_address
    from markupsafe import escape

    from crm_plugins.email.models import Signature

    signature = Signature.get_or_none(Signature.user == draft["author_id"]) if draft.get("author_id") else None
    if signature is not None and signature.text.strip():
        text = signature.text.strip()  # "-- " (RFC 3676): clients recognise and fold it
        prepared["body_text"] = f"{draft['body_text'].rstrip()}\n\n-- \n{text}\n"
        if draft["body_html"]:
            lines = "<br>".join(str(escape(line)) for line in text.splitlines())
            prepared["body_html"] = f'{draft["body_html"]}<div class="signature">-- <br>{lines}</div>'
    if marketing:
        from crm_plugins.email import unsubscribe

        link = unsubscribe.link_for(tenant, getaddresses(to)[0][1])
        prepared["headers"].update({"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        prepared["body_text"] = f"{prepared.get('body_text', draft['body_text']).rstrip()}\n\n--\nUnsubscribe: {link}\n"
        html = prepared.get("body_html", draft["body_html"])
        if html:
            prepared["body_html"] = f'{html}<p style="font-size:small"><a href="{escape(link)}">Unsubscribe</a></p>'
    return prepared


def build(message: Any) -> EmailMessage:
    """The MIME message of a stored outbound message (the same bytes on every attempt
    but the Date: the Message-ID and threading headers are stored)."""
    mime = EmailMessage()
    mime["From"] = message.sender
    mime["To"] = ", ".join(message.recipients)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    mime["Subject"] = message.subject
    mime["Message-ID"] = message.message_id
    mime["Date"] = format_datetime(message.created_at.replace(tzinfo=dt.UTC))
    if message.in_reply_to:
        mime["In-Reply-To"] = message.in_reply_to
    if message.references:
        mime["References"] = " ".join(message.references)
    for name, value in (message.headers or {}).items():
        mime[name] = value
    mime.set_content(message.body_text or "")
    if message.body_html:
        mime.add_alternative(message.body_html, subtype="html")
    return mime


def _connect(conf: dict[str, Any]) -> smtplib.SMTP:
    timeout = conf["timeout_seconds"]
    if conf["smtp_security"] == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(conf["smtp_host"], conf["smtp_port"], timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(conf["smtp_host"], conf["smtp_port"], timeout=timeout)
        if conf["smtp_security"] == "starttls":
            client.starttls(context=ssl.create_default_context())
    if conf["smtp_user"]:
        client.login(conf["smtp_user"], conf["smtp_password"])
    return client


def _reason(code: int, text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


#: Each worker thread keeps its last SMTP connection open for the next message (the
#: connect, EHLO, STARTTLS, login and QUIT were half the cost of a send); one idle for
#: more than a second is checked with a NOOP first, so a send rarely starts on a
#: connection the server dropped (and if it does, that is a temporary failure: retried).
_local = threading.local()
IDLE_SECONDS = 30.0
FRESH_SECONDS = 1.0


def _client(conf: dict[str, Any]) -> smtplib.SMTP:
    key = (conf["smtp_host"], conf["smtp_port"], conf["smtp_security"], conf["smtp_user"], conf["smtp_password"])
    cached = getattr(_local, "smtp", None)
    if cached is not None:
        cached_key, client, used = cached
        _local.smtp = None
        idle = time.monotonic() - used
        if cached_key == key and idle < IDLE_SECONDS:
            if idle < FRESH_SECONDS:
                return client  # just used: a broken one fails the send as a temporary failure
            try:
                if client.noop()[0] == 250:
                    return client
            except (smtplib.SMTPException, OSError):
                pass
        _close(client)
    return _connect(conf)


def _keep(conf: dict[str, Any], client: smtplib.SMTP) -> None:
    key = (conf["smtp_host"], conf["smtp_port"], conf["smtp_security"], conf["smtp_user"], conf["smtp_password"])
    _local.smtp = (key, client, time.monotonic())


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def send(tenant: Any, message: Any, conversation: Any) -> None:
    """Send one message over SMTP (4xx and connection trouble are temporary, 5xx
    permanent), or through the tenant's HTTP provider (``transport``)."""
    conf = settings(tenant)
    mime = build(message)
    if conf["transport"] != "smtp":  # an HTTP provider (crm_email_providers)
        from crm_plugins.email import providers

        return providers.send(tenant, conf, message, mime)
    rcpts = [a for _, a in getaddresses(list(message.recipients) + list(message.cc or []))]
    client, clean = None, False
    try:
        client = _client(conf)
        refused = client.send_message(mime, from_addr=conf["from_address"], to_addrs=rcpts)
        clean = True
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [(code, text) for code, text in exc.recipients.values()]
        reason = "; ".join(_reason(c, t) for c, t in codes)
        if any(400 <= c < 500 for c, _ in codes):
            raise TemporaryFailure(reason) from None
        raise PermanentFailure(reason) from None
    except smtplib.SMTPResponseException as exc:
        reason = _reason(exc.smtp_code, exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise TemporaryFailure(reason) from None
        raise PermanentFailure(reason) from None
    except (smtplib.SMTPException, OSError) as exc:
        if client is not None:
            client.close()
            client = None
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None
    finally:
        if client is not None:
            try:
                if not clean:
                    client.rset()  # a refused transaction leaves nothing behind for the next
                _keep(conf, client)
            except (smtplib.SMTPException, OSError):
                client.close()
    if refused:
        # Some recipients took it: the message is sent; the refusals are noted.
        message.failure_reason = "; ".join(f"{a}: {_reason(c, t)}" for a, (c, t) in refused.items())
