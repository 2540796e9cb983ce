"""/app/attachments: upload a file to a record, download it, delete it.

The rules are :mod:`crmcore.attachments`'. The record pages show a "Files" panel (the
core's ``crm_record_panels``) with the list and the upload form. Every route goes
through the record: a file of a record the user may not see is a 404, as is another
tenant's; uploading and deleting need ``records:write``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, request, send_file, url_for

from crmcore import attachments
from crmcore.attachments import Attachment
from crmcore.entities.errors import Invalid
from crmcore.web.records import require

bp = Blueprint("attachment_pages", __name__, url_prefix="/app/attachments")
FORM_OVERHEAD = 64 * 1024  # the CSRF token and the multipart headers around the file


def _record_or_404(entity: str, record_id: int) -> Any:
    from crmcore.sdk import visible_record

    record = visible_record(entity, record_id) if entity in attachments.ENTITIES else None
    if record is None:
        abort(404, "No such record here.")
    return record


def record_url(entity: str, record_id: int) -> str:
    return url_for(f"{entity}_pages.detail", record_id=record_id) + "#files"


@bp.route("/<entity>/<int:record_id>", methods=["POST"])
def upload(entity: str, record_id: int):
    """Attach the form's ``file`` to the record; 422 with the reason when refused."""
    require("records:write")
    _record_or_404(entity, record_id)
    upload = request.files.get("file")
    try:
        attachments.attach(entity, record_id, upload.filename if upload else "", upload.stream if upload else None, g.user.id)
    except Invalid as exc:
        abort(422, " ".join(message for messages in exc.errors.values() for message in messages))
    flash(f"{attachments.clean_name(upload.filename)} attached.")
    return redirect(record_url(entity, record_id))


# A far too large body is refused (413) before werkzeug spools it to a temporary file
# (crmcore.request_guard reads this); attach() counts the file's own bytes against MAX_BYTES.
upload.crm_max_body = attachments.MAX_BYTES + FORM_OVERHEAD


def _attachment_or_404(attachment_id: int) -> Attachment:
    row = Attachment.get_or_none(Attachment.id == attachment_id)  # tenant-scoped
    if row is None:
        abort(404, "No such file here.")
    _record_or_404(row.entity, row.record_id)
    return row


@bp.route("/<int:attachment_id>")
def download(attachment_id: int):
    """The file, always as a download (never shown as a page of this site)."""
    require("records:read")
    row = _attachment_or_404(attachment_id)
    path = attachments.path_of(row)
    if not path.is_file():
        abort(404, "The file is missing from the server's storage.")
    response = send_file(path, mimetype=row.content_type, as_attachment=True, download_name=row.filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@bp.route("/<int:attachment_id>/delete", methods=["POST"])
def delete(attachment_id: int):
    require("records:write")
    row = _attachment_or_404(attachment_id)
    attachments.remove(row)
    flash(f"{row.filename} deleted.")
    return redirect(record_url(row.entity, row.record_id))
