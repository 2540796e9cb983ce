"""Forecast by expected close month or quarter (pipeline, best case, commit, weighted,
closed won) with a run-rate forecast, and the run rate's back-tested error.

Periods are months (or quarters) of the tenant's time zone. Bucketing a timestamp by
local month is a CASE over the periods' UTC bounds, computed in Python, so the SQL stays
portable and DST-exact (no time-zone functions in SQL): three queries per metric.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import peewee
from peewee import fn

from crm_plugins.analytics import sql
from crm_plugins.analytics.deal_metrics import DEALS_NOTE, OPEN, in_stages
from crm_plugins.analytics.filters import Filters, local_midnight_utc
from crm_plugins.analytics.registry import Column, Metric, money, ratio
from crmcore.sdk import Deal, Stage

#: Forecast categories by the deal's probability (an open deal in "commit" is in "best case" too).
COMMIT_PROBABILITY = 75
BEST_CASE_PROBABILITY = 50
#: Months of history the run rate averages, and months it is back-tested on.
RUN_RATE_MONTHS = 6
BACKTEST_MONTHS = 6
MAX_PERIODS = 36


def _add_months(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + day.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


def _months_per_period(f: Filters) -> int:
    return 3 if f.period == "quarter" else 1


def _period_start(day: dt.date, step: int) -> dt.date:
    return dt.date(day.year, (day.month - 1) // step * step + 1, 1)


def _label(start: dt.date, step: int) -> str:
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}" if step == 3 else f"{start.year}-{start.month:02d}"


def periods(f: Filters) -> list[tuple[str, dt.date, dt.date]]:
    """(key, first day, first day after) of each period of the range: from the range's
    first day (else the current period) to its last (else six months on)."""
    step = _months_per_period(f)
    first = _period_start(f.date_from or f.as_of, step)
    last = f.date_to or _add_months(first, 6 - 1 if step == 1 else 6)
    out = []
    start = first
    while start <= last and len(out) < MAX_PERIODS:
        end = _add_months(start, step)
        out.append((_label(start, step), start, end))
        start = end
    return out


def _bucket(column: Any, bounds: list[tuple[str, Any, Any]]) -> Any:
    return peewee.Case(None, [((column >= lo) & (column < hi), key) for key, lo, hi in bounds], None)


def _utc_bounds(f: Filters, spans: list[tuple[str, dt.date, dt.date]]) -> list[tuple[str, dt.datetime, dt.datetime]]:
    zone = zoneinfo.ZoneInfo(f.time_zone)
    return [(key, local_midnight_utc(lo, zone), local_midnight_utc(hi, zone)) for key, lo, hi in spans]


def won_by_period(f: Filters, spans: list[tuple[str, dt.date, dt.date]]) -> dict[str, tuple[int, Any]]:
    """Deals won per period (by the local day they closed): {key: (count, value)}."""
    if not spans:
        return {}
    bounds = _utc_bounds(f, spans)
    bucket = _bucket(Deal.closed_at, bounds)
    query = (
        sql.deals(f, bucket.alias("bucket"), fn.COUNT(Deal.id), fn.SUM(Deal.value))
        .where(in_stages(Stage.is_won == True) & (Deal.closed_at >= bounds[0][1]) & (Deal.closed_at < bounds[-1][2]))  # noqa: E712
        .group_by(bucket)
        .tuples()
    )
    return {key: (int(count), money(value)) for key, count, value in query if key is not None}


def _history(f: Filters) -> tuple[list[tuple[str, dt.date, dt.date]], dict[str, tuple[int, Any]]]:
    """The full months before ``as_of`` that the run rate and its back-test need."""
    current = _period_start(f.as_of, 1)
    months = [(_label(_add_months(current, -i), 1), _add_months(current, -i), _add_months(current, -i + 1)) for i in range(RUN_RATE_MONTHS + BACKTEST_MONTHS, 0, -1)]
    return months, won_by_period(f, months)


def _run_rate(values: list[Any]) -> Any:
    return money(sum(values, money(0)) / len(values)) if values else None


def forecast_rows(f: Filters) -> list[dict[str, Any]]:
    spans = periods(f)
    if not spans:
        return []
    best, commit = fn.SUM(peewee.Case(None, [(Deal.probability >= BEST_CASE_PROBABILITY, Deal.value)], 0)), fn.SUM(peewee.Case(None, [(Deal.probability >= COMMIT_PROBABILITY, Deal.value)], 0))
    bucket = _bucket(Deal.expected_close_date, spans)
    open_query = (
        sql.deals(f, bucket.alias("bucket"), fn.COUNT(Deal.id), fn.SUM(Deal.value), best, commit, fn.SUM(Deal.value * Deal.probability))
        .where(in_stages(OPEN) & (Deal.expected_close_date >= spans[0][1]) & (Deal.expected_close_date < spans[-1][2]))
        .group_by(bucket)
        .tuples()
    )
    open_figures = {key: row for key, *row in open_query if key is not None}
    won = won_by_period(f, spans)
    months, history = _history(f)
    rate = _run_rate([history.get(key, (0, money(0)))[1] for key, *_ in months[-RUN_RATE_MONTHS:]])
    step = _months_per_period(f)
    rows = []
    for key, _lo, _hi in spans:
        count, value, best_value, commit_value, weighted = open_figures.get(key, (0, 0, 0, 0, 0))
        rows.append({
            "key": key, "label": key, "open_deals": int(count or 0), "pipeline": money(value), "best_case": money(best_value), "commit": money(commit_value),
            "weighted": money((weighted or 0) / 100), "closed_won": won.get(key, (0, money(0)))[1], "run_rate": money(rate * step) if rate is not None else None,
        })
    total = {"key": sql.ALL, "label": "Total"}
    for column in ("open_deals", "pipeline", "best_case", "commit", "weighted", "closed_won"):
        total[column] = sum((r[column] for r in rows), 0 if column == "open_deals" else money(0))
    total["run_rate"] = sum((r["run_rate"] for r in rows), money(0)) if rate is not None else None
    return rows + [total]


def forecast_records(f: Filters, key: str) -> Any:
    spans = [s for s in periods(f) if key in (sql.ALL, s[0])]
    if not spans:
        raise ValueError(key)
    bounds = _utc_bounds(f, spans)
    expected = (Deal.expected_close_date >= spans[0][1]) & (Deal.expected_close_date < spans[-1][2]) & in_stages(OPEN)
    won = (Deal.closed_at >= bounds[0][1]) & (Deal.closed_at < bounds[-1][2]) & in_stages(Stage.is_won == True)  # noqa: E712
    return sql.deals(f, Deal.id).where(expected | won)


def accuracy_rows(f: Filters) -> list[dict[str, Any]]:
    """For each of the last BACKTEST_MONTHS full months: what the run rate (the average of
    the RUN_RATE_MONTHS before it) predicted, what was won, and the error."""
    months, history = _history(f)
    values = [history.get(key, (0, money(0)))[1] for key, *_ in months]
    rows = []
    for i in range(RUN_RATE_MONTHS, len(months)):
        predicted, actual = _run_rate(values[i - RUN_RATE_MONTHS : i]), values[i]
        rows.append({"key": months[i][0], "label": months[i][0], "predicted": predicted, "actual": actual, "error": predicted - actual, "abs_pct_error": ratio(abs(predicted - actual), actual)})
    scored = [r["abs_pct_error"] for r in rows if r["abs_pct_error"] is not None]
    rows.append({
        "key": sql.ALL, "label": "Mean (MAPE)", "predicted": sum((r["predicted"] for r in rows), money(0)), "actual": sum((r["actual"] for r in rows), money(0)),
        "error": sum((r["error"] for r in rows), money(0)), "abs_pct_error": round(sum(scored) / len(scored), 4) if scored else None,
    })
    return rows


def accuracy_records(f: Filters, key: str) -> Any:
    months, _history_figures = _history(f)
    tested = [m for m in months[RUN_RATE_MONTHS:] if key in (sql.ALL, m[0])]
    if not tested:
        raise ValueError(key)
    bounds = _utc_bounds(f, tested)
    return sql.deals(f, Deal.id).where(in_stages(Stage.is_won == True) & (Deal.closed_at >= bounds[0][1]) & (Deal.closed_at < bounds[-1][2]))  # noqa: E712


METRICS = [
    Metric(
        "forecast",
        "Forecast by expected close period",
        "Per month (or quarter, with period=quarter) of the range, in the tenant's time zone (without a range: six months "
        "from the current one): open deals expected to close in it (by expected close date) and their value in the forecast "
        f"categories: pipeline (all of them), best case (probability ≥ {BEST_CASE_PROBABILITY}%), commit (probability ≥ "
        f"{COMMIT_PROBABILITY}%) and weighted (value × probability); closed won, the deals won in the period; and the run rate, "
        f"the average value won per month over the {RUN_RATE_MONTHS} full months before as_of (today), as a statistical "
        "forecast. " + DEALS_NOTE,
        "deal",
        (Column("open_deals", "Open deals"), Column("pipeline", "Pipeline", "money"), Column("best_case", "Best case", "money"), Column("commit", "Commit", "money"),
         Column("weighted", "Weighted", "money"), Column("closed_won", "Closed won", "money"), Column("run_rate", "Run-rate forecast", "money")),
        forecast_rows,
        forecast_records,
        chart_column="weighted",
        date_applies_to="expected close date (open deals), deal closed (won)",
    ),
    Metric(
        "forecast-accuracy",
        "Run-rate forecast: back-tested error",
        f"For each of the {BACKTEST_MONTHS} full months before as_of (today): what the run-rate forecast would have predicted "
        f"(the average value won per month over the {RUN_RATE_MONTHS} months before that month), what was won, the error "
        "(predicted − won) and the absolute percentage error; the total row gives their mean (MAPE, months with nothing won "
        "left out). The date range does not apply. " + DEALS_NOTE,
        "deal",
        (Column("predicted", "Predicted", "money"), Column("actual", "Won", "money"), Column("error", "Error", "money"), Column("abs_pct_error", "Abs. % error", "percent")),
        accuracy_rows,
        accuracy_records,
        chart_column="abs_pct_error",
        filters=("owner", "pipeline", "source", "currency"),
        date_applies_to="",
    ),
]
