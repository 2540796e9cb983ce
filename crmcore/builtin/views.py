"""Sign-in, sign-out and the dashboard shell."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

import flask
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from crmcore import auth
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
        if not auth.csrf_valid(request.form.get("csrf_token")):
            error = "The sign-in form expired. Please try again."
        else:
            with tenant_context(g.tenant):
                user = User.get_or_none((User.email == email) & (User.active == True))  # noqa: E712
                if user is not None and auth.check_password(user, password):
                    flask.session.clear()
                    flask.session.permanent = True
                    flask.session.update(uid=user.id, tid=g.tenant.id)
                    user.last_login_at = utcnow()
                    user.save(only=[User.last_login_at])
                    return redirect(_safe_next(request.args.get("next")))
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
            widgets.append({"name": widget.name, "title": widget.title, "order": widget.order, "body": body})
    widgets.sort(key=lambda w: (w["order"], w["title"]))
    return render_template("crm/dashboard.html", widgets=widgets, escape=escape, summary=core_summary(), summary_links=summary_links())


#: Lead statuses that still need work (not converted, not ruled out).
OPEN_LEAD_STATUSES = ("new", "contacted", "qualified")


def core_summary() -> dict:
    """The dashboard's core figures for the signed-in user, in three queries whatever the
    amount of data: open leads; open deals with their value and weighted value (per
    currency: amounts in different currencies are never added up); my open tasks that
    are overdue or due today (UTC days, as on the tasks page). Agents restricted to their
    own records (``agents_see_own_only``) see their own figures."""
    import decimal

    import peewee

    from crmcore.api import common, linking
    from crmcore.entities.deals import default_currency
    from crmcore.entities.models import Deal, Lead, Stage, Task
    from crmcore.web.tasks import day_bounds

    cents = decimal.Decimal("0.01")

    def amount(value) -> decimal.Decimal:
        return decimal.Decimal(str(value or 0)).quantize(cents, rounding=decimal.ROUND_HALF_UP)

    open_leads = common.visible(Lead.select(peewee.fn.COUNT(Lead.id)), Lead).where(Lead.status.in_(OPEN_LEAD_STATUSES)).scalar() or 0

    deal_rows = (
        common.visible(Deal.select(Deal.currency, peewee.fn.COUNT(Deal.id), peewee.fn.SUM(Deal.value), peewee.fn.SUM(Deal.value * Deal.probability)), Deal)
        .join(Stage, on=(Deal.stage == Stage.id))
        .where((Stage.is_won == False) & (Stage.is_lost == False))  # noqa: E712
        .group_by(Deal.currency)
        .tuples()
    )
    home = default_currency()
    pipeline = sorted(
        ({"currency": currency, "count": count, "value": amount(total), "weighted": amount(decimal.Decimal(str(weighted or 0)) / 100)} for currency, count, total, weighted in deal_rows),
        key=lambda p: (p["currency"] != home, -p["value"], p["currency"]),
    )

    start, end = day_bounds()
    overdue, today = (
        linking.visible(
            Task.select(
                peewee.fn.COALESCE(peewee.fn.SUM(peewee.Case(None, [(Task.due_at < start, 1)], 0)), 0),
                peewee.fn.COALESCE(peewee.fn.SUM(peewee.Case(None, [((Task.due_at >= start) & (Task.due_at < end), 1)], 0)), 0),
            ),
            Task,
        )
        .where((Task.assignee == g.user.id) & (Task.status == "open"))
        .tuples()
        .get()
    )
    for p in pipeline:
        p["value_text"] = money_text(p["value"], p["currency"])
        p["weighted_text"] = money_text(p["weighted"], p["currency"])
    return {
        "open_leads": int(open_leads),
        "open_deals": sum(p["count"] for p in pipeline),
        "pipeline": pipeline,
        "tasks_overdue": int(overdue or 0),
        "tasks_today": int(today or 0),
    }


def money_text(amount, currency: str) -> str:
    """12345.5, "EUR" -> "12,345.50 EUR"; whole amounts without the cents."""
    text = f"{amount:,.2f}"
    return f"{text.removesuffix('.00')} {currency}"


def summary_links() -> dict:
    """Where the summary's figures lead, for the pages this app has."""
    from crmcore.api.common import has_permission
    from crmcore.web.records import page_url

    links = {}
    for key, path, endpoint, kwargs in (
        ("leads", "/app/leads/", "lead_pages.index", {"status": list(OPEN_LEAD_STATUSES)}),
        ("new_lead", "/app/leads/new", "lead_pages.new", {}),
        ("deals", "/app/deals/", "deal_pages.index", {"status": "open"}),
        ("new_deal", "/app/deals/new", "deal_pages.new", {}),
        ("tasks", "/app/tasks/", "task_pages.index", {}),
    ):
        if page_url(path):  # the page exists (its module and plugin are there)
            links[key] = url_for(endpoint, **kwargs)
    if not has_permission("records:write"):
        links.pop("new_lead", None)
        links.pop("new_deal", None)
    return links
