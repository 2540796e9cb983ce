"""The dashboard's core figures: computed in three queries for all four widgets."""

from __future__ import annotations

from flask import g, url_for

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
