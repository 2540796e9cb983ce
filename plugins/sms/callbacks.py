"""The provider's calls (public routes, each verified by its X-Twilio-Signature):
status callbacks of sent messages and inbound messages (with the consent keywords).

``POST /sms/twilio/status``: queued, sending, sent, delivered, undelivered, failed, read;
a callback never moves a message back (a "sent" after its "delivered" is ignored).
``POST /sms/twilio/inbound``: stored in the conversation (deduplicated by MessageSid);
STOP words opt the number out, START words back in, HELP answers the help text, each
replied to in the TwiML answer (the provider sends it: no outbox, so the opt-out's
confirmation reaches a number that is now refused)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from flask import Blueprint, Response, abort, request

import crm_plugins.channels.contrib as channels
from crm_plugins.sms import media, provider, text
from crmcore import sdk

bp = Blueprint("sms_public", __name__, url_prefix="/sms/twilio")
bp.crm_public = True

RANK = provider.RANK
#: the text of common provider error codes (a callback carries the code only)
ERROR_TEXT = {
    "21610": "the recipient replied STOP to this sender",
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "30008": "unknown error",
    "63016": "outside WhatsApp's 24-hour window: use a template",
    "11751": "the media is larger than the provider accepts",
    "12300": "the media's content type is not accepted",
}


def _verified(conf: dict[str, Any]) -> dict[str, str]:
    """The POST parameters, if the request carries the provider's signature of them."""
    params = {key: request.form.get(key, "") for key in request.form}
    if conf["public_url"]:
        url = conf["public_url"].rstrip("/") + request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    else:
        url = request.url
    if not provider.signature_valid(conf["auth_token"], url, params, request.headers.get("X-Twilio-Signature")):
        abort(403)
    return params


def twiml(reply: str | None = None) -> Response:
    body = f"<Message>{escape(reply)}</Message>" if reply else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', mimetype="text/xml")


@bp.route("/status", methods=["POST"])
def status() -> Any:
    tenant = sdk.current_tenant()
    conf = provider.settings(tenant)
    params = _verified(conf)
    new = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if new not in RANK:
        return Response(status=204)
    channel = "whatsapp" if params.get("To", "").startswith(text.WHATSAPP) else "sms"
    message = None
    if params.get("MessageSid"):
        message = channels.message_by_channel_id(channel, params["MessageSid"])
    if message is None and request.args.get("ref"):
        message = channels.message_by_channel_id(channel, request.args["ref"])
    if message is None or message.direction != "out":
        return Response(status=204)  # not ours (another system on the account): nothing to do
    code = params.get("ErrorCode", "")
    error = params.get("ErrorMessage") or ERROR_TEXT.get(code, "")
    noted: dict[str, Any] = {"provider_status": new}
    if code:
        noted.update(error_code=code[:20], error_message=error[:300])
    moved: list[bool] = []

    def forward(stored: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
        kept = provider.forward_only(stored, headers)
        moved.append(kept is not stored)
        return kept

    # the stored status is read locked (the worker may be noting the send this moment)
    channels.note(message, message_id=params.get("MessageSid") or None, headers=noted, merge=forward)
    if not any(moved):
        return Response(status=204)  # out of order: never backwards
    if new in ("delivered", "read"):
        channels.mark_delivered(tenant, message)
    elif new in ("undelivered", "failed"):
        reason = f"{new}: error {code}" + (f" ({error})" if error else "") if code else new
        channels.mark_failed(tenant, message, reason)
    return Response(status=204)


@bp.route("/inbound", methods=["POST"])
def inbound() -> Any:
    tenant = sdk.current_tenant()
    conf = provider.settings(tenant)
    params = _verified(conf)
    sender = params.get("From", "")
    channel = "whatsapp" if sender.startswith(text.WHATSAPP) else "sms"
    try:
        number = text.normalise(sender, conf["default_region"])
    except text.BadNumber:
        return twiml()  # a short code or an alphanumeric sender: nothing to thread on
    body = params.get("Body", "")
    attachments = media.inbound(channel, params, conf["base_url"])
    stored = channels.receive(
        tenant, channel, address=provider.address_of(channel, number), name=params.get("ProfileName", ""), body_text=body,
        message_id=params.get("MessageSid") or None, recipients=[params.get("To", "")],
        create_lead=conf["unknown_sender"] == "lead", match=text.forms(number),
        headers={"attachments": attachments} if attachments else None,
    )
    if stored is None:
        return twiml()  # seen before (the provider retried): answered then
    word = text.keyword(body)
    if word == "stop":
        channels.set_consent(number, opted_out=True, channel=channel, source=body.strip()[:200])
        return twiml(conf["stop_reply"])
    if word == "start":
        channels.set_consent(number, opted_out=False, channel=channel, source=body.strip()[:200])
        return twiml(conf["start_reply"])
    if word == "help":
        return twiml(conf["help_text"])
    return twiml()
