"""What a metric is: its name, written definition, table columns, the function that
computes its rows in SQL, and the query of the records behind each row (drill-down).

Cells are turned into text by :func:`cell_text` only, for the page, the CSV export and
the API's ``text`` of each row alike, so an export is identical to what the screen shows.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_plugins.analytics.filters import Filters

CENTS = decimal.Decimal("0.01")

#: Column kinds and how their cells read.
KINDS = ("text", "int", "money", "percent", "days", "hours", "decimal")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "int"


@dataclass(frozen=True)
class Metric:
    """One figure (a table of rows) of the analytics."""

    name: str
    title: str
    definition: str
    #: The kind of record behind a row: ``deal``, ``lead`` or ``activity``.
    entity: str
    columns: tuple[Column, ...]
    #: filters -> rows (dicts with ``key``, ``label`` and a value per column); a row
    #: with ``key == "all"`` is the total.
    compute: Callable[[Filters], list[dict[str, Any]]]
    #: (filters, row key) -> a query selecting the ids (``id``) of the row's records.
    records: Callable[[Filters, str], Any]
    #: The column drawn by the dashboard's chart, and how.
    chart_column: str = ""
    chart_type: str = "bar"
    #: Which filters apply to this metric (the others are ignored, and the page says so).
    filters: tuple[str, ...] = field(default=("date", "owner", "pipeline", "source", "currency"))
    #: Which timestamp the date range applies to, in words.
    date_applies_to: str = ""


def money(value: Any) -> decimal.Decimal:
    """A SUM of amounts (a float on SQLite, a Decimal on PostgreSQL) rounded to cents."""
    return decimal.Decimal(str(value or 0)).quantize(CENTS, rounding=decimal.ROUND_HALF_UP)


def ratio(part: Any, whole: Any) -> float | None:
    """part / whole rounded to 4 places; None when whole is 0 (shown as a dash)."""
    return round(float(part) / float(whole), 4) if whole else None


def cell_text(kind: str, value: Any) -> str:
    """How a cell reads on the page and in the CSV export."""
    if value is None:
        return "–"
    if kind == "money":
        return f"{money(value):,.2f}"
    if kind == "percent":
        return f"{float(value) * 100:.1f}%"
    if kind in ("days", "hours", "decimal"):
        return f"{float(value):,.1f}"
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


def row_texts(metric: Metric, row: dict[str, Any]) -> list[str]:
    """The row's cells as the page shows them: the label, then each column."""
    return [row["label"]] + [cell_text(c.kind, row.get(c.key)) for c in metric.columns]


def header(metric: Metric, currency: str) -> list[str]:
    """The table's header: the row label's heading, then the columns (amounts name the currency)."""
    return [ROW_HEADINGS.get(metric.name, "Group")] + [f"{c.label} ({currency})" if c.kind == "money" else c.label for c in metric.columns]


#: The heading of each metric's row labels.
ROW_HEADINGS = {
    "pipeline": "Stage",
    "funnel": "Stage",
    "time-in-stage": "Stage",
    "win-rate": "Owner",
    "deal-size": "Owner",
    "sales-cycle": "Owner",
    "win-loss-reasons": "Reason",
    "velocity": "Owner",
    "lead-sources": "Source",
    "response-time": "Owner",
    "activities": "Rep",
    "forecast": "Period",
    "forecast-accuracy": "Month",
}
