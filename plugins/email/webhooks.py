"""The provider's calls (public routes, the tenant by host name, each verified by the
provider's signature with ``[settings.email] webhook_signing_key``: 403 when missing,
wrong or older than 15 minutes).

``POST /email/mailgun/events``: delivery events as JSON (``signature`` and
``event-data``): ``delivered`` marks the message delivered; ``failed`` with severity
``permanent`` marks the address undeliverable and the message failed (as a bounce found
in the mailbox does); ``complained`` (marked as spam) opts the address out of all email;
``unsubscribed`` out of marketing. Others (opened, clicked, temporary failures) are
noted on the message, nothing more.

``POST /email/mailgun/inbound``: an inbound route's forward (form fields, or the raw
message as ``body-mime``), stored like a message polled over IMAP: threaded,
deduplicated by Message-ID, a DSN handled as a bounce.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, jsonify, request
from imap_tools import MailMessage

import crm_plugins.channels.contrib as channels
from crm_plugins.email import bounces, inbound, mailgun, reply_tokens, smtp
from crmcore import sdk

bp = Blueprint("email_webhooks", __name__, url_prefix="/email/mailgun")
bp.crm_public = True
MAX_BYTES = 25 * 1024 * 1024


def _require_signature(conf: dict[str, Any], timestamp: Any, token: Any, signature: Any) -> None:
    if not mailgun.signed(conf["webhook_signing_key"], timestamp, token, signature):
        abort(403)


def _angle(message_id: str) -> str:
    message_id = (message_id or "").strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


@bp.route("/events", methods=["POST"])
def events() -> Any:
    tenant = sdk.current_tenant()
    conf = smtp.settings(tenant)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(403 if not conf["webhook_signing_key"] else 400)
    sig = body.get("signature") if isinstance(body.get("signature"), dict) else {}
    _require_signature(conf, sig.get("timestamp"), sig.get("token"), sig.get("signature"))
    data = body.get("event-data")
    if not isinstance(data, dict):
        return jsonify({"error": "event-data must be an object"}), 422
    event = str(data.get("event") or "").lower()
    recipient = str(data.get("recipient") or "").strip().lower()[:320]
    headers = (data.get("message") or {}).get("headers") or {} if isinstance(data.get("message"), dict) else {}
    message_id = str(headers.get("message-id") or "") if isinstance(headers, dict) else ""
    message = channels.message_by_channel_id("email", _angle(message_id)) if message_id else None
    if message is not None and message.direction != "out":
        message = None
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    reason = " ".join(str(x) for x in (status.get("code") or "", status.get("message") or status.get("description") or "") if x).strip()
    with sdk.atomic():
        if event == "delivered" and message is not None:
            channels.mark_delivered(tenant, message)
        elif event == "failed" and str(data.get("severity") or "").lower() == "permanent":
            if recipient:
                bounces.mark(recipient, reason or "bounced (provider)")
            if message is not None:
                channels.mark_failed(tenant, message, f"bounced: {reason or 'permanent failure'}"[:2000])
        elif event == "complained" and recipient:
            channels.set_consent(recipient, opted_out=True, channel="email", source="marked as spam (provider)")
        elif event == "unsubscribed" and recipient:
            channels.set_consent(recipient, opted_out=True, channel="email", source="provider unsubscribe", scope="marketing")
        elif message is not None and event:
            channels.note(message, headers={"Provider-Event": f"{event} {reason}".strip()[:300]})
    return jsonify({"ok": True, "event": event, "message": message.id if message is not None else None})


def _from_fields(form: Any) -> dict[str, Any]:
    """A parsed forward (no raw MIME): the fields the provider parsed for us."""
    try:
        pairs = json.loads(form.get("message-headers") or "[]")
    except ValueError:
        abort(422, description="message-headers is not JSON")
    header = {}
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, list) and len(pair) == 2:
            header.setdefault(str(pair[0]).lower(), str(pair[1]))
    ids = inbound.MSGID.findall(header.get("message-id", ""))
    replies = inbound.MSGID.findall(header.get("in-reply-to", ""))
    auto = header.get("auto-submitted", "")
    sender = (form.get("sender") or "").strip().lower()
    data = {
        "address": sender[:320], "name": "", "subject": (form.get("subject") or "").replace("\r", " ").replace("\n", " ")[:300],
        "body_text": form.get("body-plain") or "", "body_html": form.get("body-html") or "",
        "message_id": ids[0] if ids else None, "in_reply_to": replies[0] if replies else None,
        "references": inbound.MSGID.findall(header.get("references", "")),
        "headers": {"Auto-Submitted": auto[:100]} if auto else {},
        "recipients": [(form.get("recipient") or "")[:320]] if form.get("recipient") else [],
    }
    recipients = reply_tokens.addresses_of({**header, "x-original-to": form.get("recipient") or ""})
    reply_tokens.thread_by_token(data, recipients)
    return data


@bp.route("/inbound", methods=["POST"])
def inbound_mail() -> Any:
    tenant = sdk.current_tenant()
    conf = smtp.settings(tenant)
    if (request.content_length or 0) > MAX_BYTES:
        abort(413)
    form = request.form
    _require_signature(conf, form.get("timestamp"), form.get("token"), form.get("signature"))
    raw = form.get("body-mime")
    if raw:
        mail = MailMessage.from_bytes(raw.encode("utf-8", "surrogateescape"))
        if bounces.is_report(mail.obj):
            with sdk.atomic():
                marked = bounces.handle(tenant, mail.obj)
            return jsonify({"ok": True, "bounces": marked})
        data = inbound.parsed(mail)
    else:
        data = _from_fields(form)
    if not data["address"]:
        return jsonify({"error": "no sender"}), 422
    stored = channels.receive(tenant, "email", create_lead=conf["unknown_sender"] == "lead", **data)
    return jsonify({"ok": True, "message": stored.id if stored is not None else None, "duplicate": stored is None})
