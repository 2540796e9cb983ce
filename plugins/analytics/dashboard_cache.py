"""The pre-computed dashboard: at a million deals the unfiltered dashboard takes seconds
(bench/results/analytics-1m.md), so a task computes it in the background and the page
shows that copy, saying how fresh it is.

Job ``analytics:dashboard`` (every 5 minutes) enqueues task
``analytics.refresh_dashboard`` for a tenant whose copy is missing or older than
``[settings.analytics] dashboard_refresh_minutes`` (0: off, the page is always live); the
idempotency key is the tenant and the refresh period, so two schedulers enqueue it once.
The task computes every metric and the summary exactly as the page does (the same
functions, everyone's records) and keeps one row per tenant, the rows' values and
cells as JSON.

The page serves the copy only where it is the same answer the live page would give: no
filter in the URL, a caller who sees every record (not an agent limited to their own),
and a copy of the tenant's current local day (the default range and forecast move with
the day). Otherwise, or with ``?live=1``, the figures are computed for the request.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from crm_plugins.analytics import filters, metrics, summary
from crm_plugins.analytics.models import DashboardCopy
from crmcore import sdk
from crmcore.sdk import utcnow

REFRESH_TASK = "analytics.refresh_dashboard"


def _refresh_minutes(tenant: Any) -> int:
    return sdk.settings(tenant, filters.PLUGIN)["dashboard_refresh_minutes"]


def _local_day(tenant: Any) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(sdk.settings(tenant, filters.PLUGIN)["time_zone"])).date()


def compute(tenant: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every metric and the summary without filters, as the dashboard computes them."""
    f = filters.build({}, tenant)
    computed: dict = {}
    results = [metrics.result(m, f, computed) for m in metrics.METRICS.values()]
    return results, summary.figures(f, computed)


def refresh(tenant: Any) -> DashboardCopy:
    """Compute the tenant's dashboard and keep it (replacing the previous copy)."""
    started = utcnow()
    day = _local_day(tenant)
    results, figures = compute(tenant)
    payload = json.dumps({"results": results, "figures": figures}, default=str)
    done = utcnow()
    with sdk.atomic():
        DashboardCopy.delete().execute()
        return DashboardCopy.create(day=day, computed_at=done, seconds=(done - started).total_seconds(), payload=payload)


def refresh_task(task: Any) -> None:
    """Task ``analytics.refresh_dashboard``: recompute the current tenant's copy."""
    refresh(sdk.current_tenant())


def refresh_job(tenant: Any) -> bool:
    """Enqueue a refresh when the copy is missing or older than the setting; True if so."""
    minutes = _refresh_minutes(tenant)
    if minutes <= 0:
        return False
    now = utcnow()
    fresh = DashboardCopy.select().where((DashboardCopy.computed_at > now - dt.timedelta(minutes=minutes)) & (DashboardCopy.day == _local_day(tenant))).exists()
    if fresh:
        return False
    period = int(now.timestamp() // (minutes * 60))
    sdk.enqueue(REFRESH_TASK, {}, tenant=tenant, idempotency_key=f"analytics-dashboard:{tenant.id}:{minutes}:{period}")
    return True


def usable(args: Any, tenant: Any) -> DashboardCopy | None:
    """The copy the page may show for this request, or None (then it computes live)."""
    if _refresh_minutes(tenant) <= 0 or args.get("live"):
        return None
    if any(v for k, v in args.items() if k in filters.FilterArgs._declared_fields):
        return None
    if sdk.sees_own_records_only():
        return None
    return DashboardCopy.select().where(DashboardCopy.day == _local_day(tenant)).first()


def loaded(copy: DashboardCopy) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = json.loads(copy.payload)
    return data["results"], data["figures"]


def local_time(utc: dt.datetime, time_zone: str) -> str:
    """A stored UTC time as ``YYYY-MM-DD HH:MM`` of the tenant's time zone."""
    return utc.replace(tzinfo=dt.UTC).astimezone(zoneinfo.ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M")
