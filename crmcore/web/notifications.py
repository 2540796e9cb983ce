"""/app/notifications: the signed-in user's notifications and their preferences.

The header's bell (crm/base.html, static/bell.js) links here and shows the unread count,
kept live through the realtime topic ``user:<id>:notifications``. Marking read and the
preferences are plain POST forms.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from crmcore import notifications
from crmcore.entities.errors import Invalid
from crmcore.notifications import Notification
from crmcore.web.records import require

bp = Blueprint("notification_pages", __name__, url_prefix="/app/notifications")
PAGE_SIZE = 100


@bp.route("/")
def index():
    """The newest notifications (unread first is not needed: unread ones stand out)."""
    require("notifications:own")
    only_unread = request.args.get("unread") == "1"
    query = notifications.mine(g.user.id)
    if only_unread:
        query = query.where(Notification.read_at.is_null())
    rows = list(query.order_by(Notification.id.desc()).limit(PAGE_SIZE))
    return render_template("crm/notifications/index.html", rows=rows, only_unread=only_unread,
                           muted=notifications.muted_kinds(g.user.id), kinds=notifications.known_kinds(g.user.id))


@bp.route("/<int:notification_id>/read", methods=["POST"])
def read(notification_id: int):
    """Mark one read, then go to its link (``open=1``) or back to the list."""
    require("notifications:own")
    row = notifications.mine(g.user.id).where(Notification.id == notification_id).first()
    if row is None:
        return redirect(url_for(".index"))
    notifications.mark_read(g.user.id, notification_id)
    if request.form.get("open") == "1" and row.link and row.link.startswith("/") and not row.link.startswith("//"):
        return redirect(row.link)
    return redirect(url_for(".index"))


@bp.route("/read-all", methods=["POST"])
def read_all():
    require("notifications:own")
    count = notifications.mark_read(g.user.id)
    flash(f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect(url_for(".index"))


@bp.route("/preferences", methods=["POST"])
def preferences():
    """The kinds left unticked are muted."""
    require("notifications:own")
    offered = set(request.form.getlist("offered"))
    wanted = set(request.form.getlist("wanted"))
    keep = notifications.muted_kinds(g.user.id) - offered  # kinds not on the form stay as they are
    try:
        notifications.set_muted(g.user.id, keep | (offered - wanted))
    except Invalid:
        flash("Those preferences could not be saved.")
        return redirect(url_for(".index"))
    flash("Preferences saved.")
    return redirect(url_for(".index"))
