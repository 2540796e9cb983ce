"""Media of MMS and WhatsApp messages: the links sent out (``MediaUrl``, checked before
queueing: how many, what type) and those that come in (``NumMedia``, ``MediaUrlN``,
``MediaContentTypeN``: kept when they are the provider's and of a type we accept).

Kept in the message's ``headers["attachments"]`` (``[{"url", "content_type"}]``), which
the channels plugin's conversation page and timeline entries show.

Outbound links are not fetched by us (a URL a user typed, fetched from the server, would
reach whatever the server can reach); the type is read from the link's file name, and
the provider, which fetches it, reports a size it refuses as an error code (11751),
shown like any other."""

from __future__ import annotations

import mimetypes
import urllib.parse
from typing import Any

from crm_plugins.channels.contrib import Refused

#: what each channel carries (Twilio's fully supported MMS types; WhatsApp's media types)
TYPES = {
    "sms": frozenset({"image/jpeg", "image/png", "image/gif"}),
    "whatsapp": frozenset({"image/jpeg", "image/png", "audio/ogg", "audio/mpeg", "audio/amr", "audio/mp4", "video/mp4",
                           "application/pdf"}),
}
#: how many links one message takes
MAX_COUNT = {"sms": 10, "whatsapp": 1}
MAX_URL = 1000


def _type_of(url: str) -> str | None:
    path = urllib.parse.urlsplit(url).path
    guessed = mimetypes.guess_type(path, strict=False)[0]
    return {"audio/x-wav": None}.get(guessed, guessed)


def check_outbound(channel: str, links: Any) -> list[dict[str, str]]:
    """The ``media`` of a send's ``channel_options``, checked: ``[{"url", "content_type"}]``;
    raises :class:`Refused` (``media``)."""
    if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
        raise Refused({"media": ["a list of links (https://...)"]})
    if len(links) > MAX_COUNT[channel]:
        raise Refused({"media": [f"{channel} carries at most {MAX_COUNT[channel]} media per message"]})
    problems: list[str] = []
    checked: list[dict[str, str]] = []
    for number, link in enumerate(links, 1):
        parts = urllib.parse.urlsplit(link.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or len(link) > MAX_URL:
            problems.append(f"{number}: not a public http(s) link of at most {MAX_URL} characters")
            continue
        content_type = _type_of(link)
        if content_type not in TYPES[channel]:
            accepted = ", ".join(sorted(TYPES[channel]))
            problems.append(f"{number}: {content_type or 'a file of unknown type'} is not a type {channel} carries ({accepted}; read from the link's file name)")
            continue
        checked.append({"url": link.strip(), "content_type": content_type})
    if problems:
        raise Refused({"media": problems})
    return checked


def inbound(channel: str, params: dict[str, str], provider_root: str) -> list[dict[str, str]]:
    """The media of an inbound message: each ``{"url", "content_type"}``, or, for one not
    kept, ``{"content_type", "refused": reason}`` (so the inbox says something was sent)."""
    try:
        count = max(0, min(int(params.get("NumMedia") or 0), MAX_COUNT["sms"]))
    except ValueError:
        count = 0
    root = urllib.parse.urlsplit(provider_root)
    found: list[dict[str, str]] = []
    for index in range(count):
        url = params.get(f"MediaUrl{index}", "")
        content_type = (params.get(f"MediaContentType{index}", "") or "").split(";")[0].strip().lower()[:100]
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc) != (root.scheme, root.netloc) or len(url) > MAX_URL:
            found.append({"content_type": content_type, "refused": "not a link of the provider"})
        elif content_type not in TYPES[channel] | TYPES["whatsapp"]:
            found.append({"content_type": content_type, "refused": "a type we do not accept"})
        else:
            found.append({"url": url, "content_type": content_type})
    return found


def form_fields(attachments: list[dict[str, str]]) -> list[tuple[str, str]]:
    """``MediaUrl`` once per link (the Messages API repeats the parameter)."""
    return [("MediaUrl", item["url"]) for item in attachments if item.get("url")]
