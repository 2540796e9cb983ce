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
    deliver(tenant, alert)
    return alert


def uncontacted_leads(tenant: Any) -> int:
    """An alert for each high-priority lead still not contacted ``first_contact_hours``
    after it came in, once per lead (two queries and the new alerts)."""
    import datetime as dt

    from crmcore.sdk import Lead

    hours = sdk.settings(tenant, "insights")["first_contact_hours"]
    due = sdk.utcnow() - dt.timedelta(hours=hours)
    with sdk.tenant_context(tenant), sdk.atomic():
        alerted = InsightAlert.select(InsightAlert.record_id).where(InsightAlert.kind == "lead_not_contacted")
        leads = list(Lead.select(Lead.id, Lead.name).where(
            Lead.priority == "high", Lead.status == "new", Lead.last_contact_at.is_null(), Lead.created_at <= due, Lead.id.not_in(alerted),
        ).limit(500).tuples())
        for lead_id, name in leads:
            raise_alert(tenant, "lead_not_contacted", "lead", lead_id, f"High-priority lead not contacted: {name}"[:200], f"Came in more than {hours:g} hours ago.")
    return len(leads)


def link_of(alert: InsightAlert) -> str:
    plural = {"deal": "deals", "contact": "contacts", "company": "companies", "lead": "leads"}[alert.entity]
    return f"/app/{plural}/{alert.record_id}"


def deliver(tenant: Any, alert: InsightAlert) -> int:
    """Hand the alert to people through the core's notifications (kind ``insights``, so
    a user can mute them): the record's owner, or the tenant's managers and admins when
    it has none. In the caller's transaction, so alert and notifications commit together."""
    from crmcore.sdk import Company, Contact, Deal, Lead, User

    model = {"deal": Deal, "contact": Contact, "company": Company, "lead": Lead}[alert.entity]
    owner = model.select(model.owner).where(model.id == alert.record_id).scalar()
    if owner is not None:
        recipients = [owner]
    else:
        recipients = [u.id for u in User.select(User.id).where(User.role.in_(("admin", "manager")) & (User.active == True))]  # noqa: E712
    return sdk.notify(tenant, recipients, title=alert.title, text=alert.text, link=link_of(alert), kind="insights")
