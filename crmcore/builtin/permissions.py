"""The core's permission matrix, a built-in plugin (always on).

It contributes the core's permissions through ``crm_permissions``, the hook every plugin
uses for its own, so that the matrix has one source (``crmcore.permissions`` checks and
merges them). Built-in plugins alone may use the core's areas (``records:``,
``privacy:``, ``pipelines:`` ...); a plugin's permissions are ``<plugin>:<action>``.
docs/api.md shows this matrix (``python -m crmcore.api_docs permissions --write``).
"""

from __future__ import annotations

from crmcore import Permission, __version__, hookimpl
from crmcore.contrib import Plugin

plugin = Plugin(
    name="permissions",
    version=__version__,
    summary="The core's role matrix: records, privacy, pipelines, custom fields, audit, analytics.",
    hooks=__name__,
)

EVERYONE = ("admin", "manager", "agent", "viewer")

#: The core's permissions, in the order docs/api.md lists them.
CORE_PERMISSIONS: tuple[Permission, ...] = (
    Permission("records:read", EVERYONE, "Read leads, contacts, companies, deals, activities, notes, tasks, tags."),
    Permission("records:write", ("admin", "manager", "agent"), "Create and change records."),
    Permission("records:delete", ("admin", "manager"), "Delete records."),
    Permission("records:bulk", ("admin", "manager"), "Change many records at once."),
    Permission("records:import", ("admin", "manager"), "Import records from CSV."),
    Permission("records:export", ("admin", "manager"), "Export records as CSV."),
    Permission("records:merge", ("admin", "manager"), "Merge duplicate records."),
    Permission("privacy:manage", ("admin",), "Export or erase a person's data."),
    Permission("pipelines:manage", ("admin", "manager"), "Create and change pipelines and their stages."),
    Permission("custom_fields:manage", ("admin",), "Define custom fields."),
    Permission("audit:read", ("admin", "manager"), "Read the audit log."),
    Permission("analytics:read", EVERYONE, "Read the analytics."),
    Permission("notifications:own", EVERYONE, "Read and mark one's own in-app notifications, set one's preferences."),
    Permission("views:manage", ("admin", "manager"), "Change and delete the saved views others shared (everyone keeps their own)."),
    Permission("analytics:goals", ("admin", "manager"), "Set and delete goals (the analytics plugin's; everyone who reads the analytics sees them)."),
)


@hookimpl(trylast=True)
def crm_permissions() -> list[Permission]:
    return list(CORE_PERMISSIONS)
