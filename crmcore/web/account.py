"""/account/...: pages reachable without a session: "forgot password" and the link
that sets a password (from an invitation or a reset email).

The rules are :mod:`crmcore.accounts`': "forgot" answers the same whether or not the
address has an account (and 429 only when one IP address asks too often); a link works
once and expires; a link that is unknown, used or expired gets one 404 page that says
so without telling which. These forms have no session yet, so they check the CSRF token
themselves, as the sign-in form does.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from crmcore import accounts, auth
from crmcore.db import tenant_context
from crmcore.entities.errors import Invalid

bp = Blueprint("account", __name__, url_prefix="/account")
bp.crm_public = True


@bp.before_request
def _tenant_required() -> None:
    if g.get("tenant") is None:
        abort(404, "No tenant serves this address.")


def link_for(purpose: str):
    """The absolute URL of a set-password link, on the host the request came to."""
    return lambda token: url_for("account.set_password", purpose=purpose, token=token, _external=True)


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a reset link."""
    if request.method == "GET":
        return render_template("crm/account/forgot.html", error=None, sent=False)
    if not auth.csrf_valid(request.form.get("csrf_token")):
        return render_template("crm/account/forgot.html", error="The form expired. Please try again.", sent=False), 400
    with tenant_context(g.tenant):
        allowed = accounts.forgot(request.form.get("email", ""), request.remote_addr or "unknown", link_for=link_for(accounts.RESET))
    if not allowed:
        minutes = accounts.FORGOT_WINDOW_SECONDS // 60
        return render_template("crm/account/forgot.html", sent=False,
                               error=f"Too many requests from your network. Please wait up to {minutes} minutes and try again."), 429
    return render_template("crm/account/forgot.html", error=None, sent=True)


@bp.route("/<any(invite, reset):purpose>/<token>", methods=["GET", "POST"])
def set_password(purpose: str, token: str):
    """Choose a password with an invitation or reset link."""
    with tenant_context(g.tenant):
        user = accounts.peek(token, purpose)
        if user is None:
            return render_template("crm/account/link_dead.html"), 404
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            if not auth.csrf_valid(request.form.get("csrf_token")):
                errors = {"_form": ["The form expired. Please try again."]}
            else:
                password, confirm = request.form.get("password", ""), request.form.get("confirm", "")
                errors = accounts.check_password_rules(password, confirm)
                if not errors:
                    try:
                        done = accounts.redeem(token, purpose, password)
                    except Invalid as exc:
                        errors = exc.errors
                    else:
                        if done is None:  # used meanwhile (a second click)
                            return render_template("crm/account/link_dead.html"), 404
                        flash("Your password is set. Sign in with it.")
                        return redirect(url_for("auth.login"))
        status = 422 if errors else 200
        return render_template("crm/account/set_password.html", account=user, purpose=purpose, errors=errors,
                               min_password=accounts.MIN_PASSWORD), status
