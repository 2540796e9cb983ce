"""The event catalogue: the core's events (provided through this plugin's own
``crm_webhooks_events``), other plugins' events, and their JSON payloads and schemas.

A delivery's body is ``{"type": ..., "timestamp": ..., "data": ...}`` (the Standard
Webhooks envelope); ``data`` is what the event's ``payload`` returns, described by its
``schema``. Records are written out column by column (foreign keys as ``<name>_id``,
times as ISO 8601 UTC with a ``Z``, money as decimal strings).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import logging
from typing import Any

import peewee

from crm_plugins.webhooks.contrib import WebhookEvent
from crmcore import sdk
from crmcore.sdk import Company, Contact, Deal, JSONText, Lead, Stage

log = logging.getLogger("crm_plugins.webhooks")

ENTITIES = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}
TEST_EVENT = "webhook_test"
HOOK = "crm_webhooks_events"


# --------------------------------------------------------------------------- records


def json_value(value: Any) -> Any:
    """A column value as JSON: times ISO 8601 (UTC, ``Z``), decimals as strings."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, peewee.Model):
        return value.id
    return value


def record_data(record: Any) -> dict[str, Any] | None:
    """A record's columns (not its tenant) as a JSON object."""
    if record is None:
        return None
    out: dict[str, Any] = {}
    for field in type(record)._meta.sorted_fields:
        if field.name == "tenant":
            continue
        if isinstance(field, peewee.ForeignKeyField):
            out[field.object_id_name] = getattr(record, field.object_id_name)
        else:
            out[field.name] = json_value(getattr(record, field.name))
    return out


_JSON_TYPES: tuple[tuple[type, dict[str, Any]], ...] = (
    (JSONText, {}),
    (peewee.ForeignKeyField, {"type": "integer"}),
    (peewee.BooleanField, {"type": "boolean"}),
    (peewee.DecimalField, {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
    (peewee.DateTimeField, {"type": "string", "format": "date-time"}),
    (peewee.DateField, {"type": "string", "format": "date"}),
    (peewee.FloatField, {"type": "number"}),
    (peewee.IntegerField, {"type": "integer"}),
    (peewee.CharField, {"type": "string"}),
    (peewee.TextField, {"type": "string"}),
)


def record_schema(model: type, nullable: bool = False) -> dict[str, Any]:
    """The JSON Schema of :func:`record_data` for ``model``."""
    properties: dict[str, Any] = {}
    for field in model._meta.sorted_fields:
        if field.name == "tenant":
            continue
        schema = dict(next((s for kind, s in _JSON_TYPES if isinstance(field, kind)), {}))
        if field.null and "type" in schema:
            schema["type"] = [schema["type"], "null"]
        name = field.object_id_name if isinstance(field, peewee.ForeignKeyField) else field.name
        properties[name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties, "required": sorted(properties)}
    if nullable:
        out = {"oneOf": [out, {"type": "null"}]}
    return out


ACTOR_SCHEMA = {
    "description": "Who did it: a user, an API token, or null (jobs, commands).",
    "oneOf": [
        {"type": "null"},
        {"type": "object", "properties": {"kind": {"enum": ["user", "token"]}, "id": {"type": "integer"}}, "required": ["kind", "id"]},
    ],
}


def actor_data(actor: Any) -> dict[str, Any] | None:
    if actor is None:
        return None
    kind = "user" if isinstance(actor, sdk.User) else "token"
    return {"kind": kind, "id": actor.id}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


# --------------------------------------------------------------------------- the core's events


def _entity_events(entity: str, model: type) -> list[WebhookEvent]:
    record = record_schema(model)

    def created(record: Any = None, actor: Any = None, **_: Any) -> dict[str, Any]:
        return {"record": record_data(record), "actor": actor_data(actor)}

    def updated(record: Any = None, changes: Any = None, actor: Any = None, **_: Any) -> dict[str, Any]:
        diff = {name: {"old": json_value(old), "new": json_value(new)} for name, (old, new) in (changes or {}).items()}
        return {"record": record_data(record), "changes": diff, "actor": actor_data(actor)}

    def deleted(record_id: Any = None, record: Any = None, actor: Any = None, **_: Any) -> dict[str, Any]:
        return {"id": record_id if record_id is not None else getattr(record, "id", None), "record": record_data(record), "actor": actor_data(actor)}

    change = {"type": "object", "properties": {"old": {}, "new": {}}, "required": ["old", "new"]}
    return [
        WebhookEvent(f"{entity}_created", f"{entity}_created", created, _object({"record": record, "actor": ACTOR_SCHEMA}), f"A {entity} was created."),
        WebhookEvent(
            f"{entity}_updated", f"{entity}_updated", updated,
            _object({"record": record, "changes": {"type": "object", "additionalProperties": change, "description": "field -> old and new value"}, "actor": ACTOR_SCHEMA}),
            f"A {entity} changed.",
        ),
        WebhookEvent(
            f"{entity}_deleted", f"{entity}_deleted", deleted,
            _object({"id": {"type": "integer"}, "record": record_schema(model, nullable=True), "actor": ACTOR_SCHEMA}),
            f"A {entity} was deleted (``record``: its last state).",
        ),
    ]


def _stage_name(stage_id: Any) -> str | None:
    if stage_id is None:
        return None
    row = Stage.select(Stage.name).where(Stage.id == stage_id).first()
    return row.name if row else None


def _deal_stage_changed(deal: Any = None, from_stage_id: Any = None, to_stage_id: Any = None, actor: Any = None, **_: Any) -> dict[str, Any]:
    return {
        "deal": record_data(deal), "from_stage_id": from_stage_id, "from_stage": _stage_name(from_stage_id),
        "to_stage_id": to_stage_id, "to_stage": _stage_name(to_stage_id), "actor": actor_data(actor),
    }


def _lead_converted(lead: Any = None, contact: Any = None, company: Any = None, deal: Any = None, actor: Any = None, **_: Any) -> dict[str, Any]:
    return {"lead": record_data(lead), "contact": record_data(contact), "company": record_data(company), "deal": record_data(deal), "actor": actor_data(actor)}


@functools.cache
def core_events() -> tuple[WebhookEvent, ...]:
    """The core's event types (built once: the models do not change at run time)."""
    events: list[WebhookEvent] = []
    for entity, model in ENTITIES.items():
        events.extend(_entity_events(entity, model))
    nullable_id = {"type": ["integer", "null"]}
    nullable_name = {"type": ["string", "null"]}
    events.append(WebhookEvent(
        "deal_stage_changed", "deal_stage_changed", _deal_stage_changed,
        _object({"deal": record_schema(Deal), "from_stage_id": nullable_id, "from_stage": nullable_name, "to_stage_id": nullable_id, "to_stage": nullable_name, "actor": ACTOR_SCHEMA}),
        "A deal moved to another stage of its pipeline.",
    ))
    events.append(WebhookEvent(
        "lead_converted", "lead_converted", _lead_converted,
        _object({"lead": record_schema(Lead), "contact": record_schema(Contact), "company": record_schema(Company, nullable=True), "deal": record_schema(Deal, nullable=True), "actor": ACTOR_SCHEMA}),
        "A lead was converted into a contact (and maybe a company and a deal).",
    ))
    return tuple(events)


TEST_SCHEMA = _object({"message": {"type": "string"}, "endpoint_id": {"type": "integer"}})


# --------------------------------------------------------------------------- the catalogue


def catalogue(tenant: Any) -> dict[str, WebhookEvent]:
    """Every event type the tenant's enabled plugins offer, by type (the first plugin to
    declare a type keeps it; a duplicate is logged)."""
    found: dict[str, WebhookEvent] = {}
    for plugin, events in sdk.call_hook(tenant, HOOK, tenant=tenant):
        for event in events:
            if not isinstance(event, WebhookEvent) or not event.type or event.type == TEST_EVENT:
                log.warning("plugin %r: %s returned %r, not a WebhookEvent with a type; skipped", plugin, HOOK, event)
            elif event.type in found:
                log.warning("plugin %r: webhook event type %r is already declared; skipped", plugin, event.type)
            else:
                found[event.type] = event
    return found


def envelope(event_type: str, data: dict[str, Any], when: dt.datetime | None = None) -> dict[str, Any]:
    """The Standard Webhooks body: type, timestamp, data."""
    return {"type": event_type, "timestamp": json_value(when or sdk.utcnow()), "data": data}
