"""The contract of the webhooks plugin's hook: what another plugin returns from
``crm_webhooks_events`` (import it as ``from crm_plugins.webhooks.contrib import WebhookEvent``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookEvent:
    """An event type endpoints can subscribe to.

    ``type`` is the name integrators see (``deal_stage_changed``); ``signal`` the name of
    the signal that announces it; ``payload(**signal_data)`` turns the signal's keyword
    data into the JSON-ready ``data`` of the delivery (None: this occurrence is not an
    event of this type, nothing is sent); ``schema`` is the JSON Schema of that ``data``.
    """

    type: str
    signal: str
    payload: Callable[..., dict[str, Any] | None]
    schema: dict[str, Any] = field(default_factory=dict)
    description: str = ""
