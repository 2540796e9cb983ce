"""Hook implementations of the analytics plugin."""

from __future__ import annotations

from crm_plugins.analytics import api, views
from crmcore.sdk import NavItem, hookimpl


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Analytics", endpoint="analytics_pages.index", order=25, icon="chart")]
