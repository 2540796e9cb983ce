"""The Mailgun-compatible HTTP provider (``[settings.email] transport = "mailgun"``):
sending one stored message through the ``messages.mime`` endpoint (our MIME bytes as
they are, so the Message-ID and threading headers are ours), and the signature of the
provider's webhooks.

Why ``messages.mime`` and not the form API: the form API builds its own MIME, and the
Message-ID fixed before the first attempt (threading, deduplication by the receiver)
would not survive it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import requests

from crm_plugins.channels.contrib import PermanentFailure, TemporaryFailure
from crm_plugins.email.contrib import EmailProvider

#: a webhook older (or further in the future) than this is refused: a replayed capture
MAX_AGE_SECONDS = 15 * 60


def problem(conf: dict[str, Any]) -> str | None:
    if not conf["api_key"] or not conf["api_domain"]:
        return "the mailgun transport needs settings.email api_key and api_domain"
    return None


def send(conf: dict[str, Any], message: Any, mime: bytes, recipients: list[str]) -> str | None:
    """POST the MIME message; the provider's id of it. 429, 5xx and connection trouble
    are temporary; any other refusal is permanent, with the provider's words."""
    url = f"{conf['api_url'].rstrip('/')}/v3/{conf['api_domain']}/messages.mime"
    try:
        answer = requests.post(url, auth=("api", conf["api_key"]), data={"to": recipients},
                               files={"message": ("message.mime", mime, "message/rfc822")},
                               timeout=min(conf["timeout_seconds"], 60))
    except requests.RequestException as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}"[:500]) from None
    reason = f"{answer.status_code} {_words(answer)}".strip()
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TemporaryFailure(reason)
    if answer.status_code in (401, 403):
        raise PermanentFailure(f"{reason} (the provider refused the api_key)")
    if not 200 <= answer.status_code < 300:
        raise PermanentFailure(reason)
    try:
        return str(answer.json().get("id") or "")[:500] or None
    except ValueError:
        return None


def _words(answer: requests.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        return answer.text[:300]
    return str(data.get("message") or data)[:300] if isinstance(data, dict) else str(data)[:300]


def signature_for(key: str, timestamp: str, token: str) -> str:
    """The provider's signature: HMAC-SHA256 of timestamp + token, hex."""
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def signed(key: str, timestamp: Any, token: Any, signature: Any) -> bool:
    """Whether a webhook carries a valid, fresh signature of ``key``."""
    if not key or not all(isinstance(v, str) and v for v in (timestamp, token, signature)):
        return False
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= MAX_AGE_SECONDS and hmac.compare_digest(signature_for(key, timestamp, token), signature)


MAILGUN = EmailProvider(name="mailgun", label="Mailgun (HTTP API)", send=send, problem=problem)
