"""The small dataclasses that plugins return from hooks.

Hooks return these rather than loose dicts so the core can validate what a plugin
contributes (a missing field or a duplicate name is a startup error naming the plugin),
and so the contract is visible to type checkers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from marshmallow import Schema


@dataclass(frozen=True)
class Plugin:
    """A plugin's metadata, declared as ``plugin = Plugin(...)`` in its package ``__init__``.

    The package ``__init__`` holds metadata only, so reading it is cheap; the module named
    by ``hooks`` (default ``<package>.hooks``) holds the ``@hookimpl`` functions and is what
    gets registered with the plugin manager.
    """

    name: str
    version: str = "0.0.0"
    summary: str = ""
    #: Other plugins this one needs; a tenant that enables this plugin must enable them
    #: too, and their migrations run first.
    requires: tuple[str, ...] = ()
    #: marshmallow schema of the plugin's per-tenant settings (defaults via load_default).
    settings: type[Schema] | None = None
    #: Dotted name of the hooks module; default: "<package>.hooks".
    hooks: str | None = None
    #: Dotted name of a module of ``@hookspec`` functions this plugin declares for other
    #: plugins (named ``crm_<plugin>_*``), added to the manager before any registration.
    hookspecs: str | None = None


@dataclass(frozen=True)
class NavItem:
    """An entry in the web app's navigation."""

    label: str
    endpoint: str  # Flask endpoint name, e.g. "sample.index"
    order: int = 100
    icon: str = ""
    #: Roles that see the item; empty means every signed-in user.
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class DashboardWidget:
    """A widget on the dashboard page: ``render`` returns an HTML fragment (already escaped).
    ``placement`` is ``"grid"`` (a card in the widget grid) or ``"summary"`` (a small
    figure card in the summary strip at the top, as the core's open leads, open deals,
    pipeline value and my tasks)."""

    name: str
    title: str
    render: Callable[[], str]
    order: int = 100
    roles: tuple[str, ...] = ()
    placement: str = "grid"


@dataclass(frozen=True)
class RecordPanel:
    """A panel on a record's page (a lead, contact, company or deal): ``render`` returns an
    HTML fragment (already escaped), shown in the page's side column under ``title``."""

    name: str
    title: str
    render: Callable[[], str]
    order: int = 100


@dataclass(frozen=True)
class SearchResult:
    """One hit of the header's global search (hook ``crm_search``): ``label`` is what
    the result list shows, ``url`` where choosing it goes (a page of this CRM, e.g.
    ``url_for(...)``), ``kind`` the group it is listed under ("Chat conversation"),
    ``detail`` a second line (an email, a company), ``order`` the group's place among
    the others (the core's leads, contacts, companies and deals are 10-40)."""

    kind: str
    label: str
    url: str
    detail: str = ""
    order: int = 100


@dataclass(frozen=True)
class ListFilter:
    """A filter a :class:`ListColumn` offers on its list page: a select of ``options``
    (value, label) in the filter form, read from the query parameter named after the
    column. ``where(values)`` gets the chosen values (only ones from ``options``; others
    are reported on the page and left out) and returns a peewee expression over the
    list's model, e.g. ``Lead.id.in_(subquery)``."""

    label: str
    options: tuple[tuple[str, str], ...]
    where: Callable[[list[str]], Any]
    #: The select's first option (no filter).
    blank: str = "Any"


@dataclass(frozen=True)
class ListColumn:
    """An extra column on a record list page (lead, contact, company, deal).

    ``name`` is ``"<plugin>:<column>"``; it is also the column's sort key (``sort=name``
    or ``sort=-name``) and its filter's query parameter. ``values(ids)`` receives the ids
    of the page's records and returns ``{id: html}`` (already escaped; missing ids get an
    empty cell) with ONE query for the whole page, never one per row.

    ``sort``, when given, makes the column sortable: a peewee expression over the list's
    model that is never NULL (e.g. ``fn.COALESCE(<correlated subquery>, -1)``); pages stay
    keyset paginated, the cursor holding the expression's value and the id. ``filter``
    adds a :class:`ListFilter` to the page's filter form.
    """

    name: str
    label: str
    values: Callable[[list[int]], dict[int, str]]
    order: int = 100
    sort: Any = None
    filter: ListFilter | None = None
    #: Stylesheet URLs the cells need, linked once in the page's head.
    stylesheets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Migration:
    """One schema or data change of a plugin.

    ``name`` must sort in application order (``0001_initial``, ``0002_add_colour`` ...)
    and never change once released. ``apply(db)`` runs inside a transaction; the core
    records it in ``crm_migrations`` in the same transaction.
    """

    name: str
    apply: Callable[[Any], None]


@dataclass(frozen=True)
class SignalReceiver:
    """Connect ``func(tenant, **data)`` to the signal named ``signal`` (see crmcore.signals).

    The core wraps the function: it is skipped for tenants that do not have the plugin on,
    and an exception in it is logged with the plugin's name and contained.

    ``in_transaction=True``: called when the signal is sent, inside the transaction of
    the change (before it commits), so the tasks it enqueues commit or roll back with the
    change (the outbox pattern: no committed change without its task). Such a receiver
    only enqueues tasks: quick, no I/O, and it sees the change uncommitted. Default:
    called after the commit.
    """

    signal: str
    func: Callable[..., Any]
    in_transaction: bool = False


@dataclass(frozen=True)
class LiveTopicRule:
    """Who may listen to the live topics that start with ``prefix`` (``"chat:inbox"``).

    ``allowed(topic)`` runs in the subscribing request, so it may use the caller's
    context (``crmcore.sdk.current_context()``, ``visible(...)``). Answering False, or
    raising, refuses the whole subscription (the socket closes with 1008). Topics no rule
    claims are open to every signed-in user of the tenant: their events must carry
    nothing a user may not see (the core's ``record:`` and ``list:`` events carry ids and
    field names only)."""

    prefix: str
    allowed: Callable[[str], bool]
    description: str = ""


@dataclass(frozen=True)
class ScheduledJob:
    """A time-driven job, run once per tenant that has the plugin on.

    ``trigger`` is an APScheduler 3 trigger name ("interval", "cron" or "date") and
    ``trigger_args`` its arguments, e.g. ``{"minutes": 5}`` or ``{"hour": 2}``.
    ``func(tenant)`` runs inside an app context with the tenant as the current tenant.
    """

    id: str
    func: Callable[[Any], Any]
    trigger: str = "interval"
    trigger_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskHandler:
    """Handles durable tasks of one ``kind`` (see crmcore.tasks).

    ``func(task)`` receives the task row (``task.payload``, ``task.attempts``,
    ``task.idempotency_key``). When ``transactional`` is true the handler runs in the same
    database transaction that marks the task done, so its database effects happen exactly
    once even if the worker dies midway. Handlers that call the outside world set
    ``transactional=False`` and must be idempotent (they may run again after a crash).
    """

    kind: str
    func: Callable[[Any], Any]
    max_attempts: int | None = None
    transactional: bool = True


@dataclass(frozen=True)
class Permission:
    """A permission a plugin adds to the role matrix: ``"<plugin>:<action>"`` granted to
    ``roles``. Declare it on each API operation that needs it with
    ``crmcore.api.common.require(name)`` (checked before the request reaches the view)."""

    name: str
    roles: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class PrivacySection:
    """A plugin's part of a person's privacy export (:func:`crm_privacy_export`): ``data``
    (JSON-ready: str, int, float, bool, None, lists and dicts of them) lands under
    ``plugins[name]`` of the export. ``name`` is the plugin's name, or
    ``"<plugin>:<part>"`` for a plugin that gives several sections."""

    name: str
    data: Any
