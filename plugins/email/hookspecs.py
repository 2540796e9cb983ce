"""Hooks the email plugin declares."""

from __future__ import annotations

from typing import Any

from crm_plugins.email.contrib import EmailProvider
from crmcore.sdk import hookspec


@hookspec
def crm_email_providers(tenant: Any) -> list[EmailProvider]:
    """The HTTP sending providers a plugin offers (the email plugin's own: ``mailgun``),
    called through the tenant's subset caller; a tenant picks one with ``[settings.email]
    transport``."""
