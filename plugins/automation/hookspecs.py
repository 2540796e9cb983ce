"""Hooks the automation plugin declares for other plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.automation.contrib import AutomationAction, AutomationTrigger
from crmcore.sdk import hookspec

# The contract classes are imported at run time: answers are checked against them.


@hookspec
def crm_automation_triggers(tenant: Any) -> list[AutomationTrigger]:
    """Facts rules can start on, called through the tenant's subset caller (a trigger of
    a plugin the tenant has off is not offered); ``tenant`` is None when the automation
    plugin asks at startup which signals to listen to."""


@hookspec
def crm_automation_actions(tenant: Any) -> list[AutomationAction]:
    """Steps rules can take, called through the tenant's subset caller."""
