"""Customer health 0-100 for contacts and companies with a won deal.

One query per kind of customer gathers won deals, activity (last one, how many in the
window), average sentiment in the window and the record's custom fields (the
satisfaction value: an NPS or CSAT answer kept in a custom field whose key is the
``satisfaction_field`` setting). Four components, explained:

- recency (30): last activity within 7 days 30, 30 days 20, 90 days 8, else 0;
- engagement (25): activities in the window against ``engagement_target``;
- sentiment (25): the window's average sentiment mapped from -1..1 to 0..25 (no scored
  interaction: neutral, 12.5);
- satisfaction (20): the value against ``satisfaction_max``; without a value the other
  three components are scaled up to 100, and the factor says so.

Bands: green 75-100, yellow 50-74, red 0-49.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from crm_plugins.insights import alerts, bulk
from crm_plugins.insights.models import CustomerHealth, HealthHistory
from crm_plugins.insights.risk import as_datetime
from crmcore import sdk

ENTITIES = {"contact": ("crm_contact", "contact_id"), "company": ("crm_company", "company_id")}

CUSTOMER_FACTS = """
SELECT r.id, r.custom, w.n_won, a.last_at, COALESCE(a.n_recent, 0), se.average
FROM {table} r
JOIN (SELECT d.{column} AS rid, COUNT(*) AS n_won FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id
      WHERE d.tenant_id = {p} AND s.is_won = {p} AND d.{column} IS NOT NULL GROUP BY d.{column}) w ON w.rid = r.id
LEFT JOIN (SELECT {column} AS rid, MAX(occurred_at) AS last_at,
                  SUM(CASE WHEN occurred_at >= {p} THEN 1 ELSE 0 END) AS n_recent
           FROM crm_activity WHERE tenant_id = {p} AND {column} IS NOT NULL GROUP BY {column}) a ON a.rid = r.id
LEFT JOIN (SELECT {column} AS rid, AVG(score) AS average FROM insights_sentiment
           WHERE tenant_id = {p} AND {column} IS NOT NULL AND score IS NOT NULL AND occurred_at >= {p}
           GROUP BY {column}) se ON se.rid = r.id
WHERE r.tenant_id = {p}
"""


def band(score: float) -> str:
    """green 75-100, yellow 50-74, red 0-49."""
    if score >= 75:
        return "green"
    return "yellow" if score >= 50 else "red"


def _satisfaction(custom: Any, key: str) -> float | None:
    import json

    values = json.loads(custom) if isinstance(custom, str) else (custom or {})
    value = values.get(key) if isinstance(values, dict) else None
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def assess(last_at: Any, n_recent: int, average: float | None, satisfaction: float | None, now: dt.datetime, settings: Any) -> tuple[int, list[dict[str, Any]]]:
    """The score and its factors from one customer's facts."""
    last = as_datetime(last_at)
    days = None if last is None else (now - last).days
    recency = 0 if days is None else 30 if days <= 7 else 20 if days <= 30 else 8 if days <= 90 else 0
    window = settings["health_window_days"]
    engagement = 25 * min(n_recent / settings["engagement_target"], 1.0)
    mood = 12.5 if average is None else 25 * (max(-1.0, min(1.0, average)) + 1) / 2
    factors = [
        {"key": "recency", "label": "Recency", "points": recency, "max": 30, "reason": "No activity yet" if days is None else f"Last activity {days} days ago"},
        {"key": "engagement", "label": "Engagement", "points": round(engagement, 1), "max": 25, "reason": f"{n_recent} activities in {window:g} days (target {settings['engagement_target']})"},
        {"key": "sentiment", "label": "Sentiment", "points": round(mood, 1), "max": 25, "reason": "No scored interactions (neutral)" if average is None else f"Average sentiment {average:+.2f} in {window:g} days"},
    ]
    total = recency + engagement + mood
    if satisfaction is None:
        total = total * 100 / 80
        factors.append({"key": "satisfaction", "label": "Satisfaction", "points": None, "max": 20, "reason": f"No '{settings['satisfaction_field']}' value: the other factors count for 100"})
    else:
        points = 20 * max(0.0, min(satisfaction / settings["satisfaction_max"], 1.0))
        total += points
        factors.append({"key": "satisfaction", "label": "Satisfaction", "points": round(points, 1), "max": 20, "reason": f"Satisfaction {satisfaction:g} of {settings['satisfaction_max']:g}"})
    return int(max(0.0, min(100.0, total)) + 0.5), factors  # half up: 74.5 is 75, green


def customer_facts(tenant: Any, entity: str, now: dt.datetime) -> list[tuple]:
    table, column = ENTITIES[entity]
    p = "%s" if sdk.is_postgres() else "?"
    since = now - dt.timedelta(days=sdk.settings(tenant, "insights")["health_window_days"])
    params: list[Any] = [tenant.id, True, since, tenant.id, tenant.id, since, tenant.id]
    if not sdk.is_postgres():
        params = [v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v for v in params]
    return list(sdk.database.execute_sql(CUSTOMER_FACTS.format(table=table, column=column, p=p), params).fetchall())


def recompute(tenant: Any) -> dict[str, int]:
    """Score every customer of ``tenant``, store the current health and today's history
    row, and announce band changes (after the commit)."""
    settings = sdk.settings(tenant, "insights")
    now = sdk.utcnow()
    today = now.date()
    counts = {}
    with sdk.tenant_context(tenant), sdk.atomic():
        for entity in ENTITIES:
            previous = {rid: (score, b) for rid, score, b in CustomerHealth.select(CustomerHealth.record_id, CustomerHealth.score, CustomerHealth.band).where(CustomerHealth.entity == entity).tuples()}
            current, history = [], []
            for rid, custom, _n_won, last_at, n_recent, average in customer_facts(tenant, entity, now):
                score, factors = assess(last_at, int(n_recent or 0), None if average is None else float(average), _satisfaction(custom, settings["satisfaction_field"]), now, settings)
                current.append((tenant.id, entity, rid, score, band(score), factors, now))
                history.append((tenant.id, entity, rid, today, score, band(score)))
            CustomerHealth.delete().where(CustomerHealth.entity == entity).execute()
            HealthHistory.delete().where(HealthHistory.entity == entity, HealthHistory.day == today).execute()
            bulk.insert_rows("insights_customer_health", ("tenant_id", "entity", "record_id", "score", "band", "factors", "computed_at"), current, json_columns=("factors",))
            bulk.insert_rows("insights_health_history", ("tenant_id", "entity", "record_id", "day", "score", "band"), history)
            for _tenant, _entity, rid, score, new_band, factors, _at in current:
                before = previous.get(rid)
                if before is None or before[1] != new_band:
                    sdk.send_signal("customer_health_changed", tenant, entity=entity, record_id=rid, score=score, band=new_band, previous_band=before[1] if before else None)
                if before is not None and new_band == "red" and before[1] != "red":
                    reasons = "; ".join(f["reason"] for f in factors)
                    alerts.raise_alert(tenant, "health_declined", entity, rid, f"Customer health turned red ({score})", reasons)
            counts[entity] = len(current)
    return counts


def health_job(tenant: Any) -> None:
    recompute(tenant)


def history_of(entity: str, record_id: int, days: int = 90) -> list[dict[str, Any]]:
    since = sdk.utcnow().date() - dt.timedelta(days=days)
    h = HealthHistory
    return list(h.select(h.day, h.score, h.band).where(h.entity == entity, h.record_id == record_id, h.day >= since).order_by(h.day).dicts())
