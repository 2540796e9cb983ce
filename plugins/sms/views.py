"""Pages under /app/sms: compose from a record page (the panel posts here) and the
segment count of a draft (what the panel's script shows live, computed by the server)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.contrib import Refused
from crm_plugins.sms import text
from crmcore import sdk

bp = Blueprint("sms", __name__, url_prefix="/app/sms", template_folder="templates", static_folder="static", static_url_path="/static")
DETAIL = {"lead": "lead_pages.detail", "contact": "contact_pages.detail", "deal": "deal_pages.detail"}


def _record_or_404(entity: str, record_id: int) -> Any:
    """The record if the caller may see it (a contact too, under agents_see_own_only)."""
    record = sdk.visible_record(entity, record_id) if entity in DETAIL else None
    if record is None:
        abort(404)
    return record


@bp.route("/compose/<entity>/<int:record_id>", methods=["POST"])
def compose(entity: str, record_id: int) -> Any:
    """The record panel's form: queue the text, back to the record's page (422 with the
    reasons on the form when the channel refuses it)."""
    if sdk.current_user() is None or not sdk.has_permission("channels:send"):
        abort(403)
    record = _record_or_404(entity, record_id)
    form = request.form
    channel = form.get("channel") if form.get("channel") in ("sms", "whatsapp") else "sms"
    values = {"to": form.get("to", ""), "body": form.get("body", ""), "channel": channel,
              **{key: value for key, value in form.items() if key == "wa_template" or key.startswith("wa_var_")}}
    options = None
    if channel == "whatsapp" and form.get("wa_template"):  # an approved template: its variables, no free text
        name = form["wa_template"]
        prefix = f"wa_var_{name}_"
        options = {"template": name, "variables": {k[len(prefix):]: v for k, v in form.items() if k.startswith(prefix)}}
    template = channels.template(int(form["template_id"])) if (form.get("template_id") or "").isdigit() and not options else None
    try:
        channels.compose(
            sdk.current_tenant(), channel_name=channel, entity=entity, record=record, conversation=None,
            to=[values["to"]] if values["to"].strip() else None, cc=[], subject=None, body=None if options else values["body"] or None,
            html=None, template=template, user=sdk.current_user(), idempotency_key=(form.get("idempotency_key") or "")[:200] or None,
            options=options,
        )
    except Refused as exc:
        from crm_plugins.sms import panel

        html = panel.render(sdk.current_tenant(), entity, record, values=values, errors=exc.messages)
        return render_template("sms/compose.html", panel=html, back=url_for(DETAIL[entity], record_id=record.id)), 422
    flash("Text queued.")
    return redirect(url_for(DETAIL[entity], record_id=record.id))


@bp.route("/window")
def window() -> Any:
    """``?to=<number>`` → WhatsApp's window with it: ``open``, ``closes_at`` (UTC), ``text``
    (what the composer shows when the rep changes the number)."""
    if sdk.current_user() is None or not sdk.has_permission("channels:read"):
        abort(403)
    to = request.args.get("to", "")
    if not to.strip() or len(to) > 64:
        return jsonify({"errors": {"to": ["a phone number"]}}), 422
    from crm_plugins.sms import panel, provider

    return jsonify(panel.window_state(provider.settings(sdk.current_tenant()), to))


@bp.route("/segments", methods=["POST"])
def segments() -> Any:
    """``{"text": ...}`` → encoding, units, segments, per_segment, remaining."""
    if sdk.current_user() is None or not sdk.has_permission("channels:read"):
        abort(403)
    data = request.get_json(silent=True) or {}
    body = data.get("text") if isinstance(data, dict) else None
    if not isinstance(body, str) or len(body) > 10000:
        return jsonify({"errors": {"text": ["a string of at most 10000 characters"]}}), 422
    return jsonify(text.segments(body).as_dict())
