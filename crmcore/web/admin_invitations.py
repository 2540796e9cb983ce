"""/app/admin/invitations: invite a person by email (admins only).

The invited user exists at once with the role chosen, but without a password; the email
(system mail, crm.toml ``[mail]``) carries a link that works once, for seven days, to
choose one. Inviting an address again whose owner never set a password sends a new link
(the old one stops working); an address that already signs in is a 409. Without
``[mail]`` the page says so and adds nobody.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from marshmallow import Schema, fields, validate

from crmcore import accounts
from crmcore.entities.errors import Conflict, Invalid
from crmcore.models import ROLES
from crmcore.system_mail import MailNotConfigured, configured
from crmcore.web.account import link_for
from crmcore.web.admin import admin_only, validate_form
from crmcore.web.admin_users import DUPLICATE, ROLE_OPTIONS, RequiredEmail

bp = admin_only(Blueprint("admin_invitations", __name__, url_prefix="/app/admin/invitations"))

NOT_CONFIGURED = "System mail is off, so no invitation can be sent: set [mail] in config/crm.toml (or add the user with a password)."


class InvitationForm(Schema):
    email = RequiredEmail(required=True)
    name = fields.String(load_default="", validate=validate.Length(max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


@bp.route("/new", methods=["GET", "POST"])
def create():
    """The invitation form; POST sends it."""
    from flask import request

    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {"role": "agent"}
    status = 200
    if request.method == "POST":
        form, errors = validate_form(InvitationForm())
        status = 422
        if not errors:
            try:
                user = accounts.invite(form["email"], role=form["role"], name=form["name"], link_for=link_for(accounts.INVITE))
            except Conflict:
                errors, status = {"email": [DUPLICATE]}, 409
            except Invalid as exc:
                errors = {k: list(v) for k, v in exc.errors.items()}
            except MailNotConfigured:
                errors, status = {"_form": [NOT_CONFIGURED]}, 409
            else:
                flash(f"Invitation sent to {user.email} ({user.role}). The link works once, for 7 days.")
                return redirect(url_for("admin_users.index"))
    return render_template("crm/admin/invitation_new.html", role_options=ROLE_OPTIONS, errors=errors, form=form,
                           mail_configured=configured()), status
