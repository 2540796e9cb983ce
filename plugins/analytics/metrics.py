"""The catalogue of metrics, their results as the API and the page show them, and the
records behind a row (drill-down), a page at a time."""

from __future__ import annotations

from typing import Any

from crm_plugins.analytics import deal_metrics, forecast, lead_metrics, outcome_metrics
from crm_plugins.analytics.filters import Filters
from crm_plugins.analytics.registry import Metric, header, row_texts
from crmcore.sdk import Activity, Deal, Lead

METRICS: dict[str, Metric] = {m.name: m for m in deal_metrics.METRICS + outcome_metrics.METRICS + forecast.METRICS + lead_metrics.METRICS}
ENTITY_MODELS = {"deal": Deal, "lead": Lead, "activity": Activity}


def describe(metric: Metric) -> dict[str, Any]:
    """What a metric is, without figures."""
    return {
        "name": metric.name,
        "title": metric.title,
        "definition": metric.definition,
        "entity": metric.entity,
        "date_applies_to": metric.date_applies_to,
        "filters": list(metric.filters),
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in metric.columns],
    }


def result(metric: Metric, f: Filters, computed: dict[Any, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The metric's figures: each row with its values and its cells as shown on screen.
    ``computed`` (a dict kept for one page) shares rows between metrics computed by the
    same function (win rate, deal size and sales cycle are one query)."""
    if computed is None:
        rows = metric.compute(f)
    else:
        if metric.compute not in computed:
            computed[metric.compute] = metric.compute(f)
        rows = computed[metric.compute]
    return {
        "empty": not any(r.get(c.key) for r in rows for c in metric.columns),
        **describe(metric),
        "time_zone": f.time_zone,
        "currency": f.currency,
        "header": header(metric, f.currency),
        "rows": [
            {"key": r["key"], "label": r["label"], "total": r["key"] == "all", "values": {c.key: r.get(c.key) for c in metric.columns}, "cells": row_texts(metric, r)}
            for r in rows
        ],
    }


def record_ids(metric: Metric, f: Filters, key: str, limit: int, after_id: int | None) -> tuple[list[int], int | None]:
    """A page of the ids of the records behind a row, in id order, and the last id when
    there are more. Raises ValueError for a key that is not one of the metric's."""
    model = ENTITY_MODELS[metric.entity]
    query = metric.records(f, key)
    if after_id is not None:
        query = query.where(model.id > after_id)
    ids = [row[0] for row in query.order_by(model.id).limit(limit + 1).tuples()]
    return ids[:limit], (ids[limit - 1] if len(ids) > limit else None)
