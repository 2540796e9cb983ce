"""The extension contract: every hook a plugin can implement.

Two kinds of hooks:

* **Startup hooks** are called once, on the whole plugin manager, while the app is built:
  they declare what a plugin *has* (models, migrations, blueprints, receivers, jobs,
  task handlers, commands). Everything declared exists for every tenant; whether it
  *acts* for a tenant is decided at run time by the tenant's enabled plugins (routes
  answer 404, receivers and jobs skip).
* **Runtime hooks** are called per request or per job through the tenant's subset hook
  caller, so only plugins the tenant has enabled are asked.

Every hook returns data (dataclasses from :mod:`crmcore.contrib`) rather than acting, so
the core validates it and decides the order (explicit ``order`` fields; pluggy itself
calls implementations in LIFO registration order). docs/hooks.md documents each hook with
an example; tests/core/test_hook_reference.py fails when a hook is undocumented or untested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookspec

# Runtime hooks' return types are imported at run time: the contained call reads each
# hookspec's return annotation and checks every answer against it (crmcore.hookresults).
from crmcore.contrib import (
    DashboardWidget,
    ListColumn,
    NavItem,
    PrivacySection,
    RecordPanel,
    SearchResult,
)

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import click
    import flask
    import flask_smorest
    import peewee

    from crmcore.contrib import (
        LiveTopicRule,
        Migration,
        Permission,
        ScheduledJob,
        SignalReceiver,
        TaskHandler,
    )
    from crmcore.models import Tenant, User


# ---------------------------------------------------------------------------------------
# Startup hooks: called once on the whole manager while the app is created
# ---------------------------------------------------------------------------------------


@hookspec
def crm_models() -> list[type[peewee.Model]]:
    """Declare the plugin's peewee models.

    Called once at app creation; a model not bound to the core's database (through
    :class:`crmcore.db.BaseModel` or :class:`crmcore.db.TenantModel`) stops the start with
    an error naming the plugin. Tables are created by the plugin's migrations
    (:func:`crm_migrations`), never implicitly. Tenant-owned models subclass
    :class:`crmcore.db.TenantModel` and are named ``<plugin>_<entity>`` in the database.

    :return: a list of model classes.
    """


@hookspec
def crm_migrations() -> list[Migration]:
    """Declare the plugin's migrations, oldest first.

    Called by ``crm migrate`` (and at start-up of ``crm run``). Pending migrations run in
    plugin dependency order (a plugin's ``requires`` first), each in its own transaction
    with its record in ``crm_migrations``. A released migration is never edited: add a
    new one.

    :return: a list of :class:`crmcore.contrib.Migration`.
    """


@hookspec
def crm_api_blueprints() -> list[flask_smorest.Blueprint]:
    """Declare flask-smorest blueprints for the REST API.

    Called once at app creation; each blueprint is registered on the single ``Api``
    under ``/api/v1`` (give it ``url_prefix="/<plugin>"``), so its operations appear in
    the OpenAPI document. Requests need a bearer token or a session; for a tenant that
    does not have the plugin on, every route of the blueprint answers 404.

    :return: a list of ``flask_smorest.Blueprint``.
    """


@hookspec
def crm_web_blueprints() -> list[flask.Blueprint]:
    """Declare Flask blueprints for web pages (usually ``url_prefix="/app/<plugin>"``).

    Called once at app creation. Templates go in ``templates/<plugin>/`` inside the
    blueprint's folder and extend ``"crm/base.html"``. For a tenant without the plugin,
    every route of the blueprint answers 404. Every page requires a signed-in user (others
    are sent to the sign-in page), unless the blueprint is one of public pages (a chat
    widget) and sets ``bp.crm_public = True``.

    :return: a list of ``flask.Blueprint``.
    """


@hookspec
def crm_signal_receivers() -> list[SignalReceiver]:
    """Declare receivers for signals (see :mod:`crmcore.signals`).

    Called once at app creation; each receiver is connected strongly. It is called with
    the tenant as sender (and as the current tenant) and the signal's keyword data, only
    for tenants that have the plugin on; an exception is logged with the plugin name and
    does not reach the sender. Receivers must be quick: enqueue a task for anything slow
    or fallible.

    :return: a list of :class:`crmcore.contrib.SignalReceiver`.
    """


@hookspec
def crm_scheduled_jobs() -> list[ScheduledJob]:
    """Declare time-driven jobs (APScheduler 3 triggers).

    Called once when the scheduler starts (in ``crm worker`` or ``crm run``). Each firing
    runs ``func(tenant)`` once for every tenant that has the plugin on at that moment.
    Job ids are explicit and namespaced: ``"<plugin>:<job>"``.

    :return: a list of :class:`crmcore.contrib.ScheduledJob`.
    """


@hookspec
def crm_task_handlers() -> list[TaskHandler]:
    """Declare handlers for durable tasks (see :mod:`crmcore.tasks`).

    Called once at app creation. ``kind`` is namespaced (``"<plugin>.<action>"``); two
    handlers for one kind is a startup error. A task whose tenant does not have the
    plugin on is cancelled, not run.

    :return: a list of :class:`crmcore.contrib.TaskHandler`.
    """


@hookspec
def crm_permissions() -> list[Permission]:
    """Declare permissions of the plugin, added to the role matrix.

    Called once at app creation. Names are ``"<plugin>:<action>"``; ``roles`` lists the
    roles (admin, manager, agent, viewer) that have it. A name declared twice, or one
    not prefixed with the plugin's name, is a startup error. The core's own matrix comes
    through this hook too (the built-in plugin ``crmcore.builtin.permissions``, the only
    one that may use the core's areas such as ``records:``).

    Every API operation must declare a permission, ``@require("<permission>")``
    (crmcore.api.common), or be marked ``@public``; otherwise the app does not start.
    The check runs before every API request: 401 without credentials, 403 without the
    permission.

    :return: a list of :class:`crmcore.contrib.Permission`.
    """


@hookspec
def crm_live_topic_rules() -> list[LiveTopicRule]:
    """Declare who may listen to the plugin's live topics.

    Called once at app creation. Each rule claims the topics starting with its
    ``prefix``; when a client subscribes (``/realtime/ws?topics=...``), every rule whose
    prefix starts a requested topic is asked, in the subscribing request, and one False
    (or an exception) refuses the subscription. (A plugin that subscribes on a client's
    behalf itself, with ``live_subscribe``, chooses the topics and answers for them.) Use it for topics whose events carry what not every user of the tenant
    may see (the chat plugin: ``chat:inbox`` carries messages, so agents who see only
    their own records listen to ``chat:inbox:open`` and ``chat:inbox:owner:<their id>``).

    :return: a list of :class:`crmcore.contrib.LiveTopicRule`.
    """


@hookspec
def crm_cli_commands(cli: click.Group) -> None:
    """Add commands to the ``crm`` command line.

    Called when the ``crm`` command lists its commands or meets a name that is not built
    in (at most once per invocation); a raising implementation is reported as a warning
    and the built-in commands still work. Add commands with ``@cli.command()`` or
    ``cli.add_command(...)``; name them after the plugin (``crm sample hello``) to avoid
    clashes. Use :func:`crmcore.cli.with_app` to get an app context in a command (it passes
    the CRM state as the first argument).

    :param cli: the top-level click group.
    """


@hookspec
def crm_startup(app: flask.Flask) -> None:
    """Run once after the app is fully built (all plugins registered, blueprints added).

    For setup that needs the finished app: registering template filters, error handlers,
    extensions. Not called per tenant, and not the place for database writes.

    :param app: the Flask application.
    """


# ---------------------------------------------------------------------------------------
# Runtime hooks: called per request/job through the tenant's subset hook caller
# ---------------------------------------------------------------------------------------


@hookspec
def crm_nav_items(tenant: Tenant, user: User | None) -> list[NavItem]:
    """Contribute entries to the web app's navigation for this tenant and user.

    Called on each page render for a signed-in user (pages without one have no
    navigation), only for plugins the tenant has on. Items are sorted by ``order`` then
    label and filtered by ``roles`` against the user's role.

    :param tenant: the current tenant.
    :param user: the signed-in user.
    :return: a list of :class:`crmcore.contrib.NavItem`.
    """


@hookspec
def crm_dashboard_widgets(tenant: Tenant, user: User | None) -> list[DashboardWidget]:
    """Contribute widgets to the dashboard page.

    Called when the dashboard renders, only for plugins the tenant has on. Widgets are
    sorted by ``order``; a widget whose ``render`` raises is replaced by an error note and
    logged with the plugin's name.

    :param tenant: the current tenant.
    :param user: the signed-in user.
    :return: a list of :class:`crmcore.contrib.DashboardWidget`.
    """


@hookspec
def crm_record_panels(tenant: Tenant, user: User, entity: str, record: Any) -> list[RecordPanel]:
    """Contribute panels to a record's page (lead, contact, company or deal).

    Called when the record's page renders, only for plugins the tenant has on. Panels are
    sorted by ``order`` then title and shown beside the record's fields; a panel whose
    ``render`` raises is replaced by an error note and logged with the plugin's name (as a
    raising implementation is), and the page still shows.

    :param tenant: the current tenant.
    :param user: the signed-in user.
    :param entity: ``"lead"``, ``"contact"``, ``"company"`` or ``"deal"``.
    :param record: the record (a peewee model of :mod:`crmcore.entities.models`).
    :return: a list of :class:`crmcore.contrib.RecordPanel`.
    """


@hookspec
def crm_list_columns(tenant: Tenant, user: User, entity: str) -> list[ListColumn]:
    """Contribute extra columns to a record list page (lead, contact, company, deal).

    Called once each time a list page renders, only for plugins the tenant has on (a
    column of a plugin the tenant has off does not show, and its sort key and filter are
    refused on the page like any unknown value). Columns are shown after the page's own,
    sorted by ``order`` then label. ``values(ids)`` is called once per page with the
    page's record ids; an implementation, a ``values`` or a sort/filter expression that
    raises is logged with the plugin's name and the page still shows.

    :param tenant: the current tenant.
    :param user: the signed-in user.
    :param entity: ``"lead"``, ``"contact"``, ``"company"`` or ``"deal"``.
    :return: a list of :class:`crmcore.contrib.ListColumn`.
    """


@hookspec
def crm_template_context(tenant: Tenant, user: User | None) -> dict[str, Any]:
    """Add variables to the context of every rendered template.

    Called on each template render in a request with a tenant, only for plugins the
    tenant has on. Keys the core already sets (``tenant``, ``user``, ``nav_items``,
    ``csrf_token``) are not overwritten; a key offered by two plugins is logged.

    :param tenant: the current tenant.
    :param user: the signed-in user, or None.
    :return: a dict of extra template variables.
    """


@hookspec
def crm_demo_data(tenant: Tenant) -> None:
    """Seed demonstration data for ``tenant`` (called by ``crm run --demo``).

    Called for plugins the demo tenant has on, inside an app context with the tenant as
    the current tenant and an open database connection, after the core's own demo records
    (users, companies, contacts, leads, deals ...) exist. Must be idempotent: ``crm run
    --demo`` calls it at every start, so check before inserting.

    :param tenant: the demo tenant.
    """


# ---------------------------------------------------------------------------------------
# Runtime hooks of privacy requests and merges: plugins' own data about a person
# ---------------------------------------------------------------------------------------


@hookspec
def crm_privacy_export(tenant: Tenant, entity: str, record_id: int, lead_ids: list[int], contact_ids: list[int]) -> list[PrivacySection]:
    """Give what the plugin stores about a person, for their privacy export (GDPR art. 15).

    Called by ``GET /api/v1/{leads,contacts}/<id>/export``, only for plugins the tenant has
    on, with the tenant as the current tenant. The person is the record asked about plus,
    for a contact, the leads converted into it: ``lead_ids`` and ``contact_ids`` hold all
    of their (existing) ids. Records merged into them earlier are gone: their plugin data
    was moved to the kept record by :func:`crm_merge_records`. Each section lands under
    ``plugins[<name>]`` of the export. An implementation that raises loses its section
    only: the export still answers, and says so under ``errors[<plugin>]``.

    :param tenant: the current tenant.
    :param entity: ``"lead"`` or ``"contact"``: the kind of record asked about.
    :param record_id: the id of the record asked about.
    :param lead_ids: the ids of the person's leads (sorted).
    :param contact_ids: the ids of the person's contacts (sorted; empty for a lead's person).
    :return: a list of :class:`crmcore.contrib.PrivacySection` (empty: nothing stored).
    """


@hookspec
def crm_privacy_erase(tenant: Tenant, entity: str, record_id: int, lead_ids: list[int], contact_ids: list[int]) -> dict[str, int]:
    """Erase (anonymise or delete) the plugin's personal data about a person (GDPR art. 17).

    Called by ``POST /api/v1/{leads,contacts}/<id>/erase``, only for plugins the tenant has
    on, inside the transaction of the core's erase and before it, with the same person as
    :func:`crm_privacy_export`. Work only in the database here; effects outside it (files)
    go in :func:`crmcore.sdk.on_commit` callbacks, so a refused erase leaves them too.
    An implementation that raises refuses the whole erase: everything rolls back (the
    core's records too) and the API answers 503 naming the plugin -- a half-erased person
    is worse than an erase that can be asked for again.

    :param tenant: the current tenant.
    :param entity: ``"lead"`` or ``"contact"``: the kind of record asked about.
    :param record_id: the id of the record asked about.
    :param lead_ids: the ids of the person's leads (sorted).
    :param contact_ids: the ids of the person's contacts (sorted; empty for a lead's person).
    :return: rows erased per table (``{"chat_message": 12}``), added to the erase's result
        and its audit entry; zero counts may be left out.
    """


@hookspec
def crm_merge_records(tenant: Tenant, entity: str, kept_id: int, merged_id: int) -> dict[str, int]:
    """Move the plugin's links from a merged record to the kept one.

    Called by ``POST /api/v1/{leads,contacts,companies}/<id>/merge``, only for plugins the
    tenant has on, inside the merge's transaction and before the merged record is deleted
    (so a foreign key with ``ON DELETE SET NULL`` or ``CASCADE`` has not fired yet). An
    implementation that raises refuses the whole merge: both records stay as they were and
    the API answers 503 naming the plugin.

    :param tenant: the current tenant.
    :param entity: ``"lead"``, ``"contact"`` or ``"company"``.
    :param kept_id: the record that stays.
    :param merged_id: the record merged into it (deleted after the hooks).
    :return: rows moved (or dropped) per table (``{"chat_conversation": 2}``), added to
        ``moved`` of the merge's audit entry; zero counts may be left out.
    """


@hookspec
def crm_lead_sources(tenant: Tenant) -> list[str]:
    """Add lead sources (``Lead.source`` values) the tenant accepts.

    Called whenever a lead's source is validated or offered (API, pages, CSV import),
    only for plugins the tenant has on, so a source exists exactly where its plugin is on
    (the chat plugin declares ``"chat"``). The core's own are generic (``manual``,
    ``form``, ``referral``, ``email``, ``sms``, ``import``, ``api``), plus the tenant's
    ``[settings.core] extra_lead_sources``. A name must match ``^[a-z][a-z0-9_]{0,29}$``;
    others are logged and ignored. A lead keeps a source whose plugin was turned off.

    :param tenant: the current tenant.
    :return: a list of source names.
    """


@hookspec
def crm_activity_kinds(tenant: Tenant) -> list[str]:
    """Add activity kinds (``Activity.kind`` values) the tenant accepts.

    Called whenever an activity's kind is validated, only for plugins the tenant has on
    (the chat plugin declares ``"chat"``). The core's own are ``call``, ``email``,
    ``meeting``, ``sms``, ``note`` and ``task``. Names as for :func:`crm_lead_sources`;
    an activity keeps a kind whose plugin was turned off (an update may not send it).

    :param tenant: the current tenant.
    :return: a list of kind names.
    """


@hookspec
def crm_search(tenant: Tenant, user: User, query: str, limit: int) -> list[SearchResult]:
    """Add results to the header's global search (and its results page).

    Called once per search, only for plugins the tenant has on, with the tenant as the
    current tenant, after the core has searched leads, contacts, companies and deals.
    Answer with at most ``limit`` results, found with ONE query (``LIMIT limit``), and
    only records the user may open (the same rules as the plugin's own pages). A raising
    implementation loses its results, logged with the plugin's name; the search still
    answers.

    :param tenant: the current tenant.
    :param user: the signed-in user.
    :param query: what was typed, stripped, 1 to 200 characters.
    :param limit: the most results wanted from this plugin.
    :return: a list of :class:`crmcore.contrib.SearchResult`.
    """
