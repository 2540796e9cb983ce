"""Web pieces: the dashboard /app/insights/, record panels, the deal list column, the
kanban badges and the form that records a decision on a suggested action."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from peewee import fn

from crm_plugins.insights import (
    actions,
    conversations,
    health,
    interactions,
    risk,
    sentiment,
    textgen,
)
from crm_plugins.insights.models import CustomerHealth, DealRisk, GeneratedTextRecord, InsightAlert
from crmcore import sdk
from crmcore.sdk import Company, Contact, Deal, Lead, ListColumn, ListFilter, Stage

bp = Blueprint("insights", __name__, url_prefix="/app/insights", template_folder="templates", static_folder="static", static_url_path="/static")

TONES = {"low": "good", "medium": "warn", "high": "bad"}
PLURAL = {"deal": "deals", "lead": "leads", "contact": "contacts", "company": "companies"}


def record_url(entity: str, record_id: int) -> str:
    return f"/app/{PLURAL[entity]}/{record_id}"


def _visible_deals() -> Any:
    return sdk.visible(Deal.select(), Deal)


@bp.route("/")
def dashboard():
    """At-risk deals with their reasons, customers by health band, actions due, alerts."""
    settings = sdk.settings(g.tenant, "insights")
    at_risk = list(
        _visible_deals().select(Deal.id, Deal.title, Deal.value, Deal.currency, DealRisk.level, DealRisk.points, DealRisk.factors)
        .join(DealRisk, on=(DealRisk.deal == Deal.id)).where(DealRisk.level != "low")
        .order_by(DealRisk.points.desc(), Deal.id).limit(50).dicts()
    )
    for row in at_risk:
        row["lower_it"] = risk.explain(row["points"], row["factors"], settings)
    bands = dict(CustomerHealth.select(CustomerHealth.band, fn.COUNT(CustomerHealth.id)).group_by(CustomerHealth.band).tuples())
    customers = list(CustomerHealth.select().where(CustomerHealth.band != "green").order_by(CustomerHealth.score, CustomerHealth.id).limit(30))
    names = {e: sdk.display_names(m, [c.record_id for c in customers if c.entity == e]) for e, m in (("contact", Contact), ("company", Company))}
    due = actions.due(20, deal_query=_visible_deals(), lead_query=sdk.visible(Lead.select(), Lead))
    titles = {"deal": dict(Deal.select(Deal.id, Deal.title).where(Deal.id.in_([a.record_id for a in due if a.entity == "deal"] or [0])).tuples()),
              "lead": sdk.display_names(Lead, [a.record_id for a in due if a.entity == "lead"])}
    alerts = list(InsightAlert.select().order_by(InsightAlert.created_at.desc(), InsightAlert.id.desc()).limit(10))
    return render_template(
        "insights/dashboard.html", at_risk=at_risk, bands=bands, customers=customers, names=names, due=due, titles=titles,
        alerts=alerts, record_url=record_url, can_act=sdk.has_permission("insights:act"),
    )


@bp.route("/actions", methods=["POST"])
def decide():
    """A button of a suggested action: done, dismiss, or create the task."""
    if not sdk.has_permission("insights:act"):
        abort(403)
    entity, key, decision = request.form.get("entity", ""), request.form.get("action", ""), request.form.get("decision", "")
    try:
        record_id = int(request.form.get("record_id", ""))
    except ValueError:
        abort(422)
    if entity not in ("lead", "deal") or decision not in actions.DECISIONS or not key or len(key) > 40:
        abort(422)
    model = Deal if entity == "deal" else Lead
    if not sdk.visible(model.select(model.id), model).where(model.id == record_id).exists():
        abort(404)
    actions.decide(entity, record_id, key, decision, title=request.form.get("title", "")[:300], user_id=g.user.id if g.get("user") else None)
    flash({"task": "Task created.", "done": "Marked as done.", "dismissed": "Dismissed: it will not be suggested again."}[decision])
    back = request.form.get("next", "")
    return redirect(back if back.startswith("/app/") else url_for("insights.dashboard"))


@bp.route("/summaries", methods=["POST"])
def summarise():
    """The panel's "Summarise" button: queue a summary of the record (the worker writes it)."""
    if not sdk.has_permission("insights:act"):
        abort(403)
    entity = request.form.get("entity", "")
    try:
        record_id = int(request.form.get("record_id", ""))
    except ValueError:
        abort(422)
    model = {"deal": Deal, "lead": Lead, "contact": Contact, "company": Company}.get(entity)
    if model is None:
        abort(422)
    if not sdk.visible(model.select(model.id), model).where(model.id == record_id).exists():
        abort(404)
    textgen.request_summary(entity, record_id)
    flash("Summary requested: it appears here in a moment.")
    return redirect(record_url(entity, record_id))


@bp.route("/replies", methods=["POST"])
def draft_reply():
    """The panel's "Draft a reply" button: queue a reply draft for one of the record's
    conversations (the worker writes it; the panel offers it to edit and send)."""
    if not sdk.has_permission("insights:act"):
        abort(403)
    entity = request.form.get("entity", "")
    try:
        record_id, conversation_id = int(request.form.get("record_id", "")), int(request.form.get("conversation_id", ""))
    except ValueError:
        abort(422)
    model = {"deal": Deal, "lead": Lead, "contact": Contact}.get(entity)
    if model is None:
        abort(422)
    if not sdk.visible(model.select(model.id), model).where(model.id == record_id).exists():
        abort(404)
    if conversation_id not in {c["conversation_id"] for c in conversations.of_record(g.tenant, entity, record_id)}:
        abort(404)
    textgen.request_reply(entity, record_id, conversation_id)
    flash("Reply draft requested: it appears here in a moment.")
    return redirect(record_url(entity, record_id))


def latest_summary(entity: str, record_id: int, purpose: str = "summary") -> Any:
    g_ = GeneratedTextRecord
    return g_.select().where(g_.entity == entity, g_.record_id == record_id, g_.purpose == purpose).order_by(g_.created_at.desc(), g_.id.desc()).first()


def _reply_parts(entity: str, record: Any) -> dict[str, Any]:
    """The panel's conversations and the latest reply draft (with where to send it)."""
    found = conversations.of_record(g.tenant, entity, record.id)
    draft = latest_summary(entity, record.id, "reply") if found else None
    can_send = bool(draft and draft.status == "done" and sdk.has_permission("channels:send") and draft.conversation_id in {c["conversation_id"] for c in found})
    return {"conversations": found, "reply": draft, "reply_url": url_for("channels.reply", conversation_id=draft.conversation_id) if can_send else None}


# --------------------------------------------------------------------------- panels


def deal_panel(record: Any) -> str:
    settings = sdk.settings(g.tenant, "insights")
    row = DealRisk.get_or_none(DealRisk.deal == record.id)
    lower = risk.explain(row.points, row.factors, settings) if row else []
    closed = row is None and Stage.select().where(Stage.id == record.stage_id, Stage.is_won | Stage.is_lost).exists()
    return render_template(
        "insights/_record_panel.html", entity="deal", record=record, risk=row, lower_it=lower, closed=closed,
        actions=actions.for_record("deal", record.id), trend=interactions.trend("deal", record.id), health=None,
        label=sentiment.label, can_act=sdk.has_permission("insights:act"), here=record_url("deal", record.id), summary=latest_summary("deal", record.id),
        **_reply_parts("deal", record),
    )


def lead_panel(record: Any) -> str:
    return render_template(
        "insights/_record_panel.html", entity="lead", record=record, risk=None, lower_it=[],
        actions=actions.for_record("lead", record.id), trend=interactions.trend("lead", record.id), health=None,
        label=sentiment.label, can_act=sdk.has_permission("insights:act"), here=record_url("lead", record.id), summary=latest_summary("lead", record.id),
        **_reply_parts("lead", record),
    )


def customer_panel(entity: str, record: Any) -> str:
    row = CustomerHealth.get_or_none(CustomerHealth.entity == entity, CustomerHealth.record_id == record.id)
    return render_template(
        "insights/_record_panel.html", entity=entity, record=record, risk=None, lower_it=[], actions=[],
        trend=interactions.trend(entity, record.id), health=row, history=health.history_of(entity, record.id, 30) if row else [],
        label=sentiment.label, can_act=False, can_summarise=sdk.has_permission("insights:act"), here=record_url(entity, record.id), summary=latest_summary(entity, record.id),
        **_reply_parts(entity, record),
    )


# --------------------------------------------------------------------------- list column, badges


def risk_badge(level: str, points: float, reasons: list[str]) -> Markup:
    title = f"Risk {level}: " + "; ".join(reasons) if reasons else f"Risk {level}"
    return Markup(f'<span class="badge insights-risk insights-risk-{escape(level)}" title="{escape(title)}">{escape(level)} risk</span>')


def list_column() -> ListColumn:
    def values(ids: list[int]) -> dict[int, str]:
        rows = DealRisk.select(DealRisk.deal, DealRisk.level, DealRisk.points, DealRisk.factors).where(DealRisk.deal.in_(ids)).tuples()
        return {deal: str(risk_badge(level, points, [f["reason"] for f in factors])) for deal, level, points, factors in rows}

    points = DealRisk.select(DealRisk.points).where(DealRisk.deal == Deal.id)
    levels = ListFilter("Risk", (("high", "High"), ("medium", "Medium"), ("low", "Low")), lambda chosen: Deal.id.in_(DealRisk.select(DealRisk.deal).where(DealRisk.level.in_(list(chosen)))))
    return ListColumn("insights:risk", "Risk", values, order=40, sort=fn.COALESCE(points, -1), filter=levels, stylesheets=(url_for("insights.static", filename="insights.css"),))


def card_badges(entity: str, record_ids: list[int]) -> list[Any]:
    from crm_plugins.kanban.contrib import CardBadge

    if entity != "deal" or not record_ids:
        return []
    rows = DealRisk.select(DealRisk.deal, DealRisk.level, DealRisk.factors).where(DealRisk.deal.in_(record_ids), DealRisk.level != "low").tuples()
    return [
        CardBadge(record_id=deal, label=f"{level} risk", title="; ".join(f["reason"] for f in factors), tone=TONES[level], order=30)
        for deal, level, factors in rows
    ]


def dashboard_widget() -> str:
    counts = dict(DealRisk.select(DealRisk.level, fn.COUNT(DealRisk.id)).group_by(DealRisk.level).tuples())
    red = CustomerHealth.select().where(CustomerHealth.band == "red").count()
    return (
        f'<p class="figure">{counts.get("high", 0)}</p><p class="muted">deals at high risk, {counts.get("medium", 0)} at medium; '
        f'{red} customers in the red · <a href="{url_for("insights.dashboard")}">Insights</a></p>'
    )
