"""The consent record every channel shares (``channels_consent``, one row per address):
who opted out of what, when, through which channel, saying what.

``scope`` says what an opt-out covers: ``all`` (an SMS STOP: no message of any kind) or
``marketing`` (an email unsubscribe: a rep's own mail still goes). A channel refuses an
opted-out address before it queues a message (its ``prepare``), and the outbox checks
the batch it is about to send (``blocked``), so an opt-out that arrives while a message
waits (quiet hours, a retry) is honoured: the message fails with the reason.
"""

from __future__ import annotations

from typing import Any

from crm_plugins.channels.models import Consent
from crmcore.sdk import require_tenant_id, utcnow

SCOPES = ("all", "marketing")


def _key(address: str) -> str:
    return (address or "").strip().lower()[:320]


def opted_out(addresses: list[str], purpose: str = "sales") -> dict[str, Any]:
    """{address as given: Consent row} of the addresses that may not get ``purpose``."""
    wanted = {_key(a): a for a in addresses if a}
    if not wanted:
        return {}
    covers = (Consent.scope == "all") | (Consent.scope == "marketing") if purpose == "marketing" else (Consent.scope == "all")
    rows = Consent.select().where(Consent.address.in_(sorted(wanted)) & (Consent.opted_out == True) & covers)  # noqa: E712
    return {wanted[row.address]: row for row in rows}


def set_consent(address: str, *, opted_out: bool, channel: str, source: str = "", scope: str = "all") -> bool:
    """Record an opt-out of ``scope`` (or an opt back in); True when the address's
    marketing consent changed."""
    if scope not in SCOPES:
        raise ValueError(f"scope is one of {SCOPES}")
    key = _key(address)
    before = Consent.get_or_none(Consent.address == key)
    was_out = before is not None and before.opted_out
    if opted_out and was_out and before.scope == "all":
        scope = "all"  # unsubscribing from marketing does not narrow "no messages at all"
    values = {"opted_out": opted_out, "channel": channel[:30], "source": source[:200], "changed_at": utcnow(), "scope": scope}
    Consent.insert(address=key, tenant=require_tenant_id(), **values).on_conflict(
        conflict_target=[Consent.tenant, Consent.address], update=values).execute()
    return was_out != opted_out


def blocked(messages: list[Any], address_of: Any = None) -> dict[int, str]:
    """{message id: reason} of the outbound ``messages`` one of whose recipients opted
    out of their purpose since they were queued; one query for the batch.
    ``address_of``: the channel's ``consent_address`` (SMS: ``whatsapp:+1...`` is kept
    in consent as ``+1...``)."""
    if not messages:
        return {}

    def _bare(address: str) -> str:
        return _key(address_of(address)) if address_of is not None else _bare_email(address)

    addresses = {_bare(a) for m in messages for a in [*(m.recipients or []), *(m.cc or [])]}
    rows = {r.address: r for r in Consent.select().where(Consent.address.in_(sorted(addresses)) & (Consent.opted_out == True))}  # noqa: E712
    if not rows:
        return {}
    reasons = {}
    for message in messages:
        for address in [*(message.recipients or []), *(message.cc or [])]:
            row = rows.get(_bare(address))
            if row is not None and (row.scope == "all" or message.purpose == "marketing"):
                what = "all messages" if row.scope == "all" else "marketing"
                reasons[message.id] = f"{_bare(address)} opted out of {what} ({row.channel}, {row.changed_at:%Y-%m-%d %H:%M} UTC)"
                break
    return reasons


def _bare_email(address: str) -> str:
    """The address of ``Name <address>`` (an email recipient), lower case."""
    if "<" in address and address.rstrip().endswith(">"):
        address = address.rsplit("<", 1)[1].rstrip().rstrip(">")
    return _key(address)
