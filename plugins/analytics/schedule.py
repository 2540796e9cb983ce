"""Scheduled reports: emailed through the email plugin when the tenant has it on.

Job ``analytics:reports`` (every 15 minutes, per tenant with analytics on) finds the due
reports in one indexed query (``next_run_at <= now``) and claims each occurrence with a
conditional UPDATE (``SET next_run_at = <the next one> WHERE id = ? AND next_run_at =
<the one seen>``): of two workers that saw the same occurrence only one updates the row,
and only that one enqueues the sending task, in the same transaction. The task
(``analytics.send_report``, idempotency key ``analytics-report:<id>:<occurrence>``) runs
the report and queues ONE email through the channels plugin's public contract
(``crm_plugins.channels.contrib.compose``, with the same idempotency key), so even a task
run twice queues one message; the outbox sends it.

The channel contract carries no attachments, so the email has the table in HTML and a
link to the CSV export of the same figures instead of a CSV file, a full address on the
instance's ``base_url`` (crm.toml; ``sdk.external_url``).

With the email plugin off the job does nothing: the schedule is kept (the API and the page
say "needs the email plugin") and the report is sent at its next occurrence once email is
on (a missed occurrence is sent once, not once per missed week).
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import urlencode

from crm_plugins.analytics import filters, reports
from crm_plugins.analytics.models import SavedReport
from crmcore import sdk
from crmcore.sdk import User

SEND_TASK = "analytics.send_report"
log = logging.getLogger(__name__)


def _time_zone(tenant: Any) -> str:
    return sdk.settings(tenant, filters.PLUGIN)["time_zone"]


def claim(report: SavedReport, tenant: Any) -> bool:
    """Take the report's due occurrence (``report.next_run_at``): move the row on to the
    next one and enqueue the sending, unless another worker took it first."""
    occurrence = report.next_run_at
    following = reports.next_occurrence(report, max(occurrence, sdk.utcnow()), _time_zone(tenant))
    with sdk.atomic():
        taken = SavedReport.update(next_run_at=following).where((SavedReport.id == report.id) & (SavedReport.next_run_at == occurrence)).execute()
        if taken != 1:
            return False
        key = f"analytics-report:{report.id}:{occurrence.isoformat()}"
        sdk.enqueue(SEND_TASK, {"report_id": report.id, "occurrence": occurrence.isoformat()}, tenant=tenant, idempotency_key=key)
    return True


def due_reports_job(tenant: Any) -> int:
    """Claim every due occurrence of the tenant's scheduled reports; returns how many."""
    if not reports.email_on(tenant):
        return 0
    due = list(SavedReport.select().where((SavedReport.schedule != "none") & (SavedReport.next_run_at <= sdk.utcnow())).order_by(SavedReport.next_run_at).limit(500))
    return sum(1 for report in due if claim(report, tenant))


def _export_link(report: SavedReport) -> str:
    """The full address of the report's CSV export with its filters: the worker has no
    request, so the host is the instance's ``base_url`` (crm.toml)."""
    query = urlencode({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in reports.filter_args(report).items()})
    return sdk.external_url(f"/app/analytics/{report.metric}.csv?{query}")


def render(report: SavedReport, result: dict[str, Any]) -> tuple[str, str]:
    """The email's subject and HTML: the report's table as the dashboard shows it."""
    dates = ""
    args = reports.filter_args(report)
    if args.get("date_from") or args.get("date_to"):
        dates = f" ({args.get('date_from', '…')} – {args.get('date_to', '…')})"
    subject = f"Report: {report.name}{dates}"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in result["header"])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row["cells"]) + "</tr>" for row in result["rows"])
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if not result["empty"] else "<p>Nothing to count in this range.</p>"
    link = html.escape(_export_link(report))
    page = (
        f"<h1>{html.escape(report.name)}</h1><p><strong>{html.escape(result['title'])}</strong>{html.escape(dates)}: {html.escape(result['definition'])}</p>"
        f"{table}<p>Days of the time zone {html.escape(result['time_zone'])}. <a href=\"{link}\">Download the table as CSV</a>.</p>"
    )
    return subject, page


def send_report_task(task: Any) -> None:
    """Run the report and queue its email (transactional: exactly once per occurrence)."""
    # The channels plugin's public contract (imported here: the channels plugin may be absent).
    from crm_plugins.channels.contrib import Refused, compose

    payload = sdk.payload_of(task)
    report = SavedReport.get_or_none(SavedReport.id == payload["report_id"])
    tenant = sdk.current_tenant()
    if report is None or report.schedule == "none" or not reports.email_on(tenant):
        return
    to = [email for (email,) in User.select(User.email).where(User.id.in_(list(report.recipients or [])) & (User.active == True)).order_by(User.id).tuples()]  # noqa: E712
    if not to:
        return
    owner = User.get_or_none(User.id == report.owner_id)
    if owner is None or not owner.active:
        return
    # The figures the report's owner may see (an agent restricted to their own records
    # gets theirs), not the worker's unrestricted view.
    with sdk.acting_as(sdk.current_context().but(user=owner, role=owner.role)):
        subject, page = render(report, reports.run(report))
    try:
        compose(
            tenant, channel_name="email", entity=None, record=None, conversation=None, to=to, cc=None, subject=subject, body=None, html=page,
            template=None, user=owner, idempotency_key=task.idempotency_key, purpose="sales",
        )
    except Refused as exc:  # an address the email channel refuses: retrying will not help
        log.warning("scheduled report %s not sent: %s", report.id, exc)
