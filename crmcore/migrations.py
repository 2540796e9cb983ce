"""Migrations: per plugin, recorded in ``crm_migrations``, each in its own transaction.

A plugin declares ``crm_migrations() -> [Migration("0001_initial", create_tables(A, B)), ...]``.
``crm migrate`` applies what is pending, plugins in dependency order, migrations in
declared order. ``create_tables`` alone never changes an existing table, so every later
change is a new migration, e.g. ``add_columns(Model, "colour")`` (which reads the field
definition from the model).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator
from playhouse.migrate import migrate as run_operations

from crmcore import db
from crmcore.contrib import Migration
from crmcore.models import CORE_MODELS, MigrationRecord

if TYPE_CHECKING:
    from crmcore.plugins import PluginHost

log = logging.getLogger("crmcore.migrations")

# Arbitrary but fixed: serialises concurrent `crm migrate` runs on PostgreSQL.
_PG_LOCK_ID = 727_274_001


def create_tables(*models: type[peewee.Model]) -> Callable[[Any], None]:
    """A migration step creating ``models``' tables (and indexes)."""

    def apply(database: Any) -> None:
        database.create_tables(models)

    apply.__name__ = "create_tables"
    return apply


def migrator(database: Any) -> SchemaMigrator:
    if isinstance(database, peewee.PostgresqlDatabase):
        return PostgresqlMigrator(database)
    return SqliteMigrator(database)


def add_columns(model: type[peewee.Model], *field_names: str) -> Callable[[Any], None]:
    """A migration step adding the model's fields ``field_names`` as new columns.

    A new column must be nullable or have a default, so existing rows stay valid.
    """

    def apply(database: Any) -> None:
        m = migrator(database)
        ops = []
        for name in field_names:
            field = model._meta.fields[name]
            ops.append(m.add_column(model._meta.table_name, field.column_name, field))
        run_operations(*ops)

    apply.__name__ = "add_columns"
    return apply


def create_indexes(*models: type[peewee.Model]) -> Callable[[Any], None]:
    """A migration step creating the models' declared indexes that do not exist yet
    (``CREATE INDEX IF NOT EXISTS``): add the index to the model's ``Meta.indexes`` (so a
    new database gets it with the table) and this step for existing databases."""

    def apply(database: Any) -> None:
        for model in models:
            model._schema.create_indexes(safe=True)

    apply.__name__ = "create_indexes"
    return apply


CORE_MIGRATIONS = [Migration("0001_initial", create_tables(*[m for m in CORE_MODELS if m is not MigrationRecord]))]


def declared(host: "PluginHost") -> list[tuple[str, Migration]]:
    """Every declared migration, plugins in dependency order; checks names."""
    by_plugin = dict(host.call_startup("crm_migrations"))
    out: list[tuple[str, Migration]] = []
    for info in host.ordered():
        migrations = list(by_plugin.get(info.name, []))
        names = [m.name for m in migrations]
        if len(set(names)) != len(names):
            raise ValueError(f"plugin {info.name!r} declares a migration name twice: {names}")
        out.extend((info.name, m) for m in migrations)
    return out


def applied() -> set[tuple[str, str]]:
    db.database.create_tables([MigrationRecord], safe=True)
    return {(r.plugin, r.name) for r in MigrationRecord.select()}


def pending(host: "PluginHost") -> list[tuple[str, Migration]]:
    done = applied()
    return [(p, m) for p, m in declared(host) if (p, m.name) not in done]


def migrate(host: "PluginHost", report: Callable[[str], None] = log.info, only: Callable[[str, Migration], bool] | None = None) -> list[str]:
    """Apply every pending migration (or those ``only(plugin, migration)`` accepts);
    return "plugin:name" of each applied."""
    ran: list[str] = []
    # No lock or statement timeout here: an index on a big table may take minutes, and a
    # second ``crm migrate`` waits for the first one's advisory lock.
    with db.database.connection_context(), db.no_timeouts():
        if db.is_postgres():
            db.database.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK_ID,))
        try:
            for plugin, migration in pending(host):
                if only is not None and not only(plugin, migration):
                    continue
                with db.atomic():
                    # Re-check inside the transaction: another process may have run it.
                    if MigrationRecord.select().where((MigrationRecord.plugin == plugin) & (MigrationRecord.name == migration.name)).exists():
                        continue
                    migration.apply(db.database.obj)
                    MigrationRecord.create(plugin=plugin, name=migration.name)
                ran.append(f"{plugin}:{migration.name}")
                report(f"applied {plugin}:{migration.name}")
        finally:
            if db.is_postgres():
                db.database.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_ID,))
    return ran
