"""The core's own tables: users, API tokens, the task queue, migrations and leases.

The CRM entities (leads, deals ...) are not here; they are the shared entities that
build on this runtime. Table names are ``crm_<entity>`` for the core.
"""

from __future__ import annotations

import peewee

from crmcore.db import BaseModel, Tenant, TenantModel, utcnow

ROLES = ("admin", "manager", "agent", "viewer")


class Team(TenantModel):
    """A group of users (a sales team): a user belongs to at most one. Plugins read it
    through the SDK (``Team``, ``User.team``) to filter and set goals by team."""

    name = peewee.CharField(max_length=100)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_teams"
        indexes = ((("tenant", "name"), True),)


class User(TenantModel):
    """A person who signs in to one tenant."""

    email = peewee.CharField(max_length=254)
    name = peewee.CharField(max_length=200, default="")
    password_hash = peewee.CharField(max_length=255, default="")
    role = peewee.CharField(max_length=20, default="agent")
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)
    #: IANA name (Europe/Berlin): how the user's pages show times (crmcore.accounts)
    time_zone = peewee.CharField(max_length=64, default="UTC")
    #: a daily email of unread notifications; ``digest_sent_on`` claims each day's once
    digest_daily = peewee.BooleanField(default=False)
    digest_sent_on = peewee.DateField(null=True)
    #: the user's team (core migration 0012_teams); a deleted team leaves its members without one
    team = peewee.ForeignKeyField(Team, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_users"
        indexes = ((("tenant", "email"), True),)


class ApiToken(TenantModel):
    """A bearer token for programs, bound to one tenant and a role; stored hashed."""

    name = peewee.CharField(max_length=200, default="")
    prefix = peewee.CharField(max_length=16, index=True)
    token_hash = peewee.CharField(max_length=128, unique=True)
    role = peewee.CharField(max_length=20, default="agent")
    user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_api_tokens"


class Task(BaseModel):
    """A durable unit of background work (see crmcore.tasks).

    Not a TenantModel: the worker reads tasks of every tenant; ``tenant`` says whose
    work it is and becomes the current tenant while the handler runs.
    """

    tenant = peewee.ForeignKeyField(Tenant, null=True, on_delete="CASCADE", backref="+")
    kind = peewee.CharField(max_length=100, index=True)
    payload = peewee.TextField(default="{}")  # JSON text: portable and exact
    status = peewee.CharField(max_length=12, default="queued")
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=5)
    idempotency_key = peewee.CharField(max_length=200, null=True, unique=True)
    next_run_at = peewee.DateTimeField(default=utcnow)
    locked_by = peewee.CharField(max_length=64, null=True)
    locked_until = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_task_queue"
        indexes = ((("status", "next_run_at"), False),)


class MigrationRecord(BaseModel):
    """One applied migration of one plugin ("core" for the core's own)."""

    plugin = peewee.CharField(max_length=100)
    name = peewee.CharField(max_length=200)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_migrations"
        indexes = ((("plugin", "name"), True),)


class Lease(BaseModel):
    """A named, expiring lock held by one process (the scheduler's leadership)."""

    name = peewee.CharField(max_length=100, primary_key=True)
    holder = peewee.CharField(max_length=64)
    expires_at = peewee.DateTimeField()

    class Meta:
        table_name = "crm_leases"


CORE_MODELS = [Tenant, Team, User, ApiToken, Task, MigrationRecord, Lease]
