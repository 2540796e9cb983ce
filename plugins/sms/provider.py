"""The Twilio-compatible provider: checking a draft (numbers to E.164, consent, the
WhatsApp window), sending one message (the Messages API: a form-encoded POST with basic
auth) and the request signature of its callbacks (X-Twilio-Signature)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.contrib import PermanentFailure, Refused, TemporaryFailure
from crm_plugins.sms import media, text, whatsapp
from crmcore import sdk

PLUGIN = "sms"


def settings(tenant: Any) -> dict[str, Any]:
    return dict(sdk.settings(tenant, PLUGIN))


def configured(conf: dict[str, Any], channel: str) -> bool:
    sender = conf["whatsapp_from"] if channel == "whatsapp" else conf["from_number"]
    return bool(conf["account_sid"] and conf["auth_token"] and sender)


def address_of(channel: str, e164: str) -> str:
    return f"{text.WHATSAPP}{e164}" if channel == "whatsapp" else e164


def number_of(address: str) -> str:
    return address[len(text.WHATSAPP):] if address.startswith(text.WHATSAPP) else address


#: how far along a message is at the provider; a status of a lower rank than the stored
#: one is ignored (callbacks come out of order, and may come before the send is noted)
RANK = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "undelivered": 4, "failed": 4, "read": 5}


def forward_only(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``contrib.note``'s merge: ``new`` headers only if their ``provider_status`` is
    further along than the stored one (else what is stored stays, error code and all)."""
    before = RANK.get(stored.get("provider_status", "queued"), 0)
    return {**stored, **new} if RANK.get(new.get("provider_status", ""), -1) > before else stored


# --------------------------------------------------------------------------- prepare


opt_out_reason = channels.opt_out_reason


def prepare_for(channel: str) -> Any:
    def prepare(tenant: Any, draft: dict[str, Any]) -> dict[str, Any]:
        """Numbers to E.164 (the tenant's region), one recipient, consent, and for
        WhatsApp the window (free text) or an approved template (``options``)."""
        conf = settings(tenant)
        options = draft.get("options") or {}
        problems: dict[str, list[str]] = {}
        if not configured(conf, channel):
            sender = "whatsapp_from" if channel == "whatsapp" else "from_number"
            problems["channel"] = [f"{channel} is not configured for this tenant (settings.sms account_sid, auth_token, {sender})"]
        if draft["cc"]:
            problems["cc"] = [f"{channel} has no copies"]
        unknown = sorted(set(options) - ({"template", "variables", "media"} if channel == "whatsapp" else {"media"}))
        if unknown:
            problems["channel_options"] = [f"{channel} takes no {', '.join(unknown)[:200]}" + (" (templates are WhatsApp's)" if "template" in unknown else "")]
        to: list[str] = []
        if len(draft["to"]) != 1:
            problems.setdefault("to", []).append(f"{channel} goes to one number")
        else:
            try:
                to = [address_of(channel, text.normalise(draft["to"][0], conf["default_region"]))]
            except text.BadNumber as exc:
                problems.setdefault("to", []).append(str(exc))
        if to:
            refused = channels.opted_out([number_of(to[0])])
            for row in refused.values():
                problems.setdefault("to", []).append(opt_out_reason(row))
        if "template" in options and options.get("media"):
            problems["media"] = ["a template's media is in its approved content: send the template alone"]
        prepared: dict[str, Any] = {}
        if options.get("media") and not problems:
            prepared["headers"] = {"attachments": media.check_outbound(channel, options["media"])}
        if channel == "whatsapp" and "template" in options and not problems:
            template, variables = whatsapp.check_template(conf, options)
            prepared = {"body_text": whatsapp.render(template["body"], variables),
                        "headers": {"template": template["name"], "content_sid": template["content_sid"], "content_variables": variables}}
        elif to and channel == "whatsapp" and not problems and not whatsapp.window(conf, to[0]).open:
            problems.setdefault("body", []).append(
                "outside WhatsApp's 24-hour window (no message from this customer in the last "
                f"{conf['whatsapp_window_hours']:g} hours): only an approved template may be sent")
        if problems:
            raise Refused(problems)
        sender = address_of(channel, conf["whatsapp_from"]) if channel == "whatsapp" else conf["from_number"]
        return {"to": to, "cc": [], "sender": sender, "message_id": f"crm-{uuid.uuid4().hex}", **prepared}

    return prepare


# --------------------------------------------------------------------------- send


def messages_url(conf: dict[str, Any]) -> str:
    sid = urllib.parse.quote(conf["account_sid"], safe="")
    return f"{conf['base_url'].rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"


def status_callback_url(conf: dict[str, Any], ref: str) -> str | None:
    """Where the provider reports the message's status (``ref``: our id of it)."""
    if not conf["public_url"]:
        return None
    return f"{conf['public_url'].rstrip('/')}/sms/twilio/status?" + urllib.parse.urlencode({"ref": ref})


def post_message(conf: dict[str, Any], form: list[tuple[str, str]]) -> dict[str, Any]:
    """POST one message; the provider's JSON answer. Raises TemporaryFailure (a 429, a 5xx,
    no answer) or PermanentFailure (another 4xx: the provider's code and message)."""
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(messages_url(conf), data=data, method="POST")
    credentials = base64.b64encode(f"{conf['account_sid']}:{conf['auth_token']}".encode()).decode()
    request.add_header("Authorization", f"Basic {credentials}")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=conf["timeout_seconds"]) as answer:  # noqa: S310 - the tenant's provider URL
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        reason = _reason(exc.code, exc.read())
        if exc.code == 429 or exc.code >= 500:
            raise TemporaryFailure(reason) from None
        raise PermanentFailure(reason) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None


def _reason(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
        return f"HTTP {status}: error {data.get('code')}: {data.get('message')}"[:2000]
    except ValueError:
        return f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"


def send(tenant: Any, message: Any, conversation: Any) -> channels.Learnt | None:
    """Send one message; the provider's message sid becomes the message's channel id
    (status callbacks find it by that)."""
    conf = settings(tenant)
    if not message.message_id.startswith("crm-"):
        return  # the provider took it already (its sid is noted): a crash came before "sent" was stored
    # consent: the outbox has checked the batch's numbers (Channel.consent_address)
    headers = message.headers or {}
    if headers.get("content_sid"):  # an approved WhatsApp template: the provider has its text
        form = {"To": message.recipients[0], "From": message.sender, "ContentSid": headers["content_sid"],
                "ContentVariables": json.dumps(headers.get("content_variables") or {}, sort_keys=True)}
    else:
        form = {"To": message.recipients[0], "From": message.sender, "Body": message.body_text}
        if not message.body_text and headers.get("attachments"):
            del form["Body"]  # media alone
    callback = status_callback_url(conf, message.message_id)
    if callback:
        form["StatusCallback"] = callback
    answer = post_message(conf, list(form.items()) + media.form_fields(headers.get("attachments") or []))
    sid = str(answer.get("sid") or "")[:500]
    # stored with "sent" in one commit; a callback that comes before it finds the message
    # by the ``ref`` of its URL, and its status stands ("delivered" is not turned back
    # into "queued", nor the message into "sent")
    return channels.Learnt(message_id=sid or None, headers={"provider_status": str(answer.get("status") or "queued")[:20]}, merge=forward_only)


# --------------------------------------------------------------------------- signatures


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the
    full URL followed by each POST parameter's name and value, sorted by name."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def signature_valid(auth_token: str, url: str, params: dict[str, str], sent: str | None) -> bool:
    return bool(auth_token and sent) and hmac.compare_digest(signature(auth_token, url, params), sent or "")
