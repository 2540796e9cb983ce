"""Per-tenant vocabularies that plugins extend: lead sources and activity kinds.

The core knows only generic values (:data:`~crmcore.entities.models.LEAD_SOURCES`,
:data:`~crmcore.entities.models.ACTIVITY_KINDS`); a channel's own name ("chat") comes
from its plugin through ``crm_lead_sources`` / ``crm_activity_kinds``, so it is accepted
exactly for the tenants that have that plugin on. The plugins are asked through the
current :class:`~crmcore.entities.context.Context` (no app needed; without one, only the
core's values count).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from crmcore.entities.context import Context, resolve
from crmcore.entities.models import ACTIVITY_KINDS, LEAD_SOURCES

log = logging.getLogger("crmcore.entities")

#: What a contributed name must look like (it is stored in a 30-character column).
NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


def _contributed(tenant: Any, hook: str, ctx: Context) -> set[str]:
    names: set[str] = set()
    if ctx.plugins is None:
        return names
    for plugin, contributed in ctx.plugins.call(tenant, hook, tenant=tenant):
        for name in contributed:
            if isinstance(name, str) and NAME.match(name):
                names.add(name)
            else:
                log.error("plugin %r: %s returned %r, not a name like 'chat'; ignored", plugin, hook, name)
    return names


def lead_sources(tenant: Any, ctx: Context | None = None) -> tuple[str, ...]:
    """The lead sources ``tenant`` accepts, sorted: the core's, the tenant's
    ``extra_lead_sources`` and those of its plugins."""
    ctx = resolve(ctx)
    extra = ctx.but(tenant=tenant).setting("extra_lead_sources", ()) or ()
    return tuple(sorted(set(LEAD_SOURCES) | set(extra) | _contributed(tenant, "crm_lead_sources", ctx)))


def activity_kinds(tenant: Any, ctx: Context | None = None) -> tuple[str, ...]:
    """The activity kinds ``tenant`` accepts, sorted: the core's and its plugins'."""
    return tuple(sorted(set(ACTIVITY_KINDS) | _contributed(tenant, "crm_activity_kinds", resolve(ctx))))


def check(value: Any, allowed: Iterable[str], current: Any = None) -> list[str] | None:
    """An error message list when ``value`` is not allowed, else None. The record's
    ``current`` value stays valid (its plugin may have been turned off since)."""
    allowed = tuple(allowed)
    if value in allowed or (current is not None and value == current):
        return None
    return [f"Must be one of: {', '.join(allowed)}."]
