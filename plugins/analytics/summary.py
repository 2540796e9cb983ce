"""The dashboard summary: headline figures, each the total row of a metric (so the
summary and the tables can never disagree), in six queries whatever the data."""

from __future__ import annotations

from typing import Any

from crm_plugins.analytics import deal_metrics, lead_metrics
from crm_plugins.analytics.filters import Filters
from crm_plugins.analytics.metrics import METRICS
from crm_plugins.analytics.registry import cell_text

#: (figure name, label, metric, column, kind)
HEADLINES = (
    ("open_deals", "Open deals", "pipeline", "deals", "int"),
    ("pipeline_value", "Pipeline value", "pipeline", "value", "money"),
    ("weighted_value", "Weighted pipeline", "pipeline", "weighted", "money"),
    ("win_rate", "Win rate", "win-rate", "win_rate", "percent"),
    ("average_deal_size", "Average deal size", "deal-size", "average_value", "money"),
    ("sales_cycle_days", "Sales cycle (days)", "sales-cycle", "avg_cycle_days", "days"),
    ("leads", "New leads", "lead-sources", "leads", "int"),
    ("lead_conversion", "Lead conversion", "lead-sources", "conversion", "percent"),
    ("response_hours", "Response time (hours)", "response-time", "avg_hours", "hours"),
    ("activities", "Activities", "activities", "activities", "int"),
)


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next((r for r in rows if r["key"] == "all"), {})


def figures(f: Filters, computed: dict[Any, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The headline figures; ``computed`` holds rows the page computed already (by function)."""
    computed = computed if computed is not None else {}
    for function in (deal_metrics.pipeline_rows, deal_metrics.closed_rows, lead_metrics.source_rows, lead_metrics.response_rows, lead_metrics.activity_rows):
        if function not in computed:
            computed[function] = function(f)
    out = []
    for name, label, metric, column, kind in HEADLINES:
        value = _total(computed[METRICS[metric].compute]).get(column)
        out.append({"name": name, "label": label, "value": value, "text": cell_text(kind, value), "kind": kind, "metric": metric, "definition": METRICS[metric].definition})
    return out
