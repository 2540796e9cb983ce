"""Hook implementations of the SMS plugin: the ``sms`` and ``whatsapp`` channels."""

from __future__ import annotations

from crm_plugins.channels.contrib import Channel
from crm_plugins.sms import callbacks, panel, provider, views
from crmcore.sdk import RecordPanel, hookimpl

SMS = Channel(
    name="sms", label="SMS", send=provider.send, prepare=provider.prepare_for("sms"),
    capabilities=frozenset({"send", "receive", "delivery_status"}),
    max_length=1600, identity="phone", activity_kind="sms", has_subject=False, consent_address=provider.number_of,
)
WHATSAPP = Channel(
    name="whatsapp", label="WhatsApp", send=provider.send, prepare=provider.prepare_for("whatsapp"),
    capabilities=frozenset({"send", "receive", "delivery_status"}),
    max_length=4096, identity="phone", activity_kind="sms", has_subject=False, consent_address=provider.number_of,
)


@hookimpl
def crm_channels(tenant):
    return [SMS, WHATSAPP]


@hookimpl
def crm_web_blueprints():
    return [views.bp, callbacks.bp]


@hookimpl
def crm_record_panels(tenant, user, entity, record):
    if entity not in ("lead", "contact", "deal"):
        return []
    return [RecordPanel(name="sms", title="SMS", render=lambda: panel.render(tenant, entity, record), order=21)]
