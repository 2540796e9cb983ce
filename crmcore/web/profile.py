"""/app/profile: the signed-in user's own account.

Change one's password (the current one is asked for, so a session left open is not
enough to take the account over), one's time zone (pages show times in it), the daily
email digest of unread notifications and which kinds of notification one gets. Every
signed-in user has a profile, whatever the role: no permission beyond the session.
The rules are :mod:`crmcore.accounts`'.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from crmcore import accounts, db, notifications
from crmcore.entities.errors import Invalid
from crmcore.models import User

bp = Blueprint("profile", __name__, url_prefix="/app/profile")


@bp.app_template_filter("user_time")
def user_time(value: Any, fmt: str = "%d %b %Y %H:%M") -> str:
    """A stored (UTC) time in the signed-in user's time zone, with the zone's abbreviation:
    ``{{ n.created_at | user_time }}`` -> "03 Dec 2026 21:04 CET"."""
    user = g.get("user")
    local = accounts.local_time(value, user.time_zone if user is not None else "UTC")
    return "" if local is None else f"{local.strftime(fmt)} {local.tzname()}"


def _page(password_errors: dict[str, list[str]] | None = None, preference_errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    user = User.get_by_id(g.user.id)  # fresh: g.user was read before a change
    return render_template(
        "crm/profile/index.html", profile=user, zones=accounts.time_zone_names(),
        kinds=notifications.known_kinds(user.id), muted=notifications.muted_kinds(user.id),
        password_errors=password_errors or {}, preference_errors=preference_errors or {},
        min_password=accounts.MIN_PASSWORD,
    ), status


@bp.route("/")
def index():
    """The profile page."""
    return _page()


@bp.route("/password", methods=["POST"])
def password():
    """Change one's own password: 422 with field messages when refused."""
    try:
        accounts.change_password(g.user, request.form.get("current", ""), request.form.get("password", ""), request.form.get("confirm", ""))
    except Invalid as exc:
        return _page(password_errors=exc.errors, status=422)
    flash("Your password was changed.")
    return redirect(url_for(".index"))


@bp.route("/preferences", methods=["POST"])
def preferences():
    """Time zone, daily digest and notification kinds (unticked kinds are muted)."""
    offered = set(request.form.getlist("offered"))
    wanted = set(request.form.getlist("wanted"))
    try:
        with db.atomic():  # all or nothing
            accounts.change_preferences(g.user, request.form.get("time_zone", ""), request.form.get("digest_daily") == "1")
            keep = notifications.muted_kinds(g.user.id) - offered  # kinds not on the form stay as they are
            notifications.set_muted(g.user.id, keep | (offered - wanted))
    except Invalid as exc:
        return _page(preference_errors=exc.errors, status=422)
    flash("Your preferences were saved.")
    return redirect(url_for(".index"))
