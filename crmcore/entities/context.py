"""Who is acting, for whom: the :class:`Context` domain functions work in.

A Context names the tenant, the signed-in user or API token, their role, and for work
that no person does (commands, jobs, the task worker) an ``actor`` name that the audit
trail records. Domain functions take it as an explicit ``ctx`` argument; when a caller
passes none they use the *current* one, a contextvar that each adapter sets once:
the request adapter (``crmcore.app``) per request from ``flask.g``, the CLI per command
(actor ``cli``), the scheduler per job run (``scheduler``) and the task worker per task
(``worker``). Outside all of these the current context is :data:`SYSTEM` (no user, no
role, default settings), which is what a test calling the domain directly gets.

The context also carries where the tenant's plugin settings come from (``settings``,
``CRM.settings`` in the app), so rules that depend on ``[settings.core]``
(``agents_see_own_only``, ``extra_lead_sources``, ``default_currency``) need no Flask.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

from crmcore import db

#: (tenant, plugin name) -> that plugin's validated settings for the tenant
SettingsSource = Callable[[Any, str], Mapping[str, Any]]


@dataclass(frozen=True)
class Context:
    """The caller of a domain function: tenant, user or token, role, actor name."""

    tenant: Any = None
    user: Any = None
    token: Any = None
    role: str | None = None
    #: Who acts when there is no user and no token: "cli", "scheduler", "worker" ...
    #: (``AuditEntry.actor_name``).
    actor: str | None = None
    settings: SettingsSource | None = None
    #: How domain code asks the tenant's plugins without knowing the app (the app's
    #: ``CRM``): ``plugins.hook(tenant, name)`` is the plain pluggy caller,
    #: ``plugins.call(tenant, name, **kw)`` the contained one. None: no plugin is asked.
    plugins: Any = None

    @property
    def current_tenant(self) -> Any:
        """The context's tenant, or the database's current tenant when it names none."""
        return self.tenant if self.tenant is not None else db.current_tenant()

    @property
    def user_id(self) -> int | None:
        """The user, or the user a token belongs to (None for a bare token or no one)."""
        if self.user is not None:
            return self.user.id
        if self.token is not None:
            return self.token.user_id
        return None

    def plugin_settings(self, plugin: str) -> Mapping[str, Any]:
        """The tenant's settings of ``plugin`` ({} without a settings source or tenant)."""
        tenant = self.current_tenant
        if self.settings is None or tenant is None:
            return {}
        return self.settings(tenant, plugin)

    def setting(self, name: str, default: Any = None) -> Any:
        """One ``[settings.core]`` value of the tenant."""
        return self.plugin_settings("core").get(name, default)

    def but(self, **changes: Any) -> "Context":
        """A copy with some fields changed (``ctx.but(tenant=other)``)."""
        return replace(self, **changes)


#: The context of code no adapter set one for: no user, no role, default settings.
SYSTEM = Context()

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("crm_context", default=SYSTEM)


def current() -> Context:
    """The context the running adapter set (:data:`SYSTEM` when none did)."""
    return _current.get()


def resolve(ctx: Context | None) -> Context:
    """``ctx``, or the current context when None (how domain functions take ``ctx``)."""
    return ctx if ctx is not None else _current.get()


def set_current(ctx: Context) -> contextvars.Token:
    """Make ``ctx`` current; give the returned token to :func:`reset` at the end."""
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def acting(ctx: Context) -> Iterator[Context]:
    """``with acting(ctx):`` runs the block with ``ctx`` current (and its tenant, if it
    names one, as the database's current tenant)."""
    token = _current.set(ctx)
    try:
        if ctx.tenant is not None:
            with db.tenant_context(ctx.tenant):
                yield ctx
        else:
            yield ctx
    finally:
        _current.reset(token)
