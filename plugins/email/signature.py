"""``/app/email/signature``: each user's own email signature (everyone who may send).
It is added under the text of every email they write, by ``smtp.prepare``."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from crm_plugins.email.models import Signature
from crm_plugins.email.views import bp
from crmcore import sdk
from crmcore.sdk import utcnow

MAX_LENGTH = 2000


@bp.route("/signature", methods=["GET", "POST"])
def signature_page() -> Any:
    user = sdk.current_user()
    if user is None or not sdk.has_permission("channels:send"):
        abort(403)
    row = Signature.get_or_none(Signature.user == user.id)
    if request.method == "GET":
        return render_template("email/signature.html", text=row.text if row else "", errors={})
    text = (request.form.get("text") or "").replace("\r\n", "\n").strip()
    if len(text) > MAX_LENGTH:
        return render_template("email/signature.html", text=text, errors={"text": [f"at most {MAX_LENGTH} characters"]}), 422
    values = {"text": text, "updated_at": utcnow()}
    Signature.insert(user=user.id, tenant=sdk.require_tenant_id(), **values).on_conflict(
        conflict_target=[Signature.tenant, Signature.user], update=values).execute()
    flash("Your signature is saved." if text else "Your signature is removed.")
    return redirect(url_for("email.signature_page"))
