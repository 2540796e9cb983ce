"""/app/export/<entity>.csv: the CSV of a list page exactly as it is filtered.

The list page's "Export CSV" link carries its query string here. The records are chosen
by the page's own path (:class:`crmcore.web.records.RecordPages`: the API's filters, the
page's own such as a contact's company name, the filters of plugins' columns), so the
file holds what the list shows, every page of it; the CSV itself is
:func:`crmcore.entities.csvio.export_lines`, the one the API and ``crm export`` write, so
it can be imported back as it is. Filters the list reports as not understood are left out
here too. Needs ``records:export``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g

from crmcore.api.csv_io import csv_download
from crmcore.entities import csvio
from crmcore.web.records import require

bp = Blueprint("list_export", __name__, url_prefix="/app/export")

PLURALS = {"lead": "leads", "contact": "contacts", "company": "companies", "deal": "deals"}


@bp.route("/<entity>.csv")
def export(entity: str) -> Any:
    """Stream the list's records (all pages) as CSV."""
    require("records:export")
    if entity not in PLURALS or PLURALS[entity] not in csvio.available():
        abort(404)
    from crmcore.web.inline_edit import record_pages

    pages = record_pages(entity)
    args, problems = pages.list_args()
    query = pages.plugin_filters(pages.filter_query(pages.filtered(args), args), problems)
    return csv_download(PLURALS[entity], g.tenant, csvio.export_lines(PLURALS[entity], query))
