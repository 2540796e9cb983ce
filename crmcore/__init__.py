"""crmcore: the small core of the CRM framework.

Plugins import what they need from here::

    from crmcore import hookimpl, Plugin, NavItem, ScheduledJob, TaskHandler

Everything feature-specific lives in plugins; the core owns tenants, users, the
extension contract (:mod:`crmcore.hookspecs`), the database, signals, the task queue,
the scheduler and the realtime hub.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations in plugins: ``@hookimpl def crm_nav_items(...)``.
hookimpl = pluggy.HookimplMarker("crm")
#: Marker for hook specifications, also for plugins that declare hooks of their own.
hookspec = pluggy.HookspecMarker("crm")

from crmcore.contrib import (  # noqa: E402  (the markers above must exist first)
    DashboardWidget,
    ListColumn,
    ListFilter,
    Migration,
    NavItem,
    Permission,
    Plugin,
    PrivacySection,
    RecordPanel,
    ScheduledJob,
    SearchResult,
    SignalReceiver,
    TaskHandler,
)

__all__ = [
    "hookimpl",
    "hookspec",
    "Plugin",
    "NavItem",
    "Permission",
    "DashboardWidget",
    "RecordPanel",
    "ListColumn",
    "ListFilter",
    "Migration",
    "ScheduledJob",
    "SignalReceiver",
    "TaskHandler",
    "PrivacySection",
    "SearchResult",
]
