"""Tables of the insights plugin (``insights_*``).

Links to the core's records are plain integer columns, not foreign keys: a sentiment can
belong to a chat message (another plugin's table), and a deleted record's rows are
cleaned by the receivers and the recompute jobs instead of cascades.
"""

from __future__ import annotations

import peewee

from crmcore.sdk import Deal, JSONText, Tenant, TenantModel, require_tenant_id, utcnow


def _tenant() -> peewee.ForeignKeyField:
    """The tenant column without its own index (every index below starts with it)."""
    return peewee.ForeignKeyField(Tenant, on_delete="CASCADE", index=False, default=require_tenant_id, backref="+")


class InteractionSentiment(TenantModel):
    """The sentiment of one text interaction, keyed by (entity, record_id)."""

    tenant = _tenant()
    entity = peewee.CharField(max_length=20)  # "activity" | "note" | "chat_message" | "message"
    record_id = peewee.IntegerField()
    #: a channel message's conversation (channels plugin); its row has no record links:
    #: the message's timeline activity already counts for the record (migration 0003)
    conversation_id = peewee.IntegerField(null=True)
    lead_id = peewee.IntegerField(null=True)
    contact_id = peewee.IntegerField(null=True)
    company_id = peewee.IntegerField(null=True)
    deal_id = peewee.IntegerField(null=True)
    score = peewee.FloatField(null=True)  # -1..1; None when not scored
    status = peewee.CharField(max_length=12)  # scored | not_scored | empty
    note = peewee.CharField(max_length=200, default="")
    occurred_at = peewee.DateTimeField(default=utcnow)
    computed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "insights_sentiment"
        indexes = ((("tenant", "entity", "record_id"), True),)


# One index per link, partial (WHERE <link> IS NOT NULL): an interaction usually has one
# or two of the four links, and a backfill writes fewer index entries (both databases
# have partial indexes).
for _link in ("deal_id", "lead_id", "contact_id", "company_id", "conversation_id"):
    _column = getattr(InteractionSentiment, _link)
    InteractionSentiment.add_index(InteractionSentiment.index(InteractionSentiment.tenant, _column, InteractionSentiment.occurred_at, where=_column.is_null(False)))


class DealRisk(TenantModel):
    """The current risk of one open deal, with its factors (reasons and remedies)."""

    tenant = _tenant()
    deal = peewee.ForeignKeyField(Deal, on_delete="CASCADE", backref="+")
    level = peewee.CharField(max_length=6)  # low | medium | high
    points = peewee.FloatField(default=0)
    factors = JSONText(default=list)  # [{key, label, reason, remedy, points}]
    computed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "insights_deal_risk"
        indexes = ((("tenant", "deal"), True), (("tenant", "points"), False))


class ActionDecision(TenantModel):
    """What a user did with a suggested action: done, dismissed or task (created)."""

    tenant = _tenant()
    entity = peewee.CharField(max_length=10)  # lead | deal
    record_id = peewee.IntegerField()
    action = peewee.CharField(max_length=40)
    decision = peewee.CharField(max_length=10)
    task_id = peewee.IntegerField(null=True)
    user_id = peewee.IntegerField(null=True)
    decided_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "insights_action_decision"
        indexes = ((("tenant", "entity", "record_id", "action"), True),)


class CustomerHealth(TenantModel):
    """The current health of one customer (a contact or a company with a won deal)."""

    tenant = _tenant()
    entity = peewee.CharField(max_length=10)  # contact | company
    record_id = peewee.IntegerField()
    score = peewee.IntegerField()
    band = peewee.CharField(max_length=6)  # green | yellow | red
    factors = JSONText(default=list)  # [{key, label, points, max, reason}]
    computed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "insights_customer_health"
        indexes = ((("tenant", "entity", "record_id"), True), (("tenant", "band", "score"), False))


class HealthHistory(TenantModel):
    """One score per customer and day (the daily job overwrites the day's row)."""

    tenant = _tenant()
    entity = peewee.CharField(max_length=10)
    record_id = peewee.IntegerField()
    day = peewee.DateField()
    score = peewee.IntegerField()
    band = peewee.CharField(max_length=6)

    class Meta:
        table_name = "insights_health_history"
        indexes = ((("tenant", "entity", "record_id", "day"), True), (("tenant", "day"), False))


class InsightAlert(TenantModel):
    """An alert shown on the dashboard (and handed to the notification service)."""

    tenant = _tenant()
    kind = peewee.CharField(max_length=30)  # deal_at_risk | health_declined
    entity = peewee.CharField(max_length=10)
    record_id = peewee.IntegerField()
    title = peewee.CharField(max_length=200)
    text = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "insights_alert"
        indexes = ((("tenant", "created_at"), False),)


class GeneratedTextRecord(TenantModel):
    """A generated text asked for a record (a summary), filled in by the worker."""

    tenant = _tenant()
    entity = peewee.CharField(max_length=10)
    record_id = peewee.IntegerField()
    purpose = peewee.CharField(max_length=20)  # summary | reply
    #: a reply draft's conversation (channels plugin; migration 0003)
    conversation_id = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=10)  # queued | done | failed
    text = peewee.TextField(default="")
    source = peewee.CharField(max_length=120, default="")
    error = peewee.CharField(max_length=300, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "insights_generated_text"
        indexes = ((("tenant", "entity", "record_id", "created_at"), False),)


#: the tables of migration 0001 (as they were released: do not add to this list)
INITIAL_MODELS = [InteractionSentiment, DealRisk, ActionDecision, CustomerHealth, HealthHistory, InsightAlert]
MODELS = [*INITIAL_MODELS, GeneratedTextRecord]
