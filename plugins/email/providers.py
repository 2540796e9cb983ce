"""The HTTP sending providers of a tenant (``crm_email_providers``) and the dispatch of
one message to the one its ``[settings.email] transport`` names."""

from __future__ import annotations

import logging
from email.utils import getaddresses
from typing import Any

from crm_plugins.channels.contrib import PermanentFailure
from crm_plugins.email.contrib import EmailProvider
from crmcore import sdk

log = logging.getLogger("crm_plugins.email")


def providers_of(tenant: Any) -> dict[str, EmailProvider]:
    found: dict[str, EmailProvider] = {}
    for plugin, answer in sdk.call_hook(tenant, "crm_email_providers", tenant=tenant):
        for provider in answer or []:
            if isinstance(provider, EmailProvider) and provider.name not in found and provider.name != "smtp":
                found[provider.name] = provider
            else:
                log.warning("plugin %s: ignored email provider %r (not an EmailProvider, a duplicate name or 'smtp')", plugin, provider)
    return found


def problem(tenant: Any, conf: dict[str, Any]) -> str | None:
    """What keeps the tenant's transport from sending (None: ready)."""
    if conf["transport"] == "smtp":
        return None if conf["smtp_host"] else "email sending is not configured for this tenant (settings.email smtp_host)"
    provider = providers_of(tenant).get(conf["transport"])
    if provider is None:
        return f"no email provider {conf['transport']!r} (settings.email transport) among the tenant's plugins"
    return provider.problem(conf)


def send(tenant: Any, conf: dict[str, Any], message: Any, mime: Any) -> None:
    """Hand the message to the tenant's provider (failures as the channel's)."""
    provider = providers_of(tenant).get(conf["transport"])
    if provider is None:
        raise PermanentFailure(f"no email provider {conf['transport']!r} for this tenant")
    recipients = [a for _, a in getaddresses(list(message.recipients) + list(message.cc or []))]
    provider.send(conf, message, mime.as_bytes(), recipients)
