"""Alerts: stored for the dashboard, announced as ``insight_alert``, and handed to the
notification service through :func:`deliver` (the one place to wire it)."""

from __future__ import annotations

import logging
from typing import Any

from crm_plugins.insights.models import InsightAlert
from crmcore import sdk

log = logging.getLogger("crm_plugins.insights")


def raise_alert(tenant: Any, kind: str, entity: str, record_id: int, title: str, text: str = "") -> InsightAlert:
    """Store an alert and announce it (inside the caller's transaction: after commit)."""
    alert = InsightAlert.create(kind=kind, entity=entity, record_id=record_id, title=title[:200], text=text)
    sdk.send_signal("insight_alert", tenant, alert_id=alert.id, kind=kind, entity=entity, record_id=record_id, title=alert.title, text=text)
    sdk.on_commit(lambda: deliver(tenant, alert))
    return alert


def link_of(alert: InsightAlert) -> str:
    plural = {"deal": "deals", "contact": "contacts", "company": "companies", "lead": "leads"}[alert.entity]
    return f"/app/{plural}/{alert.record_id}"


def deliver(tenant: Any, alert: InsightAlert) -> None:
    """Hand the alert to people. The core's notification service is not on this branch
    yet: at merge, call ``sdk.notify(tenant, user_ids, title=alert.title, text=alert.text,
    link=link_of(alert), kind="insights")`` here, ``user_ids`` being the owner of the
    record (or the tenant's managers). Until then the alert is on the dashboard and in
    the ``insight_alert`` signal."""
    log.info("insights: alert %s for %s %s of %s: %s", alert.kind, alert.entity, alert.record_id, getattr(tenant, "slug", tenant), alert.title)
