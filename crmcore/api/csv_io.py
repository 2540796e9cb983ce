"""CSV export and import of the core entities:
``GET /api/v1/<entity>/export.csv`` and ``POST /api/v1/<entity>/import`` for leads,
contacts, companies and deals (each entity as soon as its API module exists).

The work is done by :mod:`crmcore.entities.csvio`, which ``crm import`` and
``crm export`` use too; this module only speaks HTTP: the filters of the list endpoint,
streaming, upload size and media type, permissions.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

from flask import Response, g, request, stream_with_context
from flask_smorest import abort
from marshmallow import fields

from crmcore import db
from crmcore.api import common
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.db import utcnow
from crmcore.entities import csvio

blp = Blueprint("csv_io", __name__, description="CSV import and export of leads, contacts, companies and deals.")

#: Multipart framing around the file (boundaries, part headers) allowed on top of the file's own limit.
MULTIPART_SLACK = 64 * 1024
#: Media types accepted as a raw CSV body (besides a multipart upload).
CSV_MEDIA_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel")
PAGE_ARGS = ("limit", "cursor", "sort")
STREAM_CHUNK = 64 * 1024


class ImportArgsSchema(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Validate every row exactly as a real import would, then write nothing."})


class RowErrorSchema(Schema):
    row = fields.Integer(metadata={"description": "The row's number in the file as a spreadsheet shows it: the header is row 1."})
    errors = fields.Dict(keys=fields.String(), metadata={"description": "Messages by column (custom fields as `custom.<key>`; `_row` for the row as a whole)."})


class RowWarningSchema(Schema):
    row = fields.Integer(metadata={"description": "The row's number in the file (the header is row 1)."})
    warnings = fields.Dict(keys=fields.String(), metadata={"description": "What was changed to import the row, by column (an owner who is no user of this tenant is dropped)."})


class ImportResultSchema(Schema):
    created = fields.Integer(metadata={"description": "Rows written (with dry_run: rows that would have been)."})
    failed = fields.Integer(metadata={"description": "Rows refused; each left nothing behind."})
    errors = fields.List(fields.Nested(RowErrorSchema), metadata={"description": f"The failed rows (the first {csvio.MAX_REPORTED_ERRORS})."})
    warnings = fields.List(fields.Nested(RowWarningSchema), metadata={"description": f"Rows imported with a change (the first {csvio.MAX_REPORTED_ERRORS})."})
    dry_run = fields.Boolean()


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "text/csv": {"schema": {"type": "string"}},
    },
}


def _export_args_schema(spec: csvio.EntityCsv) -> Schema | None:
    """The list endpoint's filters (``<Entity>QueryArgsSchema`` without paging/sorting)."""
    cls = getattr(csvio.api_module(spec), spec.schema.removesuffix("Schema") + "QueryArgsSchema", None)
    if cls is None:
        return None
    return cls(exclude=tuple(name for name in PAGE_ARGS if name in cls._declared_fields))


def _export_query(spec: csvio.EntityCsv, args: dict[str, Any]) -> Any:
    filtered = getattr(csvio.api_module(spec), "filtered", None)
    if filtered is not None:
        return filtered(args)
    return common.visible(spec.model.select(), spec.model)


def _streamed(tenant: Any, lines: Any) -> Any:
    """The lines in chunks of about STREAM_CHUNK characters (not one write per line),
    with the tenant current and a connection open while they are produced: the server
    iterates after the view has returned."""
    with db.tenant_context(tenant), db.connection():
        chunk: list[str] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= STREAM_CHUNK:
                yield "".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield "".join(chunk)


def csv_download(plural: str, tenant: Any, lines: Any) -> Response:
    """Stream ``lines`` as a CSV download. The header and the first row are read before
    the response starts, so a query the database refuses is answered as an error (JSON,
    with its status) rather than cutting a download short after a 200."""
    filename = f"{plural}-{tenant.slug}-{utcnow():%Y%m%d-%H%M%S}.csv"
    lines = iter(lines)
    first = list(itertools.islice(lines, 2))
    return Response(
        stream_with_context(_streamed(tenant, itertools.chain(first, lines))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def read_upload() -> bytes:
    """The uploaded CSV's bytes: a multipart field ``file`` or a text/csv body.
    413 above csvio.MAX_IMPORT_BYTES, 415 for another media type, 422 without a file."""
    limit = csvio.MAX_IMPORT_BYTES
    too_big = f"the file is larger than {limit // (1024 * 1024)} MB; split it into several files"
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        abort(413, message=too_big)
    request.max_content_length = limit + MULTIPART_SLACK  # bodies sent without Content-Length
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            abort(422, message="no file", errors={"file": ["Send the CSV as the multipart form field `file`."]})
        data = upload.stream.read(limit + 1)
    elif request.mimetype in CSV_MEDIA_TYPES:
        data = request.get_data(cache=False)
    else:
        abort(415, message=f"send the CSV as multipart/form-data (field `file`) or as a text/csv body, not {request.mimetype or 'no content type'}")
    if len(data) > limit:
        abort(413, message=too_big)
    return data


def _add_routes(plural: str, spec: csvio.EntityCsv) -> None:
    args_schema = _export_args_schema(spec)

    def export(args: dict[str, Any] | None = None) -> Response:
        return csv_download(plural, g.tenant, csvio.export_lines(plural, _export_query(spec, args or {})))

    export.__doc__ = f"""Export {plural} as CSV

    Streams every {spec.name} that matches the filters (those of the list endpoint,
    without paging): a header row of the fields, tags joined with `;`, custom fields
    as `custom.<key>` columns. The file can be imported as it is (read-only columns
    such as `id` are ignored by the import).
    """
    export.__name__ = f"export_{plural}"
    view = require("records:export")(export)
    if args_schema is not None:
        view = blp.arguments(args_schema, location="query")(view)
    view = blp.response(200, content_type="text/csv", description=f"The {plural}, as CSV (streamed).")(view)
    view = blp.doc(security=[{"bearerAuth": []}])(view)
    blp.route(f"/{plural}/export.csv", endpoint=f"export_{plural}", methods=["GET"], tags=[plural])(view)

    def import_(args: dict[str, Any]) -> dict[str, Any]:
        text = read_upload()
        try:
            result = csvio.import_csv(plural, io.StringIO(csvio.decode(text), newline=""), dry_run=args["dry_run"])
        except csvio.CsvError as exc:
            abort(422, message=str(exc), errors=exc.errors)
        return result.as_dict()

    import_.__doc__ = f"""Import {plural} from CSV

    Send the file as the multipart field `file`, or as a `text/csv` body (UTF-8, at most
    {csvio.MAX_IMPORT_BYTES // (1024 * 1024)} MB). The header row names the columns, as in
    the export: unknown columns are refused (422) before any row is written. Each row is
    checked like a JSON body of the create endpoint and written on its own: a row that
    fails leaves nothing behind and is reported with its row number, the others are
    imported. {"Leads get the source `import` unless the file gives one. " if "source" in spec.defaults else ""}
    With `dry_run=true` nothing is written.
    """
    import_.__name__ = f"import_{plural}"
    view = require("records:import")(import_)
    view = blp.arguments(ImportArgsSchema, location="query")(view)
    view = blp.response(200, ImportResultSchema)(view)
    view = blp.alt_response(413, description="The file is too large.")(view)
    view = blp.alt_response(415, description="Neither a multipart upload nor a CSV body.")(view)
    view = blp.doc(security=[{"bearerAuth": []}], requestBody=UPLOAD_BODY)(view)
    blp.route(f"/{plural}/import", endpoint=f"import_{plural}", methods=["POST"], tags=[plural])(view)


for _plural, _spec in csvio.available().items():
    _add_routes(_plural, _spec)
