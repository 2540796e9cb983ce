"""Pages under /app/email: compose from a record page (the panel posts here) and the
admin's settings page (sending and mailbox settings, the poll's state, its alert)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.contrib import Refused
from crm_plugins.email import inbound, smtp
from crm_plugins.email.models import MailboxFolder, Undeliverable
from crmcore import sdk

bp = Blueprint("email", __name__, url_prefix="/app/email", template_folder="templates")
DETAIL = {"lead": "lead_pages.detail", "contact": "contact_pages.detail", "deal": "deal_pages.detail"}


def _record_or_404(entity: str, record_id: int) -> Any:
    """The record if the caller may see it (a contact too, under agents_see_own_only)."""
    record = sdk.visible_record(entity, record_id) if entity in DETAIL else None
    if record is None:
        abort(404)
    return record


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()] if value else []


@bp.route("/compose/<entity>/<int:record_id>", methods=["POST"])
def compose(entity: str, record_id: int) -> Any:
    """The record panel's form: queue the email, back to the record's page."""
    if sdk.current_user() is None or not sdk.has_permission("channels:send"):
        abort(403)
    record = _record_or_404(entity, record_id)
    form = request.form
    template = None
    if (form.get("template_id") or "").isdigit():
        template = channels.template(int(form["template_id"]))
    values = {k: form.get(k, "") for k in ("to", "cc", "subject", "body")}
    try:
        channels.compose(
            sdk.current_tenant(), channel_name="email", entity=entity, record=record, conversation=None,
            to=_list(values["to"]), cc=_list(values["cc"]), subject=values["subject"] or None, body=values["body"] or None,
            html=None, template=template, user=sdk.current_user(), idempotency_key=(form.get("idempotency_key") or "")[:200] or None,
            urgent=bool(form.get("urgent")),  # sent during the recipient's quiet hours too
        )
    except Refused as exc:
        return render_template("email/compose.html", entity=entity, record=record, values=values, errors=exc.messages,
                               back=url_for(DETAIL[entity], record_id=record.id)), 422
    flash("Email queued.")
    return redirect(url_for(DETAIL[entity], record_id=record.id))


@bp.route("/")
def settings_page() -> Any:
    """Sending and mailbox settings (no password shown), the poll's state per folder and
    an alert when the mailbox keeps failing."""
    if sdk.current_user() is None or not sdk.has_permission("email:manage"):
        abort(403)
    tenant = sdk.current_tenant()
    conf = smtp.settings(tenant)
    folders = list(MailboxFolder.select().order_by(MailboxFolder.folder))
    failing = [f for f in folders if f.failures >= conf["alert_after_failures"]]
    bounced = list(Undeliverable.select().order_by(Undeliverable.bounced_at.desc()).limit(500))
    return render_template("email/settings.html", conf=conf, folders=folders, failing=failing, configured=inbound.configured(conf), bounced=bounced)


@bp.route("/test", methods=["POST"])
def send_test() -> Any:
    """"Send a test email" to the signed-in admin, through the outbox like any other: its
    result (sent, or failed with the server's answer) shows in the conversation."""
    if sdk.current_user() is None or not sdk.has_permission("email:manage"):
        abort(403)
    user = sdk.current_user()
    try:
        message = channels.compose(
            sdk.current_tenant(), channel_name="email", entity=None, record=None, conversation=None, to=[user.email], cc=[],
            subject="CRM test email", body="This is a test email from the CRM: sending works.", html=None, template=None, user=user,
            urgent=True,  # an admin testing the settings at night wants the answer now
        )
    except Refused as exc:
        flash("The test email was not sent: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.messages.items()))
        return redirect(url_for("email.settings_page"))
    flash(f"Test email to {user.email} queued: its conversation shows whether it was sent.")
    return redirect(url_for("channels.conversation", conversation_id=message.conversation_id))


@bp.route("/poll", methods=["POST"])
def poll_now() -> Any:
    """"Poll the mailbox now": a poll through the task queue (at most one queued per
    minute); its result shows in the folder table (last success, failures, error)."""
    if sdk.current_user() is None or not sdk.has_permission("email:manage"):
        abort(403)
    tenant = sdk.current_tenant()
    minute = int(time.time() // 60)
    sdk.enqueue(inbound.POLL_TASK, {}, idempotency_key=f"email:poll-now:{tenant.id}:{minute}")
    flash("A poll of the mailbox is queued: reload this page in a moment for its result.")
    return redirect(url_for("email.settings_page"))


@bp.route("/undeliverable/<int:row_id>/fixed", methods=["POST"])
def mark_fixed(row_id: int) -> Any:
    """An admin says the bounced address works again: it may be written to."""
    if sdk.current_user() is None or not sdk.has_permission("email:manage"):
        abort(403)
    if not Undeliverable.delete().where(Undeliverable.id == row_id).execute():
        abort(404)
    flash("The address may be written to again.")
    return redirect(url_for("email.settings_page"))
