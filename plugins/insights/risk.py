"""Deal risk from explained factors, for every open deal of a tenant at once.

One SELECT gathers each open deal's facts (stage and its expected days, last activity,
contacts involved, open tasks, sentiment now and before); the factors and the level are
worked out in Python from that row; the rows that changed are written back in chunks.
So a recompute is a constant number of reads whatever the number of deals.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from crm_plugins.insights import alerts, bulk
from crm_plugins.insights.models import DealRisk
from crmcore import sdk
from crmcore.sdk import Deal, Stage, enqueue

TASK_KIND = "insights.risk"
LEVELS = ("low", "medium", "high")
DEFAULT_POINTS = {
    "stale_in_stage": 2, "no_activity": 2, "close_date_passed": 3, "negative_sentiment": 2, "single_contact": 1, "no_next_task": 1,
    "value_lowered": 1, "close_date_pushed": 2,
}
LABELS = {
    "stale_in_stage": "Stale in stage", "no_activity": "No recent activity", "close_date_passed": "Close date passed",
    "negative_sentiment": "Negative sentiment", "single_contact": "Single contact", "no_next_task": "No next task",
    "value_lowered": "Value lowered", "close_date_pushed": "Close date pushed back",
}
REMEDIES = {
    "stale_in_stage": "Call to unblock it, or move it to the stage it is really in",
    "no_activity": "Log a call or send a follow-up",
    "close_date_passed": "Agree a new close date (or close the deal)",
    "negative_sentiment": "Call to address the concerns raised",
    "single_contact": "Involve a second stakeholder",
    "no_next_task": "Plan the next step as a task",
    "value_lowered": "Ask what changed in scope or budget, and re-qualify the deal",
    "close_date_pushed": "Agree a firm next step with the decision maker before moving the date again",
}

OPEN_DEAL_FACTS = """
SELECT d.id, COALESCE({in_stage}, 0), d.expected_close_date, {overdue}, s.name, s.expected_days,
       a.last_at IS NOT NULL, COALESCE({quiet}, 0), COALESCE(c.n_contacts, 0), COALESCE(t.n_open, 0), se.recent, se.previous,
       d.value, h.top_value, COALESCE(h.pushes, 0)
FROM crm_deal d
JOIN crm_stage s ON s.id = d.stage_id
LEFT JOIN (SELECT deal_id, MAX(occurred_at) AS last_at FROM crm_activity
           WHERE tenant_id = {p} AND deal_id IS NOT NULL GROUP BY deal_id) a ON a.deal_id = d.id
LEFT JOIN (SELECT deal_id, COUNT(DISTINCT contact_id) AS n_contacts FROM (
              SELECT deal_id, contact_id FROM crm_activity WHERE tenant_id = {p} AND deal_id IS NOT NULL AND contact_id IS NOT NULL
              UNION SELECT id AS deal_id, contact_id FROM crm_deal WHERE tenant_id = {p} AND contact_id IS NOT NULL
           ) pairs GROUP BY deal_id) c ON c.deal_id = d.id
LEFT JOIN (SELECT deal_id, COUNT(*) AS n_open FROM crm_task
           WHERE tenant_id = {p} AND status = 'open' AND deal_id IS NOT NULL GROUP BY deal_id) t ON t.deal_id = d.id
LEFT JOIN (SELECT deal_id,
                  AVG(CASE WHEN occurred_at >= {p} THEN score END) AS recent,
                  AVG(CASE WHEN occurred_at < {p} AND occurred_at >= {p} THEN score END) AS previous
           FROM insights_sentiment WHERE tenant_id = {p} AND deal_id IS NOT NULL AND score IS NOT NULL
           GROUP BY deal_id) se ON se.deal_id = d.id
LEFT JOIN (SELECT entity_id AS deal_id, MAX({old_value}) AS top_value,
                  SUM(CASE WHEN {new_close} > {old_close} THEN 1 ELSE 0 END) AS pushes
           FROM crm_audit WHERE tenant_id = {p} AND entity = 'deal' AND action = 'update' AND at >= {p}
             AND (changes LIKE '{pct}"value"{pct}' OR changes LIKE '{pct}"expected_close_date"{pct}')
           GROUP BY entity_id) h ON h.deal_id = d.id
WHERE d.tenant_id = {p} AND s.is_won = {p} AND s.is_lost = {p} {only}
"""


def _param() -> str:
    return "%s" if sdk.is_postgres() else "?"


def _change(field: str, index: int, cast: str = "") -> str:
    """SQL for the old (0) or new (1) value of ``field`` in an audit entry's changes
    (``{"field": [old, new]}``, JSON text on both databases)."""
    if sdk.is_postgres():
        text = f"(changes::json -> '{field}' ->> {index})"
        return f"CAST({text} AS NUMERIC)" if cast else text
    text = f"json_extract(changes, '$.{field}[{index}]')"
    return f"CAST({text} AS REAL)" if cast else text


def _days_since(column: str) -> str:
    """Whole days from ``column`` to the parameter "now" (timedelta.days for past times)."""
    p = _param()
    if sdk.is_postgres():
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM (CAST({p} AS TIMESTAMP) - {column})) / 86400) AS INTEGER)"
    return f"CAST(julianday({p}) - julianday({column}) AS INTEGER)"


def _days_overdue(column: str) -> str:
    """Days from the date ``column`` to the parameter "today" (> 0: passed)."""
    p = _param()
    return f"(CAST({p} AS DATE) - {column})" if sdk.is_postgres() else f"CAST(julianday(date({p})) - julianday({column}) AS INTEGER)"


def fact_columns() -> dict[str, str]:
    """The computed columns of the facts query: days counted by the database, and the
    audit log's expressions (value lowered, date pushed)."""
    return {
        "in_stage": _days_since("d.stage_entered_at"), "overdue": _days_overdue("d.expected_close_date"),
        "quiet": _days_since("COALESCE(a.last_at, d.created_at)"),"pct": "%%" if sdk.is_postgres() else "%", "old_value": _change("value", 0, "number"), "new_close": _change("expected_close_date", 1), "old_close": _change("expected_close_date", 0),
    }


def as_datetime(value: Any) -> dt.datetime | None:
    """A timestamp as the drivers return it from raw SQL (SQLite: text)."""
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is None else parsed.replace(tzinfo=None)


def open_deal_facts(tenant: Any, now: dt.datetime, deal_ids: list[int] | None = None) -> list[tuple]:
    """The facts of the tenant's open deals (one query)."""
    settings = sdk.settings(tenant, "insights")
    window = dt.timedelta(days=settings["sentiment_window_days"])
    since, before = now - window, now - 2 * window
    p = _param()
    only = ""
    history_since = now - dt.timedelta(days=settings["history_window_days"])
    params: list[Any] = [now, now.date(), now, tenant.id, tenant.id, tenant.id, tenant.id, since, since, before, tenant.id, tenant.id, history_since, tenant.id, False, False]
    if deal_ids is not None:
        only = f"AND d.id IN ({', '.join([p] * len(deal_ids))})" if deal_ids else "AND 1 = 0"
        params += list(deal_ids)
    sql = OPEN_DEAL_FACTS.format(p=p, only=only, **fact_columns())
    if not sdk.is_postgres():  # SQLite compares the stored text: give it the same format
        params = [v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) else v for v in params]
    return list(sdk.database.execute_sql(sql, params).fetchall())


def weights_of(settings: Any) -> dict[str, float]:
    """Points per factor: the defaults with the tenant's ``risk_points``."""
    return {**DEFAULT_POINTS, **{k: v for k, v in (settings.get("risk_points") or {}).items() if k in DEFAULT_POINTS}}


def assess(row: tuple, settings: Any, weights: dict[str, float] | None = None) -> tuple[float, list[dict[str, Any]]]:
    """The factors of one deal's facts (a row of :func:`open_deal_facts`): points and
    ``[{key, label, reason, remedy, points}]``, the heaviest first."""
    weights = weights or weights_of(settings)
    found = reasons_of(row, settings, weights)
    return sum(weights[k] for k, _r in found), [as_factor(k, reason, weights) for k, reason in found]


def as_factor(key: str, reason: str, weights: dict[str, float]) -> dict[str, Any]:
    return {"key": key, "label": LABELS[key], "reason": reason, "remedy": REMEDIES[key], "points": weights[key]}


def reasons_of(row: tuple, settings: Any, weights: dict[str, float]) -> list[tuple[str, str]]:
    """The (factor, reason) pairs of one deal's facts with points, the heaviest first."""
    _id, in_stage, close_date, overdue, stage_name, expected_days, has_activity, quiet, n_contacts, n_open, recent, previous, value, top_value, pushes = row
    found: list[tuple[str, str]] = []
    limit = expected_days or settings["default_stage_days"]
    if in_stage > limit:
        found.append(("stale_in_stage", f"In {stage_name} for {in_stage} days (expected {limit:g})"))
    if quiet > settings["no_activity_days"]:
        found.append(("no_activity", f"No activity for {quiet} days" if has_activity else f"No activity logged in {quiet} days"))
    if overdue is not None and overdue > 0:
        found.append(("close_date_passed", f"Expected close date {str(close_date)[:10]} passed {overdue} days ago"))
    # negative now, or fallen by 0.3 to neutral (a drop from +0.7 to +0.4 is still positive)
    if recent is not None and (recent <= settings["negative_sentiment"] or (previous is not None and recent - previous <= -0.3 and recent < 0.05)):
        was = f" (was {previous:+.2f})" if previous is not None else ""
        found.append(("negative_sentiment", f"Recent sentiment {recent:+.2f}{was}"))
    if top_value is not None and value is not None and float(top_value) > float(value):
        found.append(("value_lowered", f"Value lowered from {float(top_value):,.0f} to {float(value):,.0f} in the last {settings['history_window_days']:g} days"))
    if pushes and pushes >= settings["close_date_pushes"]:
        found.append(("close_date_pushed", f"Close date pushed back {pushes} times in the last {settings['history_window_days']:g} days"))
    if n_contacts <= 1:
        found.append(("single_contact", "Only one contact involved" if n_contacts else "No contact involved"))
    if not n_open:
        found.append(("no_next_task", "No open next task"))
    found = [pair for pair in found if weights[pair[0]] > 0]
    found.sort(key=lambda pair: -weights[pair[0]])
    return found


def factor_json_parts(weights: dict[str, float]) -> dict[str, tuple[str, str]]:
    """Per factor, the JSON text around its reason: a factor list is written as
    ``JSONText`` writes it (``json.dumps(sort_keys=True)``: key, label, points, reason,
    remedy) by joining these with the reasons, without encoding each dict again."""
    parts = {}
    for key in DEFAULT_POINTS:
        head = json.dumps({"key": key, "label": LABELS[key], "points": weights[key]}, sort_keys=True)[:-1]
        parts[key] = (f'{head}, "reason": ', f', "remedy": {json.dumps(REMEDIES[key])}}}')
    return parts


#: a str as json.dumps writes it (the C encoder json.dumps uses)
_as_json_string = json.encoder.encode_basestring_ascii


def level_of(points: float, settings: Any) -> str:
    if points >= settings["high_points"]:
        return "high"
    return "medium" if points >= settings["medium_points"] else "low"


def explain(points: float, factors: list[dict[str, Any]], settings: Any) -> list[str]:
    """What would lower the level: the remedies, each with the level it would leave."""
    level = level_of(points, settings)
    tips = []
    for factor in factors:
        after = level_of(points - factor["points"], settings)
        effect = f" (risk {level} -> {after})" if after != level else ""
        tips.append(f"{factor['remedy']}{effect}")
    return tips


def recompute(tenant: Any, deal_ids: list[int] | None = None) -> dict[str, int]:
    """Assess every open deal of ``tenant`` (or ``deal_ids``), store what changed, drop
    the rows of deals no longer open, and announce level changes after the commit."""
    settings = sdk.settings(tenant, "insights")
    now = sdk.utcnow()
    with sdk.tenant_context(tenant):
        rows = open_deal_facts(tenant, now, deal_ids)
        existing_query = DealRisk.select(DealRisk.deal, DealRisk.level, DealRisk.points, DealRisk.factors)
        if deal_ids is not None:
            existing_query = existing_query.where(DealRisk.deal.in_(deal_ids or [0]))
        # raw rows: the factors stay the JSON text they are stored as, compared as text
        existing = {deal: (level, points, factors) for deal, level, points, factors in sdk.database.execute(existing_query).fetchall()}
        changed, changes = [], []
        # the tenant's first assessment (the plugin just switched on, or nothing stored):
        # no signal per deal, as no alert, so that automation rules are not flooded with
        # every open deal at once; a deal assessed for the first time later is announced
        initial = deal_ids is None and not existing
        weights = weights_of(settings)
        parts = factor_json_parts(weights)
        stamp: Any = now if sdk.is_postgres() else now.isoformat(sep=" ")  # as the driver takes it
        for row in rows:
            found = reasons_of(row, settings, weights)
            points = sum(weights[k] for k, _r in found)
            level = level_of(points, settings)
            # as JSONText stores the factors (json.dumps, sorted keys)
            text = "[" + ", ".join(parts[k][0] + _as_json_string(reason) + parts[k][1] for k, reason in found) + "]"
            before = existing.get(row[0])
            if before is None or before[0] != level or before[1] != points or before[2] != text:
                changed.append((tenant.id, row[0], level, points, text, stamp))
                if (before is None and not initial) or (before is not None and before[0] != level):
                    changes.append((row[0], level, before[0] if before else None, [as_factor(k, r, weights) for k, r in found]))
        with sdk.atomic():
            closed = Deal.select(Deal.id).join(Stage, on=(Stage.id == Deal.stage)).where(Stage.is_won | Stage.is_lost)
            if deal_ids is not None:
                closed = closed.where(Deal.id.in_(deal_ids or [0]))
            dropped = DealRisk.delete().where(DealRisk.deal.in_(closed)).execute()
            replaced = [row[1] for row in changed if row[1] in existing]
            for start in range(0, len(replaced), 1000):
                DealRisk.delete().where(DealRisk.deal.in_(replaced[start:start + 1000])).execute()
            bulk.insert_ready_rows("insights_deal_risk", ("tenant_id", "deal_id", "level", "points", "factors", "computed_at"), changed)
            for deal_id, level, previous, factors in changes:
                if previous is None and level == "low":
                    continue
                reasons = [f["reason"] for f in factors]
                sdk.send_signal("deal_risk_changed", tenant, deal_id=deal_id, level=level, previous=previous, reasons=reasons)
                if previous is not None and _rose_to_alert(previous, level, settings["alert_risk_level"]):
                    alerts.raise_alert(tenant, "deal_at_risk", "deal", deal_id, f"Deal at {level} risk", "; ".join(reasons))
    return {"assessed": len(rows), "changed": len(changed), "dropped": dropped}


def _rose_to_alert(previous: str, level: str, threshold: str) -> bool:
    if threshold == "never":
        return False
    rank = LEVELS.index
    return rank(level) > rank(previous) and rank(level) >= rank(threshold)


def schedule(tenant: Any) -> None:
    """Queue a recompute, debounced: every change within ``debounce_seconds`` shares one
    task (same idempotency key) that runs at the window's end."""
    seconds = sdk.settings(tenant, "insights")["debounce_seconds"]
    if seconds <= 0:
        enqueue(TASK_KIND, {}, tenant=tenant)
        return
    bucket = int(time.time()) // seconds
    run_at = dt.datetime.fromtimestamp((bucket + 1) * seconds, dt.UTC).replace(tzinfo=None)
    task = enqueue(TASK_KIND, {}, tenant=tenant, idempotency_key=f"insights:risk:{tenant.id}:{bucket}", run_at=run_at)
    if task.status != "queued":  # that window's task already ran: one more for this change
        enqueue(TASK_KIND, {}, tenant=tenant, run_at=run_at)


def risk_task(task: Any) -> None:
    recompute(sdk.current_tenant())


def risk_job(tenant: Any) -> None:
    """Hourly: risks grow with time (days in stage, close dates); so do uncontacted leads."""
    recompute(tenant)
    alerts.uncontacted_leads(tenant)
