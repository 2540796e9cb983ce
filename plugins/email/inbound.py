"""Email in: the per-minute poll of the tenant's IMAP mailbox (imap-tools).

Per folder it keeps UIDVALIDITY and the last UID imported: a poll fetches the UIDs after
it, oldest first, and advances the mark in the same transaction as each import, so a
poll that dies midway (a server blip, a worker killed) resumes at the first message not
imported, and nothing is imported twice. A new UIDVALIDITY (the server renumbered the
folder) starts the folder over; Message-IDs already known are skipped then (and always).
A poll that fails counts a failure on the folder; the admin page alerts after
``alert_after_failures`` in a row.
"""

from __future__ import annotations

import logging
import re
from email.utils import getaddresses
from typing import Any

from imap_tools import AND, MailBox, MailBoxStartTls, MailBoxUnencrypted, U

import crm_plugins.channels.contrib as channels
from crm_plugins.email import bounces, reply_tokens
from crm_plugins.email.models import MailboxFolder
from crmcore import sdk
from crmcore.sdk import atomic, utcnow

log = logging.getLogger("crm_plugins.email")
MSGID = re.compile(r"<[^<>\s]+>")


def configured(conf: Any) -> bool:
    return bool(conf["imap_host"] and conf["imap_user"])


def connect(conf: Any) -> Any:
    timeout = min(conf["timeout_seconds"], 60)
    if conf["imap_security"] == "ssl":
        box = MailBox(conf["imap_host"], conf["imap_port"], timeout=timeout)
    elif conf["imap_security"] == "starttls":
        box = MailBoxStartTls(conf["imap_host"], conf["imap_port"], timeout=timeout)
    else:
        box = MailBoxUnencrypted(conf["imap_host"], conf["imap_port"], timeout=timeout)
    return box.login(conf["imap_user"], conf["imap_password"], initial_folder=None)


def _header(msg: Any, name: str) -> str:
    values = msg.headers.get(name.lower()) or ()
    return " ".join(values).strip()


def parsed(msg: Any) -> dict[str, Any]:
    """What the channels plugin stores of a fetched message."""
    message_ids = MSGID.findall(_header(msg, "message-id"))
    in_reply_to = MSGID.findall(_header(msg, "in-reply-to"))
    references = MSGID.findall(_header(msg, "references"))
    sender = getaddresses([_header(msg, "from")])
    name, address = sender[0] if sender else ("", "")
    headers = {}
    auto = _header(msg, "auto-submitted")
    if auto:
        headers["Auto-Submitted"] = auto[:100]
    data = {
        "address": (address or "").strip().lower()[:320], "name": name[:200], "subject": (msg.subject or "").replace("\r", " ").replace("\n", " ")[:300],
        "body_text": msg.text or "", "body_html": msg.html or "", "message_id": message_ids[0] if message_ids else None,
        "in_reply_to": in_reply_to[0] if in_reply_to else None, "references": references,
        "headers": headers, "recipients": [a for _, a in getaddresses([_header(msg, "to")]) if a][:50],
    }
    # a reply that lost its threading headers: the reply-address token of its recipients
    reply_tokens.thread_by_token(data, reply_tokens.addresses_of({n: _header(msg, n) for n in ("to", "cc", "delivered-to", "x-original-to")}))
    return data


def _folder_row(folder: str) -> MailboxFolder:
    row = MailboxFolder.get_or_none(MailboxFolder.folder == folder)
    if row is None:
        MailboxFolder.insert(folder=folder, tenant=sdk.require_tenant_id()).on_conflict_ignore().execute()
        row = MailboxFolder.get(MailboxFolder.folder == folder)
    return row


def import_folder(tenant: Any, box: Any, folder: str, conf: Any) -> int:
    """Import what is new in one folder; the number of messages imported."""
    row = _folder_row(folder)
    status = box.folder.status(folder, ["UIDVALIDITY"])
    box.folder.set(folder, readonly=True)
    last_uid = row.last_uid
    if row.uidvalidity != status["UIDVALIDITY"]:
        if row.uidvalidity is not None:
            log.warning("tenant %s: folder %s has a new UIDVALIDITY (%s -> %s): reading it again (known Message-IDs skipped)",
                        tenant.slug, folder, row.uidvalidity, status["UIDVALIDITY"])
        last_uid = 0
        MailboxFolder.update(uidvalidity=status["UIDVALIDITY"], last_uid=0).where(MailboxFolder.id == row.id).execute()
    # "N:*" also answers the newest message when its UID is below N: filter.
    uids = sorted(u for u in (int(x) for x in box.uids(AND(uid=U(last_uid + 1, "*")))) if u > last_uid)[: conf["fetch_batch"]]
    imported = 0
    if not uids:
        return 0
    messages = sorted(box.fetch(AND(uid=[str(u) for u in uids]), mark_seen=False, bulk=True), key=lambda m: int(m.uid))
    for msg in messages:
        if bounces.is_report(msg.obj):
            with atomic():
                bounces.handle(tenant, msg.obj)
                MailboxFolder.update(last_uid=int(msg.uid), updated_at=utcnow()).where(MailboxFolder.id == row.id).execute()
            continue
        try:
            data = parsed(msg)
        except Exception as exc:  # a message we cannot read is kept as such, never blocks the folder
            log.warning("tenant %s: message UID %s in %s could not be read: %s", tenant.slug, msg.uid, folder, exc)
            data = {"address": "", "subject": "(a message that could not be read)", "body_text": f"{type(exc).__name__}: {exc}"[:2000],
                    "message_id": None, "headers": {}}
        with atomic():
            stored = channels.receive(tenant, "email", create_lead=conf["unknown_sender"] == "lead", **data)
            MailboxFolder.update(last_uid=int(msg.uid), imported=MailboxFolder.imported + (1 if stored else 0), updated_at=utcnow()).where(
                MailboxFolder.id == row.id).execute()
        imported += 1 if stored else 0
    return imported


def poll(tenant: Any) -> int:
    """One poll of every configured folder; returns the messages imported. A failure is
    recorded on the folders (and logged), never raised: the next poll tries again."""
    conf = sdk.settings(tenant, "email")
    if not configured(conf):
        return 0
    total = 0
    folder = None
    try:
        with connect(conf) as box:
            for folder in conf["imap_folders"]:
                total += import_folder(tenant, box, folder, conf)
                MailboxFolder.update(failures=0, last_error=None, last_ok_at=utcnow()).where(MailboxFolder.folder == folder).execute()
    except Exception as exc:  # a mailbox failure of any kind is counted, shown, not raised
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("tenant %s: mailbox poll failed (folder %s): %s", tenant.slug, folder or "-", reason)
        for name in ([folder] if folder else conf["imap_folders"]):
            _folder_row(name)
            MailboxFolder.update(failures=MailboxFolder.failures + 1, last_error=reason, last_failed_at=utcnow()).where(
                MailboxFolder.folder == name).execute()
    return total


POLL_TASK = "email.poll_now"


def poll_task(task: Any) -> None:
    poll(sdk.current_tenant())


def poll_job(tenant: Any) -> None:
    with sdk.tenant_context(tenant):
        poll(tenant)
