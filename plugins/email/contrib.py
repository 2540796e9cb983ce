"""The email plugin's contract for other plugins: an HTTP sending provider registered
through ``crm_email_providers`` (see hookspecs.py). A provider plugin imports this
module and ``crm_plugins.channels.contrib`` (for the failures), nothing else of email.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class EmailProvider:
    """A way of sending email other than SMTP: a provider's HTTP API.

    ``send(conf, message, mime_bytes, recipients) -> str | None`` hands ONE stored
    outbound message (its MIME bytes, Message-ID and threading headers fixed, the same on
    every attempt) to the provider and returns the provider's id of it (or None); it
    raises ``channels.contrib.TemporaryFailure`` (retried with backoff) or
    ``PermanentFailure`` (failed with the reason). ``conf`` is the tenant's
    ``[settings.email]``. ``problem(conf)`` says what is missing in the settings (None:
    ready), shown as a 422 before a message is queued.
    """

    name: str  # the value of [settings.email] transport, e.g. "mailgun"
    label: str
    send: Callable[[dict[str, Any], Any, bytes, list[str]], str | None]
    problem: Callable[[dict[str, Any]], str | None] = lambda conf: None
