"""peewee models of the shared CRM entities (tables ``crm_<entity>``)."""

from __future__ import annotations

import peewee

from crmcore.db import TenantModel, utcnow
from crmcore.models import ApiToken, User

#: The core's generic lead sources; plugins add theirs per tenant (crm_lead_sources, so
#: "chat" is the chat plugin's) and crmcore.entities.vocabulary.lead_sources() has them all.
LEAD_SOURCES = ("form", "manual", "referral", "email", "sms", "import", "api")
LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "converted")
PRIORITIES = ("low", "medium", "high")
LIFECYCLE_STAGES = ("subscriber", "lead", "opportunity", "customer", "evangelist", "other")
#: The core's generic activity kinds; plugins add theirs (crm_activity_kinds): see
#: crmcore.entities.vocabulary.activity_kinds().
ACTIVITY_KINDS = ("call", "email", "meeting", "sms", "note", "task")
DIRECTIONS = ("in", "out")
TASK_STATUSES = ("open", "done", "cancelled")
CUSTOM_FIELD_KINDS = ("text", "number", "date", "choice", "boolean")
TAGGABLE = ("lead", "contact", "company", "deal")


class JSONText(peewee.TextField):
    """JSON kept as text: identical on SQLite and PostgreSQL, exact round trips."""

    def db_value(self, value):
        import json

        return None if value is None else json.dumps(value, default=str, sort_keys=True)

    def python_value(self, value):
        import json

        return None if value is None else json.loads(value)


class Entity(TenantModel):
    """Common columns: timestamps, a version for ETags, custom field values."""

    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)
    version = peewee.IntegerField(default=1)
    custom = JSONText(default=dict)


class Company(Entity):
    name = peewee.CharField(max_length=200, index=True)
    domain = peewee.CharField(max_length=200, null=True, index=True)
    industry = peewee.CharField(max_length=100, null=True)
    size = peewee.CharField(max_length=20, null=True)  # "1-10", "11-50" ...
    annual_revenue = peewee.DecimalField(max_digits=16, decimal_places=2, null=True)
    address = peewee.TextField(null=True)
    website = peewee.CharField(max_length=300, null=True)
    owner = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_company"


class Contact(Entity):
    first_name = peewee.CharField(max_length=100, default="")
    last_name = peewee.CharField(max_length=100, default="", index=True)
    email = peewee.CharField(max_length=254, null=True)
    emails = JSONText(default=list)  # further addresses
    phone = peewee.CharField(max_length=40, null=True)
    phones = JSONText(default=list)
    job_title = peewee.CharField(max_length=150, null=True)
    company = peewee.ForeignKeyField(Company, null=True, on_delete="SET NULL", backref="+")
    timezone = peewee.CharField(max_length=64, null=True)
    language = peewee.CharField(max_length=16, null=True)
    consent_email = peewee.BooleanField(default=False)
    consent_sms = peewee.BooleanField(default=False)
    lifecycle_stage = peewee.CharField(max_length=20, default="lead")
    owner = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_contact"
        indexes = ((("tenant", "email"), True),)


class Pipeline(TenantModel):
    name = peewee.CharField(max_length=100)
    is_default = peewee.BooleanField(default=False)
    order = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "crm_pipeline"


class Stage(TenantModel):
    pipeline = peewee.ForeignKeyField(Pipeline, on_delete="CASCADE", backref="+")
    name = peewee.CharField(max_length=100)
    order = peewee.IntegerField(default=0)
    probability = peewee.IntegerField(default=0)
    colour = peewee.CharField(max_length=20, default="#8a94a6")
    is_won = peewee.BooleanField(default=False)
    is_lost = peewee.BooleanField(default=False)
    expected_days = peewee.IntegerField(null=True)
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "crm_stage"


class Lead(Entity):
    name = peewee.CharField(max_length=200)
    email = peewee.CharField(max_length=254, null=True)
    phone = peewee.CharField(max_length=40, null=True)
    company_name = peewee.CharField(max_length=200, null=True)
    source = peewee.CharField(max_length=30, default="manual", index=True)
    status = peewee.CharField(max_length=20, default="new", index=True)
    priority = peewee.CharField(max_length=10, default="medium")
    owner = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    estimated_value = peewee.DecimalField(max_digits=16, decimal_places=2, null=True)
    last_contact_at = peewee.DateTimeField(null=True)
    budget = peewee.CharField(max_length=200, null=True)
    authority = peewee.CharField(max_length=200, null=True)
    need = peewee.TextField(null=True)
    timeline = peewee.CharField(max_length=200, null=True)
    converted_at = peewee.DateTimeField(null=True)
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="+")
    company = peewee.ForeignKeyField(Company, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_lead"
        # (tenant, created_at, id): the list's default order (-created_at), so a page is
        # an index range, not a sort of the tenant's leads (migration 0004).
        indexes = ((("tenant", "email"), True), (("tenant", "id"), False), (("tenant", "created_at", "id"), False))


class Deal(Entity):
    title = peewee.CharField(max_length=200)
    value = peewee.DecimalField(max_digits=16, decimal_places=2, default=0)
    currency = peewee.CharField(max_length=3, default="EUR")
    probability = peewee.IntegerField(default=0)
    expected_close_date = peewee.DateField(null=True)
    pipeline = peewee.ForeignKeyField(Pipeline, on_delete="RESTRICT", backref="+")
    stage = peewee.ForeignKeyField(Stage, on_delete="RESTRICT", backref="+")
    position = peewee.DoubleField(default=0)  # order inside a stage (board columns)
    stage_entered_at = peewee.DateTimeField(default=utcnow)
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="+")
    company = peewee.ForeignKeyField(Company, null=True, on_delete="SET NULL", backref="+")
    lead = peewee.ForeignKeyField(Lead, null=True, on_delete="SET NULL", backref="+")
    owner = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    priority = peewee.CharField(max_length=10, default="medium")
    source = peewee.CharField(max_length=30, null=True)
    lost_reason = peewee.CharField(max_length=300, null=True)
    closed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_deal"
        indexes = ((("tenant", "stage", "position"), False),)


class DealStageChange(TenantModel):
    deal = peewee.ForeignKeyField(Deal, on_delete="CASCADE", backref="+")
    from_stage = peewee.ForeignKeyField(Stage, null=True, on_delete="SET NULL", backref="+")
    to_stage = peewee.ForeignKeyField(Stage, null=True, on_delete="SET NULL", backref="+")
    changed_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    changed_at = peewee.DateTimeField(default=utcnow, index=True)
    seconds_in_previous = peewee.IntegerField(null=True)

    class Meta:
        table_name = "crm_deal_stage_change"


class Linked(TenantModel):
    """Records that attach to any of lead, contact, company, deal."""

    lead = peewee.ForeignKeyField(Lead, null=True, on_delete="CASCADE", backref="+")
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="CASCADE", backref="+")
    company = peewee.ForeignKeyField(Company, null=True, on_delete="CASCADE", backref="+")
    deal = peewee.ForeignKeyField(Deal, null=True, on_delete="CASCADE", backref="+")
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)


class Activity(Linked):
    kind = peewee.CharField(max_length=20)
    channel = peewee.CharField(max_length=30, null=True)
    direction = peewee.CharField(max_length=3, null=True)
    subject = peewee.CharField(max_length=300, default="")
    content = peewee.TextField(default="")
    outcome = peewee.CharField(max_length=200, null=True)
    next_step = peewee.CharField(max_length=300, null=True)
    sentiment = peewee.FloatField(null=True)
    occurred_at = peewee.DateTimeField(default=utcnow, index=True)
    duration_seconds = peewee.IntegerField(null=True)
    user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_activity"


class Note(Linked):
    body = peewee.TextField()
    pinned = peewee.BooleanField(default=False)
    mentions = JSONText(default=list)  # user ids
    author = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "crm_note"


class Task(Linked):
    title = peewee.CharField(max_length=300)
    due_at = peewee.DateTimeField(null=True, index=True)
    reminder_at = peewee.DateTimeField(null=True)
    #: when the reminder was sent (crmcore.notifications); a new reminder_at clears it
    reminder_sent_at = peewee.DateTimeField(null=True)
    assignee = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    status = peewee.CharField(max_length=10, default="open", index=True)
    priority = peewee.CharField(max_length=10, default="medium")
    completed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_task"


class Tag(TenantModel):
    name = peewee.CharField(max_length=60)
    colour = peewee.CharField(max_length=20, default="#5b6b8c")
    created_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "crm_tag"
        indexes = ((("tenant", "name"), True),)


class Tagging(TenantModel):
    tag = peewee.ForeignKeyField(Tag, on_delete="CASCADE", backref="+")
    entity = peewee.CharField(max_length=20)
    entity_id = peewee.IntegerField()

    class Meta:
        table_name = "crm_tagging"
        indexes = ((("tenant", "entity", "entity_id", "tag"), True), (("tag", "entity"), False))


class CustomField(TenantModel):
    entity = peewee.CharField(max_length=20)
    key = peewee.CharField(max_length=60)
    label = peewee.CharField(max_length=100)
    kind = peewee.CharField(max_length=10)
    choices = JSONText(default=list)
    required = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "crm_custom_field"
        indexes = ((("tenant", "entity", "key"), True),)


class AuditEntry(TenantModel):
    entity = peewee.CharField(max_length=30)
    entity_id = peewee.IntegerField()
    action = peewee.CharField(max_length=20)
    actor_user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    actor_token = peewee.ForeignKeyField(ApiToken, null=True, on_delete="SET NULL", backref="+")
    #: who acted when no user or token did: "cli", "scheduler", "worker" (Context.actor)
    actor_name = peewee.CharField(max_length=40, null=True)
    changes = JSONText(default=dict)  # field -> [old, new]
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_audit"
        indexes = ((("tenant", "entity", "entity_id"), False),)


ENTITY_MODELS = [Company, Contact, Pipeline, Stage, Lead, Deal, DealStageChange, Activity, Note, Task, Tag, Tagging, CustomField, AuditEntry]
