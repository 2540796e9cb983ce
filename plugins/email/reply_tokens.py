"""Reply-address tokens (plus addressing): with ``[settings.email] reply_tokens`` on,
an outbound message's ``Reply-To`` is ``local+<token>@domain`` of the sender's address,
the token being the random part of its Message-ID. A reply whose client dropped
In-Reply-To and References (some webmail, a forward, a reply from another device) still
names the token in its recipients, and threads onto the conversation.

Threading order (issue 11): References / In-Reply-To first, then the token, then the
subject and sender (the channels plugin's last resort). The token is no secret beyond
the Message-ID itself, which every participant of the thread already sees in the
headers: it gives no more than a References header would.
"""

from __future__ import annotations

import re
import uuid
from email.utils import getaddresses
from typing import Any

import crm_plugins.channels.contrib as channels

TOKEN_ADDRESS = re.compile(r"^[^@+\s]+\+([0-9a-f]{32})@([^@\s]+)$", re.IGNORECASE)
#: at most this many of a message's own threading ids are looked up before the token
LOOKED_UP = 10


def new_message_id(domain: str) -> tuple[str, str]:
    """A Message-ID whose random part is the reply token: (message_id, token)."""
    token = uuid.uuid4().hex
    return f"<{token}@{domain}>", token


def reply_to(from_address: str, token: str) -> str | None:
    """``local+token@domain`` of the sender's address (None when it has a ``+`` already)."""
    local, _, domain = from_address.rpartition("@")
    if not local or "+" in local:
        return None
    return f"{local}+{token}@{domain}"


def addresses_of(mime_headers: dict[str, str]) -> list[str]:
    """The recipient addresses of an inbound message (To, Cc, Delivered-To, X-Original-To)."""
    values = [mime_headers.get(name, "") for name in ("to", "cc", "delivered-to", "x-original-to")]
    return [address for _, address in getaddresses([v for v in values if v]) if address]


def thread_by_token(data: dict[str, Any], recipients: list[str]) -> None:
    """When the message's own threading headers name no message we know, and one of its
    recipients carries a token of one of our messages, thread it as a reply to that one
    (``data["in_reply_to"]``). A constant number of lookups per message."""
    tokens = [m for m in (TOKEN_ADDRESS.match(a.strip()) for a in recipients) if m]
    if not tokens:
        return
    own = [i for i in [data.get("in_reply_to"), *reversed(data.get("references") or [])] if i][:LOOKED_UP]
    if any(channels.message_by_channel_id("email", i) is not None for i in own):
        return
    for match in tokens[:5]:
        message_id = f"<{match.group(1).lower()}@{match.group(2).lower()}>"
        known = channels.message_by_channel_id("email", message_id)
        if known is not None and known.direction == "out":
            data["in_reply_to"] = message_id
            return
