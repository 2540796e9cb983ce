"""Deal metrics: open pipeline by stage, the stage-to-stage funnel, time in stage, win
rate, average deal size and sales cycle. Each computes its rows in one or two queries
whatever the number of deals, and gives the query of the deals behind a row."""

from __future__ import annotations

from typing import Any

import peewee
from peewee import fn

from crm_plugins.analytics import sql
from crm_plugins.analytics.filters import Filters
from crm_plugins.analytics.registry import Column, Metric, money, ratio
from crmcore import sdk
from crmcore.sdk import Deal, DealStageChange, Pipeline, Stage

OPEN = (Stage.is_won == False) & (Stage.is_lost == False)  # noqa: E712
CLOSED = (Stage.is_won == True) | (Stage.is_lost == True)  # noqa: E712


def in_stages(condition: Any) -> Any:
    """The deal's stage is one of the stages matching ``condition``. An IN (subquery)
    rather than a join: planners then read the deals once by their date index instead of
    once per stage (SQLite put the handful of stages in the outer loop)."""
    return Deal.stage.in_(Stage.select(Stage.id).where(condition))


def is_won_deal() -> Any:
    """The deal's stage is a won stage, as ``stage_id IN (<ids>)`` with the won stages' ids
    read first (one small query). For the CASE of a per-deal sum: an IN (subquery) there is
    probed once per deal and branch (four hash probes a deal on PostgreSQL, which made the
    closed-deal metrics 1.3x the hand-written join at 1,000,000 deals)."""
    return Deal.stage.in_([i for (i,) in Stage.select(Stage.id).where(Stage.is_won == True).tuples()])  # noqa: E712


def _stage_label(stage: Stage, pipeline_name: str, several: bool) -> str:
    return f"{pipeline_name} · {stage.name}" if several else stage.name


# --------------------------------------------------------------------------- open pipeline


def pipeline_rows(f: Filters) -> list[dict[str, Any]]:
    figures = {
        stage_id: (count, total, weighted)
        for stage_id, count, total, weighted in sql.deals(f, Deal.stage, fn.COUNT(Deal.id), fn.SUM(Deal.value), fn.SUM(Deal.value * Deal.probability))
        .where(in_stages(OPEN) & f.in_range(Deal.created_at))
        .group_by(Deal.stage)
        .tuples()
    }
    stages = Stage.select(Stage, Pipeline.name.alias("pipeline_name")).join(Pipeline, on=(Stage.pipeline == Pipeline.id)).where(OPEN)
    if f.pipeline_id is not None:
        stages = stages.where(Stage.pipeline == f.pipeline_id)
    stages = list(stages.order_by(Pipeline.order, Pipeline.id, Stage.order, Stage.id).objects())
    several = len({s.pipeline_id for s in stages}) > 1
    rows = []
    for stage in stages:
        count, total, weighted = figures.get(stage.id, (0, 0, 0))
        rows.append({"key": str(stage.id), "label": _stage_label(stage, stage.pipeline_name, several), "deals": int(count or 0), "value": money(total), "weighted": money((weighted or 0) / 100)})
    rows.append({"key": sql.ALL, "label": "Total", "deals": sum(r["deals"] for r in rows), "value": sum((r["value"] for r in rows), money(0)), "weighted": money(sum(float(w or 0) for *_, w in figures.values()) / 100)})
    return rows


def pipeline_records(f: Filters, key: str) -> Any:
    query = sql.deals(f, Deal.id).where(in_stages(OPEN) & f.in_range(Deal.created_at))
    return query if key == sql.ALL else query.where(Deal.stage == sql.int_key(key))


# --------------------------------------------------------------------------- funnel


def _funnel_stages(f: Filters) -> list[Stage]:
    pipeline = sql.funnel_pipeline(f)
    if pipeline is None:
        return []
    return list(Stage.select().where((Stage.pipeline == pipeline.id) & (Stage.is_lost == False)).order_by(Stage.order, Stage.id))  # noqa: E712


def _furthest(f: Filters, stages: list[Stage]) -> Any:
    """Per deal of the cohort (deals of the funnel's pipeline created in the range), the
    rank of the furthest stage it was ever in: the stages it entered (history), the one
    it was created in (the first change's ``from_stage``) and the one it is in now. Lost
    stages have no rank, so a lost deal counts up to where it got."""
    entered = DealStageChange.select(DealStageChange.deal.alias("deal_id"), DealStageChange.to_stage.alias("stage_id"))
    left = DealStageChange.select(DealStageChange.deal.alias("deal_id"), DealStageChange.from_stage.alias("stage_id"))
    current = Deal.select(Deal.id.alias("deal_id"), Deal.stage.alias("stage_id"))
    visited = entered.union_all(left).union_all(current).alias("visited")
    rank = fn.MAX(sql.stage_rank(stages, visited.c.stage_id))
    return (
        sql.deals(f, Deal.id.alias("deal_id"), rank.alias("furthest"))
        .join(visited, on=(visited.c.deal_id == Deal.id))
        .where((Deal.pipeline == stages[0].pipeline_id) & f.in_range(Deal.created_at))
        .group_by(Deal.id)
    ), rank


def funnel_rows(f: Filters) -> list[dict[str, Any]]:
    stages = _funnel_stages(f)
    if not stages:
        return []
    furthest, _rank = _furthest(f, stages)
    per_deal = furthest.alias("per_deal")
    counts = dict(
        peewee.Select([per_deal], [per_deal.c.furthest, fn.COUNT(peewee.SQL("*"))]).where(per_deal.c.furthest.is_null(False)).group_by(per_deal.c.furthest).bind(sdk.database).tuples()
    )
    rows: list[dict[str, Any]] = []
    previous = None
    for rank, stage in enumerate(stages, start=1):
        reached = sum(n for r, n in counts.items() if r >= rank)
        row = {"key": str(stage.id), "label": stage.name, "reached": reached, "conversion": None, "drop_off": None, "drop_off_rate": None}
        if previous is not None:
            row.update(conversion=ratio(reached, previous), drop_off=previous - reached, drop_off_rate=ratio(previous - reached, previous))
        rows.append(row)
        previous = reached
    return rows


def funnel_records(f: Filters, key: str) -> Any:
    stages = _funnel_stages(f)
    if not stages:
        return Deal.select(Deal.id).where(False)
    furthest, rank = _furthest(f, stages)
    position = 1 if key == sql.ALL else next((i for i, s in enumerate(stages, start=1) if str(s.id) == key), None)
    if position is None:
        return Deal.select(Deal.id).where(False)
    return furthest.select(Deal.id).having(rank >= position)


# --------------------------------------------------------------------------- time in stage


def _left_in_range(f: Filters, stage_ids: list[int]) -> Any:
    return sql.deal_filters(DealStageChange.select().join(Deal, on=(DealStageChange.deal == Deal.id)), f).where(
        DealStageChange.from_stage.in_(stage_ids) & f.in_range(DealStageChange.changed_at)
    )


def time_in_stage_rows(f: Filters) -> list[dict[str, Any]]:
    # COUNT(*), not COUNT(id): the id column would widen the rows the per-deal grouping
    # hashes (and spills at 1,000,000 deals on PostgreSQL) for a count that is the same.
    stages = [s for s in _funnel_stages(f) if not s.is_won]
    if not stages:
        return []
    per_deal = (
        _left_in_range(f, [s.id for s in stages])
        .select(DealStageChange.from_stage.alias("stage_id"), fn.SUM(DealStageChange.seconds_in_previous).alias("seconds"), fn.COUNT(peewee.SQL("*")).alias("visits"))
        .group_by(DealStageChange.from_stage, DealStageChange.deal)
        .alias("per_deal")
    )
    figures = {
        stage_id: (deals, visits, seconds)
        for stage_id, deals, visits, seconds in peewee.Select([per_deal], [per_deal.c.stage_id, fn.COUNT(peewee.SQL("*")), fn.SUM(per_deal.c.visits), fn.AVG(per_deal.c.seconds)])
        .group_by(per_deal.c.stage_id)
        .bind(sdk.database)
        .tuples()
    }
    rows = []
    for stage in stages:
        deals, visits, seconds = figures.get(stage.id, (0, 0, None))
        rows.append({"key": str(stage.id), "label": stage.name, "deals": int(deals or 0), "visits": int(visits or 0), "avg_days": None if seconds is None else round(float(seconds) / 86400, 2)})
    return rows


def time_in_stage_records(f: Filters, key: str) -> Any:
    stage_ids = [s.id for s in _funnel_stages(f) if not s.is_won]
    if key != sql.ALL:
        stage_ids = [i for i in stage_ids if str(i) == key]
    return sql.deals(f, Deal.id).where(Deal.id.in_(_left_in_range(f, stage_ids).select(DealStageChange.deal)))


# --------------------------------------------------------------------------- closed deals


def closed_rows(f: Filters) -> list[dict[str, Any]]:
    """Deals closed (won or lost) in the range, per owner and in total, in one query
    (after the won stages' ids), plus one for the owners' names."""
    raw = closed_figures(f)
    return closed_rows_of(raw, sql.user_names(owner for owner, *_ in raw))


def closed_figures(f: Filters) -> list[tuple[Any, ...]]:
    """(owner id, won, lost, won value, seconds from creation to win) of the deals closed in the range."""
    won = is_won_deal()
    query = (
        sql.deals(
            f,
            Deal.owner,
            fn.SUM(peewee.Case(None, [(won, 1)], 0)),
            fn.SUM(peewee.Case(None, [(won, 0)], 1)),
            fn.SUM(peewee.Case(None, [(won, Deal.value)], 0)),
            fn.SUM(peewee.Case(None, [(won, sql.seconds_between(Deal.closed_at, Deal.created_at))], None)),
        )
        .where(in_stages(CLOSED) & Deal.closed_at.is_null(False) & f.in_range(Deal.closed_at))
        .group_by(Deal.owner)
        .tuples()
    )
    return [(owner, int(w or 0), int(lost or 0), money(value), float(seconds or 0)) for owner, w, lost, value, seconds in query]


def closed_rows_of(raw: list[tuple[Any, ...]], names: dict[int, str]) -> list[dict[str, Any]]:
    """The rows of :func:`closed_rows` from its figures and the owners' names."""
    rows = [_closed_row(sql.owner_key(owner), names.get(owner, "(no owner)") if owner else "(no owner)", *figures) for owner, *figures in raw]
    rows.sort(key=lambda r: r["label"].lower())
    totals = [sum(r[k] for r in rows) for k in ("won", "lost")] + [sum((r["won_value"] for r in rows), money(0)), sum(r["_seconds"] for r in rows)]
    rows.append(_closed_row(sql.ALL, "Total", *totals))
    return rows


def _closed_row(key: str, label: str, won: int, lost: int, value: Any, seconds: float) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "won": won,
        "lost": lost,
        "win_rate": ratio(won, won + lost),
        "won_value": value,
        "average_value": money(value / won) if won else None,
        "avg_cycle_days": round(seconds / won / 86400, 2) if won else None,
        "_seconds": seconds,
    }


def closed_records(f: Filters, key: str, won_only: bool) -> Any:
    query = sql.deals(f, Deal.id).where(in_stages(CLOSED) & Deal.closed_at.is_null(False) & f.in_range(Deal.closed_at))
    if won_only:
        query = query.where(in_stages(Stage.is_won == True))  # noqa: E712
    return query.where(sql.owner_condition(Deal.owner, key))


DEALS_NOTE = "Deals in the chosen currency only (the tenant's default currency without one)."

METRICS = [
    Metric(
        "pipeline",
        "Open pipeline by stage",
        "Open deals (in a stage that is neither won nor lost) per stage of every pipeline (or the chosen one): how many, "
        "their value, and their weighted value, the sum of value × the deal's probability. The date range selects deals "
        "by creation day; without one every open deal counts. " + DEALS_NOTE,
        "deal",
        (Column("deals", "Deals"), Column("value", "Value", "money"), Column("weighted", "Weighted value", "money")),
        pipeline_rows,
        pipeline_records,
        chart_column="value",
        date_applies_to="deal created",
    ),
    Metric(
        "funnel",
        "Stage-to-stage funnel",
        "Deals of one pipeline (the chosen one, else the default) created in the range, counted at each stage they reached. "
        "A deal reached a stage when it was ever in that stage or a later one, from its stage history: a deal that skipped "
        "a stage counts as having passed it, a deal that went back and re-entered a stage counts once. Lost stages are not "
        "steps: a lost deal counts up to the furthest stage it got to. Conversion is reached ÷ reached at the previous "
        "stage; drop-off is the deals that did not get further. " + DEALS_NOTE,
        "deal",
        (Column("reached", "Reached"), Column("conversion", "Conversion from previous", "percent"), Column("drop_off", "Drop-off"), Column("drop_off_rate", "Drop-off rate", "percent")),
        funnel_rows,
        funnel_records,
        chart_column="reached",
        date_applies_to="deal created",
    ),
    Metric(
        "time-in-stage",
        "Time in stage",
        "For each open stage of one pipeline (the chosen one, else the default): the deals that left the stage in the range, "
        "the visits (a deal that came back to a stage and left it again makes two), and the average days a deal spent in "
        "the stage, adding up all its visits. From the stage history; a deal still in a stage is not counted until it "
        "leaves. " + DEALS_NOTE,
        "deal",
        (Column("deals", "Deals"), Column("visits", "Visits"), Column("avg_days", "Average days", "days")),
        time_in_stage_rows,
        time_in_stage_records,
        chart_column="avg_days",
        date_applies_to="deal left the stage",
    ),
    Metric(
        "win-rate",
        "Win rate",
        "Deals closed in the range, per owner: won, lost, and the win rate, won ÷ (won + lost). A deal closes when it "
        "enters a won or lost stage; a deal reopened since is open again and not counted. " + DEALS_NOTE,
        "deal",
        (Column("won", "Won"), Column("lost", "Lost"), Column("win_rate", "Win rate", "percent")),
        closed_rows,
        lambda f, key: closed_records(f, key, won_only=False),
        chart_column="win_rate",
        date_applies_to="deal closed",
    ),
    Metric(
        "deal-size",
        "Average deal size",
        "Deals won in the range, per owner: how many, their total value, and the average deal size, total ÷ count. " + DEALS_NOTE,
        "deal",
        (Column("won", "Won deals"), Column("won_value", "Won value", "money"), Column("average_value", "Average deal size", "money")),
        closed_rows,
        lambda f, key: closed_records(f, key, won_only=True),
        chart_column="average_value",
        date_applies_to="deal closed",
    ),
    Metric(
        "sales-cycle",
        "Sales cycle",
        "Deals won in the range, per owner: the average number of days from the deal's creation to its win. " + DEALS_NOTE,
        "deal",
        (Column("won", "Won deals"), Column("avg_cycle_days", "Average days to win", "days")),
        closed_rows,
        lambda f, key: closed_records(f, key, won_only=True),
        chart_column="avg_cycle_days",
        date_applies_to="deal closed",
    ),
]
