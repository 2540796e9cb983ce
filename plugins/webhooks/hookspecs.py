"""Hooks the webhooks plugin declares for other plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.webhooks.contrib import WebhookEvent
from crmcore.sdk import hookspec

# WebhookEvent is imported at run time: answers are checked against the annotation.


@hookspec
def crm_webhooks_events(tenant: Any) -> list[WebhookEvent]:
    """Event types endpoints can subscribe to, called through the tenant's subset caller
    (an event of a plugin the tenant has off is not offered); ``tenant`` is None when the
    webhooks plugin asks at startup which signals to listen to."""
