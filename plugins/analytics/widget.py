"""The analytics plugin's figure on the core's dashboard: this month's win rate (in the
tenant's time zone), linked to the analytics page with that range. One query."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from flask import url_for
from markupsafe import escape

from crm_plugins.analytics import deal_metrics, filters
from crm_plugins.analytics.registry import cell_text
from crmcore import sdk


def this_month(tenant: object) -> filters.Filters:
    """From the 1st of the current month to today, days of the tenant's time zone."""
    zone = zoneinfo.ZoneInfo(sdk.settings(tenant, filters.PLUGIN)["time_zone"])
    today = dt.datetime.now(zone).date()
    return filters.build({"date_from": today.replace(day=1), "date_to": today}, tenant)


def render_win_rate() -> str:
    tenant = sdk.current_tenant()
    f = this_month(tenant)
    total = next(r for r in deal_metrics.closed_rows(f) if r["key"] == "all")
    link = url_for("analytics_pages.index") + "?" + f.query_string() + "#m-win-rate"
    return (
        f'<p class="figure"><a href="{escape(link)}">{escape(cell_text("percent", total["win_rate"]))}</a></p>'
        f'<p class="muted">{total["won"]} won, {total["lost"]} lost this month</p>'
    )
