"""Hooks the channels plugin declares for channel plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.channels.contrib import Channel
from crmcore.sdk import hookspec

# Channel is imported at run time: answers are checked against the annotation.


@hookspec
def crm_channels(tenant: Any) -> list[Channel]:
    """The channels a plugin offers (email, SMS, ...), called through the tenant's subset
    caller: a channel of a plugin the tenant has off does not exist for it (its messages
    stay, the outbox cancels their sends)."""
