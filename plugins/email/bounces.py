"""Bounces: a delivery status notification (RFC 3464, ``multipart/report;
report-type=delivery-status``) found in the mailbox marks the recipient's address
undeliverable with the server's reason and the original message failed. Sending to an
undeliverable address is refused (422) until an admin marks it fixed."""

from __future__ import annotations

import re
from email.message import Message as MimeMessage
from typing import Any

import crm_plugins.channels.contrib as channels
from crm_plugins.email.models import Undeliverable
from crmcore.sdk import utcnow

MSGID = re.compile(r"<[^<>\s]+>")


def is_report(mime: MimeMessage) -> bool:
    return mime.get_content_type() == "multipart/report" and (mime.get_param("report-type") or "").lower() == "delivery-status"


def _fields(part: Any) -> list[dict[str, str]]:
    """The per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    groups = []
    if isinstance(payload, list):  # the email package parses each group as a message
        for block in payload[1:]:
            groups.append({k.lower(): str(v) for k, v in block.items()})
    else:
        text = payload if isinstance(payload, str) else part.get_payload(decode=True).decode("utf-8", "replace")
        for block in re.split(r"\r?\n\r?\n", text.strip())[1:]:
            group = {}
            for line in re.split(r"\r?\n(?![ \t])", block):
                if ":" in line:
                    key, value = line.split(":", 1)
                    group[key.strip().lower()] = " ".join(value.split())
            groups.append(group)
    return groups


def handle(tenant: Any, mime: MimeMessage) -> int:
    """Record the hard bounces of a DSN; the number of addresses marked."""
    failed: list[tuple[str, str]] = []
    original_id = None
    for part in mime.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for group in _fields(part):
                if group.get("action", "").lower() != "failed":
                    continue  # delayed, delivered, relayed: not a bounce
                address = group.get("final-recipient") or group.get("original-recipient") or ""
                address = address.split(";", 1)[-1].strip().strip("<>").lower()
                reason = " ".join(x for x in (group.get("status", ""), group.get("diagnostic-code", "").split(";", 1)[-1].strip()) if x)
                if address:
                    failed.append((address, reason or "bounced"))
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            text = str(inner[0]) if isinstance(inner, list) and inner else (inner if isinstance(inner, str) else "")
            match = re.search(r"(?im)^Message-ID:\s*(<[^<>\s]+>)", text)
            original_id = match.group(1) if match else original_id
    for address, reason in failed:
        mark(address, reason)
    if failed and original_id:
        original = channels.message_by_channel_id("email", original_id)
        if original is not None and original.direction == "out":
            channels.mark_failed(tenant, original, f"bounced: {failed[0][1]}"[:2000])
    return len(failed)


def mark(address: str, reason: str) -> None:
    from crmcore.sdk import require_tenant_id

    updated = Undeliverable.update(reason=reason[:1000], bounced_at=utcnow()).where(Undeliverable.address == address).execute()
    if not updated:
        Undeliverable.insert(address=address[:320], reason=reason[:1000], bounced_at=utcnow(), tenant=require_tenant_id()).on_conflict_ignore().execute()


def undeliverable(addresses: list[str]) -> dict[str, str]:
    """{address: reason} of the given addresses that bounced and are not fixed."""
    wanted = [a.lower() for a in addresses]
    if not wanted:
        return {}
    return {u.address: u.reason for u in Undeliverable.select().where(Undeliverable.address.in_(wanted))}
