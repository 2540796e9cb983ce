"""CSV import and export of leads, contacts, companies and deals.

One code path for the API (``/api/v1/<entity>/import``, ``.../export.csv``) and the CLI
(``crm import``, ``crm export``):

* :func:`export_lines` yields the CSV a line at a time, reading the table in keyset
  batches of :data:`EXPORT_BATCH` rows, so an export of any size runs in constant memory.
* :func:`import_csv` reads the header, refuses unknown columns before anything is
  written, then validates and writes row by row, each row in its own savepoint: a row
  that fails (at validation or half-way through its writes) leaves nothing behind and
  is reported with its row number, and the other rows go on.

The columns are the fields of the entity's API schema (``LeadSchema`` ...), so a CSV
row is checked exactly like a JSON body: the schema, then the domain's rules for the
entity (:mod:`crmcore.entities.checks`: owner, custom fields, ...) with the importer's
:class:`~crmcore.entities.context.Context`, then ``service.create`` (duplicates, tags,
audit, signals). List fields (tags, further emails) are one cell joined with
``;``; custom fields are ``custom.<key>`` columns. Read-only columns (id, created_at,
version ...) are written by the export and ignored by the import, so an export can be
imported into another tenant as it is.

The API schemas (and the resources' ``dump``) are imported lazily by name: the entities
layer must not import the API at module level, and an entity whose API module does not
exist is simply not offered. Nothing else of the API is used: no request, no ``flask.g``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import importlib
import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

import peewee
from marshmallow import Schema, ValidationError, fields

from crmcore import db
from crmcore.entities import checks, csvcells, service
from crmcore.entities.context import Context, acting, resolve
from crmcore.entities.errors import Invalid
from crmcore.entities.models import Company, Contact, CustomField, Deal, Lead

#: Rows read per query by the export (keyset pagination on id).
EXPORT_BATCH = 1000
#: Rows written per transaction by the import: long enough to be fast, short enough
#: not to hold SQLite's write lock (and the after-commit signals) for a whole file.
IMPORT_BATCH = 500
#: The largest file the API accepts (413 above it).
MAX_IMPORT_BYTES = 20 * 1024 * 1024
#: Row errors kept in a result; ``failed`` still counts them all.
MAX_REPORTED_ERRORS = 1000
LIST_SEPARATOR = ";"
CUSTOM_PREFIX = "custom."


@dataclass(frozen=True)
class EntityCsv:
    """How one entity maps to CSV: its model, its API module and schema, and the
    values an imported row gets when its CSV leaves them out."""

    plural: str
    name: str
    model: type
    module: str
    schema: str
    defaults: dict[str, Any] = field(default_factory=dict)
    #: The domain's rules that check (and complete) a loaded row, in order, as the
    #: create endpoint applies them: ``rule(data, None, ctx)``; each may raise
    #: Invalid (a ValidationError) or Conflict.
    checks: tuple[Callable[..., None], ...] = ()


ENTITIES: dict[str, EntityCsv] = {
    "leads": EntityCsv("leads", "lead", Lead, "crmcore.api.leads", "LeadSchema", {"source": "import"}, checks=(checks.lead_input,)),
    "contacts": EntityCsv("contacts", "contact", Contact, "crmcore.api.contacts", "ContactSchema", checks=(checks.contact_input, checks.contact_duplicate_emails)),
    "companies": EntityCsv("companies", "company", Company, "crmcore.api.companies", "CompanySchema", checks=(checks.company_input,)),
    "deals": EntityCsv("deals", "deal", Deal, "crmcore.api.deals", "DealSchema", checks=(checks.deal_input,)),
}


class CsvError(Exception):
    """The file as a whole cannot be imported (nothing was written); ``errors`` maps
    a key ("file", "columns") to messages, for a 422 body or a CLI message."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.errors = errors or {"file": [message]}


class UnknownEntity(CsvError):
    pass


def api_module(spec: EntityCsv) -> ModuleType | None:
    """The entity's API module, or None while it does not exist (yet)."""
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name != spec.module:
            raise  # the module exists but is broken: say so, do not hide it
        return None


def available() -> dict[str, EntityCsv]:
    """The entities whose API module and schema exist, by plural name."""
    return {plural: spec for plural, spec in ENTITIES.items() if (m := api_module(spec)) is not None and hasattr(m, spec.schema)}


def entity_spec(entity: str) -> EntityCsv:
    spec = available().get(entity)
    if spec is None:
        raise UnknownEntity(f"cannot import or export {entity!r}: choose one of {', '.join(available())}")
    return spec


def schema_class(spec: EntityCsv) -> type[Schema]:
    return getattr(api_module(spec), spec.schema)


def custom_keys(spec: EntityCsv) -> list[str]:
    """The current tenant's custom field keys for the entity, sorted."""
    return [k for (k,) in CustomField.select(CustomField.key).where(CustomField.entity == spec.name).order_by(CustomField.key).tuples()]


def columns(spec: EntityCsv) -> list[str]:
    """The CSV header: the schema's fields in declaration order (custom -> custom.<key>)."""
    names = [name for name, f in schema_class(spec)().fields.items() if name != "custom" and not f.load_only]
    return names + [CUSTOM_PREFIX + key for key in custom_keys(spec)]


# --------------------------------------------------------------------------- export


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join(_cell(v) for v in value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def export_lines(entity: str, query: peewee.ModelSelect | None = None, batch: int = EXPORT_BATCH) -> Iterator[str]:
    """The CSV of ``query`` (default: every record of the current tenant), one line at
    a time, reading ``batch`` rows per query in id order (keyset, never OFFSET)."""
    spec = entity_spec(entity)
    model = spec.model
    schema = schema_class(spec)()
    header = columns(spec)
    keys = [c[len(CUSTOM_PREFIX):] for c in header if c.startswith(CUSTOM_PREFIX)]
    plain = [c for c in header if not c.startswith(CUSTOM_PREFIX)]
    query = query if query is not None else model.select()
    # The resource's dump() completes records as its API shows them (tags, a deal's
    # status ...) in a constant number of queries per batch.
    dump = getattr(api_module(spec), "dump", None)
    yield _csv_line(header)
    last_id = 0
    while True:
        records = list(query.where(model.id > last_id).order_by(model.id).limit(batch))
        if not records:
            return
        if dump is not None:
            dump(records)
        elif "tags" in plain:
            tags = service.tag_names(spec.name, [r.id for r in records])
            for record in records:
                record.tags = tags.get(record.id, [])
        for record in records:
            dumped = schema.dump(record)
            custom = record.custom or {}
            yield _csv_line([csvcells.neutralise(_cell(dumped.get(c))) for c in plain] + [csvcells.neutralise(_cell(custom.get(k))) for k in keys])
        last_id = records[-1].id
        if len(records) < batch:
            return


# --------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """What an import did: rows created, rows refused, and why (by row number)."""

    dry_run: bool = False
    created: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Rows imported with a change, and why: {"row": n, "warnings": {column: [...]}}.
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, row: int, errors: dict[str, Any]) -> None:
        self.failed += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"row": row, "errors": errors})

    def add_warning(self, row: int, warnings: dict[str, Any]) -> None:
        if warnings and len(self.warnings) < MAX_REPORTED_ERRORS:
            self.warnings.append({"row": row, "warnings": warnings})

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "failed": self.failed, "errors": self.errors, "warnings": self.warnings, "dry_run": self.dry_run}


@dataclass
class _Plan:
    """What each CSV column becomes: a schema field, a custom field, or nothing."""

    spec: EntityCsv
    schema: Schema
    targets: list[tuple[str, str] | None]  # per column: ("field", name) / ("custom", key) / None
    list_fields: set[str]


def decode(data: bytes) -> str:
    """The text of an uploaded file; CsvError unless it is UTF-8 (a BOM is allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); save it as \"CSV UTF-8\" and try again") from exc


def plan(spec: EntityCsv, header: list[str]) -> _Plan:
    """Map header cells to fields; CsvError listing every unknown, duplicate or missing
    required column (so a wrong file is refused before any row is written)."""
    schema = schema_class(spec)()
    by_lower = {name.lower(): name for name, f in schema.fields.items() if name != "custom" and not f.load_only}
    keys = {k.lower(): k for k in custom_keys(spec)}
    has_custom = "custom" in schema.fields
    targets: list[tuple[str, str] | None] = []
    unknown, seen, duplicate = [], set(), []
    for raw in header:
        name = raw.strip()
        low = name.lower()
        if low in seen:
            duplicate.append(name)
        seen.add(low)
        if low in by_lower:
            f = schema.fields[by_lower[low]]
            targets.append(None if f.dump_only else ("field", by_lower[low]))
        elif has_custom and low.startswith(CUSTOM_PREFIX) and low[len(CUSTOM_PREFIX):] in keys:
            targets.append(("custom", keys[low[len(CUSTOM_PREFIX):]]))
        elif name == "":
            targets.append(None)  # a trailing empty column (spreadsheets add them)
        else:
            unknown.append(name)
    errors: dict[str, list[str]] = {}
    if unknown:
        errors["columns"] = [f"unknown column(s): {', '.join(unknown)}. Known columns: {', '.join(columns(spec))}"]
    if duplicate:
        errors.setdefault("columns", []).append(f"column(s) given twice: {', '.join(duplicate)}")
    present = {t[1] for t in targets if t and t[0] == "field"}
    missing = [n for n, f in schema.fields.items() if f.required and not f.dump_only and n not in present and n not in spec.defaults]
    if missing:
        errors.setdefault("columns", []).append(f"missing required column(s): {', '.join(missing)}")
    if errors:
        raise CsvError("; ".join(errors["columns"]), errors)
    list_fields = {n for n, f in schema.fields.items() if isinstance(f, fields.List)}
    return _Plan(spec, schema, targets, list_fields)


def _row_data(p: _Plan, cells: list[str]) -> dict[str, Any]:
    """A row as the JSON body the API would get: empty cells left out (so the schema's
    defaults apply), list cells split, custom cells gathered under ``custom``."""
    data: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for target, raw in zip(p.targets, cells):
        value = csvcells.restore(raw.strip())
        if target is None or value == "":
            continue
        kind, name = target
        if kind == "custom":
            custom[name] = value
        elif name in p.list_fields:
            data[name] = [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
        else:
            data[name] = value
    if custom:
        data["custom"] = custom
    for name, value in p.spec.defaults.items():
        data.setdefault(name, value)
    return data


def _flatten(errors: Any) -> dict[str, Any]:
    """Error messages keyed by CSV column: {"custom": {"size": [...]}} -> {"custom.size": [...]}."""
    if not isinstance(errors, dict):
        return {"_row": errors if isinstance(errors, list) else [str(errors)]}
    out: dict[str, Any] = {}
    for key, value in errors.items():
        if key == "custom" and isinstance(value, dict):
            for sub, messages in value.items():
                out[CUSTOM_PREFIX + str(sub)] = messages
        else:
            out[str(key)] = value
    return out


class _RowFailed(Exception):
    def __init__(self, errors: dict[str, Any]):
        super().__init__(errors)
        self.errors = errors


class _DryRun(Exception):
    """Raised to roll a dry run back: an exception, so after-commit callbacks are dropped."""


def _import_row(p: _Plan, ctx: Context, cells: list[str]) -> dict[str, list[str]]:
    """Validate and create one row (the caller holds the savepoint); _RowFailed if bad.
    Returns the row's warnings (an owner of another tenant dropped ...)."""
    if len(cells) > len(p.targets) and any(c.strip() for c in cells[len(p.targets):]):
        raise _RowFailed({"_row": [f"the row has {len(cells)} cells but the header has {len(p.targets)} columns"]})
    if any("\x00" in c for c in cells):  # PostgreSQL cannot store it; nobody means it
        raise _RowFailed({"_row": ["the row contains a NUL character"]})
    try:
        data = p.schema.load(_row_data(p, cells))
    except ValidationError as exc:
        raise _RowFailed(_flatten(exc.messages)) from exc
    warnings = csvcells.drop_unknown_users(data)
    try:
        for rule in p.spec.checks:  # the domain's rules, exactly as for a JSON body
            rule(data, None, ctx)
        service.create(p.spec.model, data)
        return warnings
    except Invalid as exc:
        raise _RowFailed(_flatten(exc.errors)) from exc
    except ValidationError as exc:
        raise _RowFailed(_flatten(exc.messages)) from exc
    except service.Conflict as exc:
        if exc.existing is not None:
            raise _RowFailed({exc.field or "_row": [f"duplicate of {p.spec.name} {exc.existing.id}"]}) from exc
        raise _RowFailed({exc.field or "_row": [str(exc)]}) from exc
    except peewee.DatabaseError as exc:  # a constraint or trigger of the database said no
        raise _RowFailed({"_row": [f"could not be stored: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"]}) from exc


def _records(reader: Iterable[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of the data rows; the header is row 1, as in a spreadsheet."""
    yield from enumerate(reader, start=2)


def count_rows(stream: TextIO) -> int:
    """Check that the whole file reads as CSV text and count its data rows (blank rows
    included), without keeping any of it; rewinds the stream. CsvError if it does not."""
    stream.seek(0)
    reader = csv.reader(stream, strict=True)
    try:
        total = sum(1 for _ in reader)
    except UnicodeDecodeError as exc:
        raise CsvError(f"the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} in row {reader.line_num + 1}); save it as \"CSV UTF-8\" and try again") from exc
    except csv.Error as exc:
        raise CsvError(f"the file is not valid CSV near row {reader.line_num}: {exc}") from exc
    stream.seek(0)
    return max(total - 1, 0)


def import_csv(entity: str, stream: TextIO, *, dry_run: bool = False, progress: Callable[[int], AbstractContextManager[Any]] | None = None, ctx: Context | None = None) -> ImportResult:
    """Import the CSV in ``stream`` (text, seekable) as ``entity`` records of the current tenant.

    The file is read through once first: a file that is not UTF-8 CSV, or whose header
    names unknown columns, raises CsvError and nothing is written. Then each row is
    validated and written in its own savepoint, IMPORT_BATCH rows per transaction; a
    failing row is rolled back completely and reported as {"row": n, "errors": {...}}
    (n: the row's number in the file, the header being row 1). With ``dry_run`` every
    row goes through the same steps inside one transaction that is then rolled back
    (duplicates within the file are found too), and no signal is sent.

    ``progress(total)`` may return a context manager whose value has ``update(n)``
    (``click.progressbar`` does); it is advanced once per row. The rows are checked and
    audited in ``ctx`` (default: the current context), with the current tenant.
    """
    spec = entity_spec(entity)
    tenant = db.current_tenant()
    ctx = resolve(ctx).but(tenant=tenant)
    if tenant is None:
        raise db.NoTenantError("import_csv needs a current tenant")
    total = count_rows(stream)
    reader = csv.reader(stream, strict=True)  # strict: a stray quote must not swallow the rows after it
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise CsvError("the file is empty: the first row must name the columns")
    result = ImportResult(dry_run=dry_run)
    with acting(ctx):
        p = plan(spec, header)
        bar_cm = progress(total) if progress is not None else contextlib.nullcontext(None)
        with bar_cm as bar:
            rows = _records(reader)
            if dry_run:
                try:
                    with db.atomic():
                        _import_rows(p, ctx, rows, result, bar)
                        raise _DryRun()
                except _DryRun:
                    pass
            else:
                while True:
                    with db.atomic():
                        done = _import_rows(p, ctx, rows, result, bar, limit=IMPORT_BATCH)
                    if done < IMPORT_BATCH:
                        break
    return result


def _import_rows(p: _Plan, ctx: Context, rows: Iterator[tuple[int, list[str]]], result: ImportResult, bar: Any, limit: int | None = None) -> int:
    """Import up to ``limit`` rows from ``rows`` (all when None); returns how many were read."""
    read = 0
    for number, cells in rows:
        read += 1
        if any(c.strip() for c in cells):
            try:
                with db.atomic():
                    warnings = _import_row(p, ctx, cells)
                result.created += 1
                result.add_warning(number, warnings)
            except _RowFailed as exc:
                result.add_error(number, exc.errors)
        if bar is not None:
            bar.update(1)
        if limit is not None and read >= limit:
            break
    return read
