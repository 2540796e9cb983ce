"""The public plugin SDK: every name a plugin may import from the core.

Plugins, bundled and third-party alike, import from here and from nowhere else in
``crmcore`` (``tests/core/test_sdk_boundary.py`` fails when a bundled plugin does)::

    from crmcore.sdk import hookimpl, Plugin, Lead, require, keyset_page, enqueue

These names are the stable contract: the modules behind them may be reorganised, the
names here keep their meaning (a change to one is a breaking change, said in the
changelog). docs/plugin-guide.md documents each section. A plugin that needs something
the SDK lacks adds it here, documented, for everyone.

Sections: the contract (markers and the dataclasses hooks return), the application
(settings, hook calls, the current tenant and user), the database, the shared entities
and their write path, API helpers, page helpers, live updates, tasks.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from flask import g

# --------------------------------------------------------------------------- the contract
from crmcore import hookimpl, hookspec

# --------------------------------------------------------------------------- API helpers
from crmcore.api.common import (
    PageArgs,
    current_user_id,
    etag_for,
    has_permission,
    if_match_version,
    keyset_page,
    public,
    require,
    visible,
    with_etag,
    write_errors,
)
from crmcore.api.schema import Schema as ApiSchema
from crmcore.contrib import (
    DashboardWidget,
    ListColumn,
    ListFilter,
    LiveTopicRule,
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

# --------------------------------------------------------------------------- the database
from crmcore.db import (
    BaseModel,
    IdField,
    NoTenantError,
    Tenant,
    TenantModel,
    atomic,
    connection,
    current_tenant,
    database,
    is_postgres,
    on_commit,
    require_tenant_id,
    tenant_context,
    utcnow,
)
from crmcore.entities.context import Context
from crmcore.entities.context import acting as acting_as
from crmcore.entities.context import current as current_context
from crmcore.entities.deals import change_deal, create_deal, end_of_stage
from crmcore.entities.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    StaleVersion,
)

# --------------------------------------------------------------------------- entities
from crmcore.entities.models import (
    LEAD_STATUSES,
    Activity,
    AuditEntry,
    Company,
    Contact,
    CustomField,
    Deal,
    DealStageChange,
    JSONText,
    Lead,
    Note,
    Pipeline,
    Stage,
    Tag,
    Tagging,
    Task,
)
from crmcore.entities.service import create as create_record
from crmcore.entities.service import delete as delete_record
from crmcore.entities.service import log_activity, tag_names
from crmcore.entities.service import update as update_record
from crmcore.entities.visibility import restricted as sees_own_records_only
from crmcore.migrations import add_columns, create_indexes, create_tables
from crmcore.models import ApiToken, Team, User
from crmcore.notifications import notify
from crmcore.realtime import RealtimeUnavailable

# --------------------------------------------------------------------------- signals, tasks
from crmcore.signals import send as send_signal
from crmcore.signals import signal
from crmcore.system_mail import MailNotConfigured, send_system_mail
from crmcore.tasks import enqueue, enqueue_many, payload_of

# --------------------------------------------------------------------------- page helpers
from crmcore.web.forms import flatten as flatten_errors
from crmcore.web.forms import load_form

__all__ = [
    # contract
    "hookimpl", "hookspec", "Plugin", "NavItem", "Permission", "DashboardWidget", "RecordPanel",
    "ListColumn", "ListFilter", "LiveTopicRule", "Migration", "ScheduledJob", "SignalReceiver", "TaskHandler",
    "PrivacySection", "SearchResult",
    # application
    "settings", "is_enabled", "call_hook", "first_answer", "current_user", "current_role", "external_url",
    "call_hook_all", "connect_receiver",
    # database
    "database", "BaseModel", "TenantModel", "IdField", "Tenant", "NoTenantError", "atomic",
    "connection", "on_commit", "is_postgres", "current_tenant", "require_tenant_id",
    "tenant_context", "utcnow", "create_tables", "create_indexes", "add_columns", "User", "Team", "ApiToken",
    # entities
    "Lead", "Contact", "Company", "Deal", "Pipeline", "Stage", "DealStageChange", "Activity",
    "Note", "Task", "Tag", "Tagging", "CustomField", "AuditEntry", "JSONText", "LEAD_STATUSES",
    "Conflict", "StaleVersion", "DomainError", "NotFound", "Forbidden", "Invalid", "Context",
    "current_context", "sees_own_records_only", "acting_as", "create_record", "update_record", "delete_record",
    "log_activity", "tag_names", "change_deal", "create_deal", "end_of_stage", "stages_of", "display_names",
    "visible_lead", "visible_deal", "visible_record", "lead_query", "deal_query", "run_deal_rule",
    # signals, tasks, live
    "signal", "send_signal", "enqueue", "enqueue_many", "payload_of", "live_publish", "live_subscribe",
    "live_since_id", "RealtimeUnavailable", "notify", "send_system_mail", "MailNotConfigured",
    # API
    "ApiSchema", "PageArgs", "require", "public", "has_permission", "current_user_id", "visible", "visible_linked",
    "etag_for", "with_etag", "if_match_version", "write_errors", "keyset_page",
    "encode_cursor", "decode_cursor", "model_schema",
    # pages
    "flatten_errors", "load_form", "user_options", "team_options", "tag_suggestions",
    # command line
    "with_app",
]


# --------------------------------------------------------------------------- application


def _crm() -> Any:
    from crmcore.app import crm_state

    return crm_state()


def settings(tenant: Tenant | str, plugin: str) -> Mapping[str, Any]:
    """The plugin's validated settings for ``tenant`` (defaults filled in, secrets resolved)."""
    return _crm().settings(tenant, plugin)


def is_enabled(tenant: Tenant | str | None, plugin: str, fresh: bool = False) -> bool:
    """Whether ``tenant`` has ``plugin`` on. ``fresh=True`` first picks up changed config
    files (at most one look a second, as requests do): for a long-lived handler, such as
    a WebSocket open for hours, that must notice its plugin switched off."""
    crm = _crm()
    if fresh:
        crm.config_store.maybe_reload()
    return crm.is_enabled(tenant, plugin)


def call_hook(tenant: Tenant | str | None, hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call a runtime hook (the core's or a plugin's own) for the tenant's enabled plugins:
    ``[(plugin_name, result), ...]`` without None results. An implementation that raises is
    logged with its plugin's name and left out; the others still answer."""
    return _crm().call(tenant, hook_name, **kwargs)


def first_answer(tenant: Tenant | str | None, hook_name: str, /, **kwargs: Any) -> Any:
    """The first non-None answer of a ``firstresult`` hook among the tenant's enabled
    plugins (None when none answers); a raising or wrongly typed implementation is logged
    and the next one answers."""
    answered = _crm().call_first(tenant, hook_name, **kwargs)
    return answered[1] if answered is not None else None


def call_hook_all(hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call a runtime hook on every installed plugin, whatever each tenant has on, contained
    as :func:`call_hook`: for startup work that must know every plugin's answer (the
    webhooks plugin connects a receiver to each signal other plugins' events name)."""
    crm = _crm()
    return crm.host.call_contained(frozenset(crm.host.infos), hook_name, **kwargs)


def connect_receiver(plugin: str, signal_name: str, func: Any) -> None:
    """Connect ``func(tenant, **data)`` to a signal after startup (in ``crm_startup``, in
    an app context), for a signal only known at run time: wrapped exactly as a
    ``SignalReceiver`` of ``crm_signal_receivers`` (skipped for tenants without
    ``plugin`` and for other apps in the process, contained, disconnected at shutdown)."""
    import flask

    from crmcore.signals import connect_receiver as _connect

    crm = _crm()
    app = flask.current_app._get_current_object()

    def enabled(tenant: Tenant, name: str) -> bool:
        if flask.has_app_context() and flask.current_app._get_current_object() is not app:
            return False
        return crm.is_enabled(tenant, name)

    crm.receivers.append((signal_name, _connect(plugin, signal_name, func, enabled)))


def external_url(path: str) -> str:
    """The full address of ``path`` (``/app/...``) for a link that leaves the site (an
    email, a message): in a request, on the host the request came to; elsewhere (a task, a
    job) on the instance's ``base_url`` (crm.toml, or ``CRM_BASE_URL``). Without a
    request and without ``base_url`` the path alone comes back, and a warning is logged."""
    import logging

    import flask

    if flask.has_request_context():
        return flask.request.host_url.rstrip("/") + path
    base = _crm().config.instance.base_url
    if not base:
        logging.getLogger("crmcore.sdk").warning("external_url(%s): set base_url in crm.toml for full links outside a request", path)
        return path
    return base + path


def current_user() -> User | None:
    """The signed-in user of a web request, or None (API tokens: :func:`current_user_id`)."""
    return g.get("user")


def current_role() -> str | None:
    """The role of the request's user or token (admin, manager, agent, viewer), or None."""
    return g.get("role")


# --------------------------------------------------------------------------- entities


def stages_of(pipeline_ids: list[int]) -> dict[int, list[Stage]]:
    """Each pipeline's stages in board order, in one query."""
    from crmcore.api.pipelines import stages_of as _stages_of

    return _stages_of(pipeline_ids)


def display_names(model: type, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of some companies, contacts or leads by id, in one query."""
    from crmcore.web.deals import names_of

    return names_of(model, set(ids))


def visible_linked(query: Any, model: type) -> Any:
    """Limit ``query`` on activities, notes or tasks to rows whose every link the caller may see."""
    from crmcore.api.linking import visible as _visible_linked

    return _visible_linked(query, model)


def visible_lead(lead_id: int) -> Lead:
    """The lead if the caller may see it, else a 404 for the API."""
    from crmcore.api.leads import lead_or_404

    return lead_or_404(lead_id)


def visible_deal(deal_id: int) -> Deal:
    """The deal if the caller may see it, else a 404 for the API."""
    from crmcore.api.deals import deal_or_404

    return deal_or_404(deal_id)


#: entity name -> model, for :func:`visible_record`
_OWNED = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}


def visible_record(entity: str, record_id: int) -> Any:
    """The lead, contact, company or deal ``record_id`` if it exists in this tenant and
    the caller may see it (``agents_see_own_only``), else None: hidden and missing alike."""
    model = _OWNED.get(entity)
    if model is None:
        return None
    return visible(model.select().where(model.id == record_id), model).first()


def lead_query(args: Mapping[str, Any]) -> Any:
    """Leads the caller may see, filtered as the lead list's query arguments say
    (``q``, ``status``, ``owner_id``, ``tag``, ``source`` ...)."""
    from crmcore.api.leads import filtered

    return filtered(dict(args))


def deal_query(args: Mapping[str, Any]) -> Any:
    """Deals the caller may see, filtered as the deal list's query arguments say
    (``q``, ``pipeline_id``, ``stage_id``, ``owner_id``, ``status`` ...)."""
    from crmcore.api.deals import filtered

    return filtered(dict(args))


def run_deal_rule(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a deal rule (:func:`change_deal` ...) in an API view: its validation error
    becomes a 422, a conflict 409, a stale version 412."""
    from crmcore.api.deals import prepared

    return prepared(call, *args, **kwargs)


# --------------------------------------------------------------------------- live updates


def live_publish(tenant: Tenant, topic: str, data: dict[str, Any]) -> bool:
    """Publish an event on the tenant's live topic (pages subscribed to it update);
    False (logged) when the hub is unavailable. Call it after commit."""
    from crmcore import live

    return live.publish(tenant, topic, data)


def live_subscribe(tenant: Tenant, topics: list[str], last_id: str | None = None) -> Any:
    """A subscription to the tenant's live topics, resuming after ``last_id``; raises
    :class:`RealtimeUnavailable` when the hub cannot be reached."""
    return _crm().hub.subscribe(tenant.id, topics, last_id=last_id)


def live_since_id() -> str:
    """The event id just before now: render it into a page so its first connection
    resumes from there (templates have it as ``live_since()``)."""
    from crmcore import live

    return live.since_id()


# --------------------------------------------------------------------------- API


def encode_cursor(values: list[Any]) -> str:
    """An opaque page cursor for a keyset position (datetimes and decimals kept)."""
    from crmcore.api import common

    return common._encode(values)


def decode_cursor(cursor: str) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`; a damaged cursor is a 422."""
    from crmcore.api import common

    return common._decode(cursor)


#: peewee field class -> the marshmallow field that dumps it (checked in subclass order).
_DUMP_FIELDS: list[tuple[type, Any]] = []


def model_schema(model: type, *only: str, many: bool = False) -> Any:
    """A read-only API schema of a peewee model's columns (``only`` some of them), named
    ``<Model>Schema`` in the OpenAPI document: for plugins whose API shows rows as they
    are stored. A foreign key dumps as ``<name>_id``. Write schemas stay hand-written:
    they say what a client may send and how it is validated."""
    import peewee
    from marshmallow import fields

    if not _DUMP_FIELDS:
        _DUMP_FIELDS.extend([
            (peewee.ForeignKeyField, fields.Integer), (peewee.BooleanField, fields.Boolean),
            (peewee.IntegerField, fields.Integer), (peewee.AutoField, fields.Integer),
            (peewee.FloatField, fields.Float), (peewee.DecimalField, lambda **kw: fields.Decimal(as_string=True, **kw)),
            (peewee.DateTimeField, fields.DateTime), (peewee.DateField, fields.Date),
            (peewee.CharField, fields.String), (peewee.TextField, fields.String),
        ])
    declared: dict[str, Any] = {}
    for field in model._meta.sorted_fields:
        if only and field.name not in only:
            continue
        make = next((m for kind, m in _DUMP_FIELDS if isinstance(field, kind)), fields.Raw)
        name = field.object_id_name if isinstance(field, peewee.ForeignKeyField) else field.name
        if name != "tenant_id":
            declared[name] = make(dump_only=True)
    schema_class = type(f"{model.__name__}Schema", (ApiSchema,), declared)
    return schema_class(many=many)


# --------------------------------------------------------------------------- pages


def with_app(func: Any) -> Any:
    """Decorator for a plugin's ``crm`` command that needs the app: it runs in an app
    context with an open database connection and gets the CRM state as first argument."""
    from crmcore.cli import with_app as _with_app

    return _with_app(func)


def user_options(active_only: bool = True) -> list[tuple[int, str]]:
    """(id, name) of the tenant's users, for a select."""
    from crmcore.web.records import user_options as _user_options

    return _user_options(active_only)


def team_options() -> list[tuple[int, str]]:
    """(id, name) of the tenant's teams by name, for a select."""
    from crmcore.entities.teams import team_options as _team_options

    return _team_options()


def tag_suggestions() -> list[str]:
    """The tenant's tag names for a tag input's suggestions."""
    from crmcore.web.records import tag_suggestions as _tag_suggestions

    return _tag_suggestions()
