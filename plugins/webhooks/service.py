"""Endpoints: validation, creation, changes, secret rotation (shared by the API and the
pages, so a rule holds on both)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from crm_plugins.webhooks import events, transport
from crm_plugins.webhooks.delivery import new_secret, settings
from crm_plugins.webhooks.models import WebhookEndpoint
from crmcore import sdk
from crmcore.sdk import utcnow

#: How long the old secret keeps signing after a rotation.
ROTATION_OVERLAP = dt.timedelta(hours=24)


class EndpointInput(Schema):
    """What a client may send for an endpoint (every field optional on a change)."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata={"description": "http(s) URL; private addresses are refused."})
    description = fields.String(load_default="", validate=validate.Length(max=500))
    event_types = fields.List(fields.String(validate=validate.Length(min=1, max=100)), required=True, validate=validate.Length(min=1, max=200), metadata={"description": "Event types (GET /webhooks/events)."})
    enabled = fields.Boolean(load_default=True)


class LimitReached(ValueError):
    """The tenant has ``max_endpoints`` endpoints already."""


def check(data: dict[str, Any], tenant: Any) -> None:
    """Rules a schema cannot check alone: the URL may be called, the events exist."""
    errors: dict[str, list[str]] = {}
    if "url" in data:
        try:
            transport.check_url(data["url"])
        except transport.RefusedUrl as exc:
            errors["url"] = [f"The URL {exc}."]
    if "event_types" in data:
        known = events.catalogue(tenant)
        unknown = [t for t in data["event_types"] if t not in known]
        if unknown:
            errors["event_types"] = [f"Unknown event type(s): {', '.join(sorted(set(unknown))[:10])} (see GET /api/v1/webhooks/events)."]
    if errors:
        raise ValidationError(errors)


def create(data: dict[str, Any]) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown to the caller this once)."""
    tenant = sdk.current_tenant()
    check(data, tenant)
    if WebhookEndpoint.select().count() >= settings(tenant)["max_endpoints"]:
        raise LimitReached(f"this tenant has {settings(tenant)['max_endpoints']} endpoints already (setting max_endpoints)")
    secret = new_secret()
    endpoint = WebhookEndpoint.create(
        url=data["url"].strip(), description=data.get("description", ""), event_types=sorted(set(data["event_types"])),
        enabled=data.get("enabled", True), secret=secret,
    )
    return endpoint, secret


def update(endpoint: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
    """Change an endpoint; enabling it again clears why it was disabled."""
    check(data, sdk.current_tenant())
    fields_: dict[str, Any] = {"updated_at": utcnow()}
    if "url" in data:
        fields_["url"] = data["url"].strip()
    if "description" in data:
        fields_["description"] = data["description"]
    if "event_types" in data:
        fields_["event_types"] = sorted(set(data["event_types"]))
    if "enabled" in data:
        fields_["enabled"] = data["enabled"]
        if data["enabled"] and not endpoint.enabled:
            fields_.update(disabled_reason=None, disabled_at=None, failing_since=None)
    WebhookEndpoint.update(**fields_).where(WebhookEndpoint.id == endpoint.id).execute()
    return WebhookEndpoint.get_by_id(endpoint.id)


def rotate(endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one keeps signing too for :data:`ROTATION_OVERLAP`."""
    secret = new_secret()
    now = utcnow()
    WebhookEndpoint.update(
        secret=secret, previous_secret=endpoint.secret, previous_secret_expires_at=now + ROTATION_OVERLAP, updated_at=now
    ).where(WebhookEndpoint.id == endpoint.id).execute()
    return secret
