"""Tables of the automation plugin (``automation_*``): rules, their versions (a run
keeps the version it started on), runs (durable: the current step, the wake-up time of a
wait, the causal chain) and the round-robin counters of assign steps."""

from __future__ import annotations

import peewee

from crmcore.sdk import IdField, JSONText, TenantModel, utcnow

RULE_STATUSES = ("draft", "active", "paused")
#: queued: a step task is queued; waiting: until wake_at; done; failed (retry from the
#: failed step); stopped: a loop guard refused it or an exit condition ended it
#: (``guard`` says which: depth, rate_limit, exit).
RUN_STATUSES = ("queued", "waiting", "done", "failed", "stopped")


class AutomationRule(TenantModel):
    id = IdField()
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    entity = peewee.CharField(max_length=30)
    trigger_type = peewee.CharField(max_length=60)  # trigger["type"], for the receivers' query
    trigger = JSONText(default=dict)  # {"type": ..., "options": {...}}
    conditions = JSONText(default=dict)  # the condition tree (see conditions.py)
    steps = JSONText(default=list)  # [{"action": ..., "params": {...}}, ...]
    status = peewee.CharField(max_length=10, default="draft")
    paused_reason = peewee.TextField(null=True)
    version = peewee.IntegerField(default=1)
    #: exit conditions: names of triggers (``message_received``, ``email_unsubscribed``)
    #: whose occurrence for a run's record stops the run (see runs.exit_runs)
    exit_on = JSONText(default=list)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "automation_rule"
        # the receivers' query: the active rules of one trigger type
        indexes = ((("tenant", "status", "trigger_type"), False),)


class AutomationRuleVersion(TenantModel):
    """The definition of a rule as of one version (what its runs execute)."""

    rule = peewee.ForeignKeyField(AutomationRule, on_delete="CASCADE", backref="+")
    version = peewee.IntegerField()
    definition = JSONText(default=dict)  # {"entity", "trigger", "conditions", "steps"}
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "automation_rule_version"
        indexes = ((("rule", "version"), True),)


class AutomationRun(TenantModel):
    id = IdField()
    rule = peewee.ForeignKeyField(AutomationRule, on_delete="CASCADE", backref="+")
    version = peewee.IntegerField()
    entity = peewee.CharField(max_length=30)
    record_id = peewee.IntegerField()
    trigger = peewee.CharField(max_length=60)
    status = peewee.CharField(max_length=10, default="queued")
    step = peewee.IntegerField(default=0)  # index of the next step to run
    tries = peewee.IntegerField(default=0)  # step tasks queued for this run (part of their idempotency key)
    failures = peewee.IntegerField(default=0)  # failed attempts of the current step
    wake_at = peewee.DateTimeField(null=True)
    #: a wait step that re-checks when woken: "quiet" (no activity for a while) or
    #: "reply" (a reply, at most until wake_at), and since when it waits
    waiting_for = peewee.CharField(max_length=10, null=True)
    waiting_since = peewee.DateTimeField(null=True)
    chain = JSONText(default=list)  # rule ids of the runs that caused this one, oldest first
    depth = peewee.IntegerField(default=1)
    guard = peewee.CharField(max_length=20, null=True)  # depth | rate_limit | exit
    error = peewee.TextField(null=True)
    log = JSONText(default=list)  # [{"step", "action", "at", "result" | "error"}]
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "automation_run"
        indexes = ((("tenant", "status", "wake_at"), False), (("rule", "record_id", "created_at"), False),
                   (("rule", "id"), False), (("tenant", "entity", "record_id"), False))


class AutomationCounter(TenantModel):
    """Round-robin position of one assign step of one rule."""

    rule = peewee.ForeignKeyField(AutomationRule, on_delete="CASCADE", backref="+")
    step = peewee.IntegerField()
    value = peewee.IntegerField(default=0)

    class Meta:
        table_name = "automation_counter"
        indexes = ((("rule", "step"), True),)


class AutomationFired(TenantModel):
    """A time trigger fired for a record and occurrence (the date's value, the time of the
    last activity, as the database writes it as text): it fires once per occurrence."""

    rule = peewee.ForeignKeyField(AutomationRule, on_delete="CASCADE", backref="+")
    record_id = peewee.IntegerField()
    occurrence = peewee.CharField(max_length=40)
    fired_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "automation_fired"
        indexes = ((("rule", "record_id", "occurrence"), True),)


MODELS = [AutomationRule, AutomationRuleVersion, AutomationRun, AutomationCounter, AutomationFired]
