"""Sign-in, sign-out and the dashboard shell."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

import flask
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from crmcore import auth, ratelimit
from crmcore.db import tenant_context, utcnow
from crmcore.models import User

log = logging.getLogger("crmcore.web")

auth_pages = Blueprint("auth", __name__)
auth_pages.crm_public = True  # sign-in must be reachable without a session

app_pages = Blueprint("core", __name__, url_prefix="/app")


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("core.dashboard")


@auth_pages.route("/")
def root():
    return redirect(url_for("core.dashboard") if g.get("user") else url_for("auth.login"))


@auth_pages.route("/login", methods=["GET", "POST"])
def login():
    if g.get("tenant") is None:
        abort(404, "No tenant serves this address. Check the tenant's hostnames in config/tenants/.")
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        ip = request.remote_addr or "unknown"
        if not auth.csrf_valid(request.form.get("csrf_token")):
            error = "The sign-in form expired. Please try again."
        elif (wait := ratelimit.login_refusal(g.tenant.id, email, ip)) is not None:
            # Refused before the password is even checked: a guesser learns nothing more.
            minutes = -(-wait // 60)
            error = f"Too many failed sign-ins. For your security, please wait {minutes} minute{'s' if minutes != 1 else ''} and try again."
            return render_template("crm/login.html", error=error, email=email), 429, {"Retry-After": str(wait)}
        else:
            with tenant_context(g.tenant):
                user = User.get_or_none((User.email == email) & (User.active == True))  # noqa: E712
                if user is not None and auth.check_password(user, password):
                    ratelimit.login_succeeded(g.tenant.id, email)
                    flask.session.clear()
                    flask.session.permanent = True
                    flask.session.update(uid=user.id, tid=g.tenant.id)
                    user.last_login_at = utcnow()
                    user.save(only=[User.last_login_at])
                    return redirect(_safe_next(request.args.get("next")))
            ratelimit.login_failed(g.tenant.id, email, ip)
            error = "Wrong email or password."
        return render_template("crm/login.html", error=error, email=email), 401
    return render_template("crm/login.html", error=error, email=email)


@auth_pages.route("/logout", methods=["POST"])
def logout():
    flask.session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@app_pages.route("/")
def dashboard():
    from crmcore.app import crm_state

    crm = crm_state()
    widgets = []
    for plugin, contributed in crm.call(g.tenant, "crm_dashboard_widgets", tenant=g.tenant, user=g.user):
        for widget in contributed:
            if widget.roles and g.user.role not in widget.roles:
                continue
            try:
                body = Markup(widget.render())
            except Exception:
                log.exception("plugin %r: dashboard widget %r failed", plugin, widget.name)
                body = Markup('<p class="muted">This widget could not be shown.</p>')
            widgets.append({"name": widget.name, "title": widget.title, "order": widget.order, "body": body, "placement": widget.placement})
    widgets.sort(key=lambda w: (w["order"], w["title"]))
    # The summary strip (the built-in dashboard plugin's figures, and any plugin's
    # placement="summary" widget) above the grid of the other widgets.
    summary = [w for w in widgets if w["placement"] == "summary"]
    grid = [w for w in widgets if w["placement"] != "summary"]
    return render_template("crm/dashboard.html", widgets=grid, summary_widgets=summary, escape=escape)
