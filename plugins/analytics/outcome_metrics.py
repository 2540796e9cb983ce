"""Win/loss reasons and pipeline velocity: two deal metrics built on the closed deals of the
range (one GROUP BY query each, plus one for the open deals of velocity)."""

from __future__ import annotations

import hashlib
from typing import Any

import peewee
from peewee import fn

from crm_plugins.analytics import sql
from crm_plugins.analytics.deal_metrics import (
    CLOSED,
    DEALS_NOTE,
    OPEN,
    closed_figures,
    closed_rows_of,
    in_stages,
    is_won_deal,
)
from crm_plugins.analytics.filters import Filters
from crm_plugins.analytics.registry import Column, Metric, money, ratio
from crmcore.sdk import Deal

NO_REASON = "(no reason given)"


def reason_key(reason: str | None) -> str:
    """A short stable row key for a reason (reasons are free text up to 300 characters)."""
    return sql.NO_OWNER if not reason else hashlib.sha1(reason.encode()).hexdigest()[:12]


def _closed_in_range(f: Filters, *columns: Any) -> Any:
    return sql.deals(f, *columns).where(in_stages(CLOSED) & Deal.closed_at.is_null(False) & f.in_range(Deal.closed_at))


def reason_rows(f: Filters) -> list[dict[str, Any]]:
    """Deals closed in the range per reason: won, lost, value lost, share of the losses."""
    won = is_won_deal()
    query = (
        _closed_in_range(f, Deal.lost_reason, fn.SUM(peewee.Case(None, [(won, 1)], 0)), fn.SUM(peewee.Case(None, [(won, 0)], 1)), fn.SUM(peewee.Case(None, [(won, 0)], Deal.value)))
        .group_by(Deal.lost_reason)
        .tuples()
    )
    merged: dict[str, list[Any]] = {}
    for reason, won_count, lost_count, lost_value in query:
        label = reason.strip() if reason and reason.strip() else NO_REASON
        figures = merged.setdefault(label, [None if label == NO_REASON else label, 0, 0, money(0)])
        figures[1] += int(won_count or 0)
        figures[2] += int(lost_count or 0)
        figures[3] += money(lost_value)
    all_lost = sum(v[2] for v in merged.values())
    rows = [
        {"key": reason_key(raw), "label": label, "won": won_count, "lost": lost_count, "lost_value": value, "lost_share": ratio(lost_count, all_lost)}
        for label, (raw, won_count, lost_count, value) in merged.items()
    ]
    rows.sort(key=lambda r: (r["label"] == NO_REASON, -r["lost"], r["label"].lower()))
    rows.append({"key": sql.ALL, "label": "Total", "won": sum(r["won"] for r in rows), "lost": all_lost, "lost_value": sum((r["lost_value"] for r in rows), money(0)), "lost_share": 1.0 if all_lost else None})
    return rows


def reason_records(f: Filters, key: str) -> Any:
    query = _closed_in_range(f, Deal.id)
    if key == sql.ALL:
        return query
    if key == sql.NO_OWNER:
        return query.where(Deal.lost_reason.is_null() | (fn.TRIM(Deal.lost_reason) == ""))
    reasons = [r for (r,) in _closed_in_range(f, Deal.lost_reason).where(Deal.lost_reason.is_null(False)).distinct().tuples() if reason_key(r.strip()) == key]
    if not reasons:
        raise ValueError(key)
    return query.where(fn.TRIM(Deal.lost_reason) == reasons[0].strip())


def velocity_rows(f: Filters) -> list[dict[str, Any]]:
    """Per owner: open deals (now) × win rate × average won deal size ÷ sales cycle days."""
    open_counts = dict(sql.deals(f, Deal.owner, fn.COUNT(Deal.id)).where(in_stages(OPEN)).group_by(Deal.owner).tuples())
    raw = closed_figures(f)
    names = sql.user_names([*open_counts, *(owner for owner, *_ in raw)])  # one query for both
    closed = {r["key"]: r for r in closed_rows_of(raw, names)}
    owners = {sql.owner_key(o): o for o in open_counts}
    for key in closed:
        if key != sql.ALL:
            owners.setdefault(key, None if key == sql.NO_OWNER else int(key))
    rows = []
    for key, owner in owners.items():
        label = closed[key]["label"] if key in closed else (names.get(owner, "(no owner)") if owner else "(no owner)")
        rows.append(_velocity_row(key, label, int(open_counts.get(owner, 0) or 0), closed.get(key)))
    rows.sort(key=lambda r: r["label"].lower())
    rows.append(_velocity_row(sql.ALL, "Total", sum(int(c or 0) for c in open_counts.values()), closed.get(sql.ALL)))
    return rows


def _velocity_row(key: str, label: str, open_deals: int, closed: dict[str, Any] | None) -> dict[str, Any]:
    won = closed["won"] if closed else 0
    win_rate = closed["win_rate"] if closed else None
    average = closed["average_value"] if closed else None
    cycle_days = closed["_seconds"] / won / 86400 if won else None
    velocity = None
    if win_rate is not None and average is not None and cycle_days:
        # From the unrounded ratio and cycle, so the figure does not carry their rounding.
        velocity = money(open_deals * (won / (closed["won"] + closed["lost"])) * float(average) / cycle_days)
    return {"key": key, "label": label, "open_deals": open_deals, "win_rate": win_rate, "average_value": average,
            "cycle_days": round(cycle_days, 2) if cycle_days is not None else None, "velocity": velocity}


def velocity_records(f: Filters, key: str) -> Any:
    return sql.deals(f, Deal.id).where(in_stages(OPEN) & sql.owner_condition(Deal.owner, key))


METRICS = [
    Metric(
        "win-loss-reasons",
        "Win/loss reasons",
        "Deals closed in the range (won or lost), grouped by their reason (the deal's lost reason, the core's one reason "
        "field; leading and trailing spaces ignored; \"(no reason given)\" when empty, where most won deals fall): how many "
        "were won and lost, the value lost, and each reason's share of the lost deals, lost ÷ all lost. " + DEALS_NOTE,
        "deal",
        (Column("won", "Won"), Column("lost", "Lost"), Column("lost_value", "Value lost", "money"), Column("lost_share", "Share of losses", "percent")),
        reason_rows,
        reason_records,
        chart_column="lost",
        date_applies_to="deal closed",
    ),
    Metric(
        "velocity",
        "Pipeline velocity",
        "Per owner, the value the pipeline is expected to turn into per day: open deals × win rate × average deal size ÷ "
        "sales cycle (days). Open deals are those open now (the date range does not select them); the win rate "
        "(won ÷ closed), the average won deal size and the sales cycle (average days from creation to win) come from the "
        "deals closed in the range. No figure when nothing was won in the range. " + DEALS_NOTE,
        "deal",
        (Column("open_deals", "Open deals"), Column("win_rate", "Win rate", "percent"), Column("average_value", "Average deal size", "money"),
         Column("cycle_days", "Sales cycle (days)", "days"), Column("velocity", "Velocity per day", "money")),
        velocity_rows,
        velocity_records,
        chart_column="velocity",
        date_applies_to="deal closed (win rate, size, cycle)",
    ),
]
