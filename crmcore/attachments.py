"""Files attached to a lead, contact, company or deal.

* Stored outside anything the web server serves: ``<instance_dir>/attachments/<tenant
  id>/<key[:2]>/<key>``, the key random (never the uploaded name, which is only shown), so
  a name like ``../../crm.db`` or ``x.html`` means nothing to the disk or the browser.
* Limits: at most ``MAX_BYTES`` per file, only the ``ALLOWED`` extensions; the content type
  is the extension's, not what the browser claimed, and downloads are always
  ``Content-Disposition: attachment`` with ``nosniff``, so an upload never runs as a page
  of this site.
* Reading one goes through the record: the download answers 404 unless the tenant's user
  may see the record it is attached to (``agents_see_own_only`` included).
* Privacy: a person's files are listed in their export (section ``core:attachments``) and
  deleted with their erase; a merge moves them to the kept record. The file on disk goes
  after the row's transaction commits (``on_commit``), so a refused erase keeps it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterable

import peewee

from crmcore import db
from crmcore.db import IdField, TenantModel, utcnow
from crmcore.entities.errors import Invalid
from crmcore.models import User

MAX_BYTES = 10 * 1024 * 1024
NAME_MAX = 200
#: extension -> content type served
ALLOWED = {
    "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "txt": "text/plain", "csv": "text/csv", "eml": "message/rfc822", "zip": "application/zip",
    "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
}
ENTITIES = ("lead", "contact", "company", "deal")
CHUNK = 64 * 1024


class Attachment(TenantModel):
    """One file on one record (``entity``, ``record_id``)."""

    id = IdField()
    entity = peewee.CharField(max_length=16)
    record_id = peewee.IntegerField()
    filename = peewee.CharField(max_length=NAME_MAX)
    content_type = peewee.CharField(max_length=120)
    size = peewee.IntegerField()
    sha256 = peewee.CharField(max_length=64)
    storage_key = peewee.CharField(max_length=64, unique=True)
    uploaded_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_attachments"
        indexes = ((("tenant", "entity", "record_id", "id"), False),)


MODELS = [Attachment]


def _root() -> Path:
    from crmcore.app import crm_state

    return Path(crm_state().config.instance.instance_dir) / "attachments"


def path_of(attachment: Attachment) -> Path:
    key = attachment.storage_key
    return _root() / str(attachment.tenant_id) / key[:2] / key


def clean_name(name: str | None) -> str:
    """The name shown: the last path part, no control characters, at most NAME_MAX."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[-NAME_MAX:]


def check(name: str) -> str:
    """The content type for an uploaded ``name``; Invalid when its extension is not allowed."""
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if not name:
        raise Invalid({"file": ["Choose a file."]})
    if extension not in ALLOWED:
        raise Invalid({"file": [f"Files of this type cannot be attached. Allowed: {', '.join(sorted(ALLOWED))}."]})
    return ALLOWED[extension]


def attach(entity: str, record_id: int, name: str | None, stream: IO[bytes], user_id: int | None) -> Attachment:
    """Store ``stream`` as a file of the record (which the caller has checked the user may
    change). Invalid when it is empty, larger than MAX_BYTES or of a refused type."""
    if entity not in ENTITIES:
        raise Invalid({"entity": [f"One of {', '.join(ENTITIES)}."]})
    name = clean_name(name)
    content_type = check(name)
    tenant_id = db.require_tenant_id()
    key = secrets.token_hex(32)
    target = _root() / str(tenant_id) / key[:2] / key
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise Invalid({"file": [f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB."]})
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid({"file": ["The file is empty."]})
        os.replace(partial, target)
        with db.atomic():
            row = Attachment.create(entity=entity, record_id=record_id, filename=name, content_type=content_type, size=size,
                                    sha256=digest.hexdigest(), storage_key=key, uploaded_by=user_id)
    except BaseException:
        partial.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        raise
    return row


def of_record(entity: str, record_id: int) -> list[Attachment]:
    return list(Attachment.select().where((Attachment.entity == entity) & (Attachment.record_id == record_id)).order_by(Attachment.id.desc()))


def _remove_files_after_commit(rows: Iterable[Attachment]) -> None:
    paths = [path_of(row) for row in rows]
    if paths:
        db.on_commit(lambda: [p.unlink(missing_ok=True) for p in paths])


def remove(attachment: Attachment) -> None:
    """Delete the row now and the file once that commits."""
    with db.atomic():
        Attachment.delete().where(Attachment.id == attachment.id).execute()
        _remove_files_after_commit([attachment])


def _of_person(lead_ids: list[int], contact_ids: list[int]) -> Any:
    return Attachment.select().where(((Attachment.entity == "lead") & Attachment.record_id.in_(lead_ids or [0]))
                                     | ((Attachment.entity == "contact") & Attachment.record_id.in_(contact_ids or [0])))


def privacy_export(lead_ids: list[int], contact_ids: list[int]) -> list[dict[str, Any]]:
    return [{"id": a.id, "entity": a.entity, "record_id": a.record_id, "filename": a.filename, "content_type": a.content_type,
             "size": a.size, "sha256": a.sha256, "created_at": a.created_at.isoformat()}
            for a in _of_person(lead_ids, contact_ids).order_by(Attachment.id)]


def privacy_erase(lead_ids: list[int], contact_ids: list[int]) -> int:
    rows = list(_of_person(lead_ids, contact_ids))
    if not rows:
        return 0
    Attachment.delete().where(Attachment.id.in_([r.id for r in rows])).execute()
    _remove_files_after_commit(rows)
    return len(rows)


def merge(entity: str, kept_id: int, merged_id: int) -> int:
    return Attachment.update(record_id=kept_id).where((Attachment.entity == entity) & (Attachment.record_id == merged_id)).execute()
