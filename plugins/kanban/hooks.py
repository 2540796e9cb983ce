"""Hook implementations of the kanban plugin."""

from __future__ import annotations

from crmcore.sdk import NavItem, hookimpl


@hookimpl
def crm_api_blueprints():
    from crm_plugins.kanban.api import blp

    return [blp]


@hookimpl
def crm_web_blueprints():
    from crm_plugins.kanban.views import pages

    return [pages]


@hookimpl
def crm_nav_items(tenant, user):
    # Between Leads/Deals (40) and the admin pages: the board is where sales teams live.
    return [NavItem(label="Pipeline", endpoint="kanban_pages.index", order=45, icon="columns")]


@hookimpl
def crm_demo_data(tenant):
    from crm_plugins.kanban.demo import seed

    seed(tenant)


@hookimpl
def crm_migrations():
    from crm_plugins.kanban.migrations import MIGRATIONS

    return MIGRATIONS
