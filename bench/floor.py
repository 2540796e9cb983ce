"""The floor: a bare Flask + peewee app serving the same two endpoints on the same tables.

No crmcore import, no plugins, no marshmallow, no flask-smorest, no tenant proxy, no
signals, no audit helper: what a careful developer would write by hand for

* ``GET /api/v1/leads?status=...&limit=...&cursor=...``: token lookup by hash (and the
  once-a-minute ``last_used_at`` touch the core does), the same filtered keyset query
  with ``limit + 1`` rows, the same tag lookup query, the same JSON (same fields, same
  formats, same cursor encoding);
* ``POST /api/v1/leads``: token lookup, light hand-written checks, insert the lead and
  an audit row in one transaction, the same JSON back with an ETag.

The models below mirror the crmcore tables column for column (so peewee writes the same
SQL text for the list: bench_api.py compares the statements of both stacks). The
connection is handled the way peewee's documentation recommends for Flask: connect in
``before_request``, close in ``teardown_request``, with the same database settings as the
core (SQLite pragmas; pooled PostgreSQL).

The floor skips what a hand-written endpoint can skip: e-mail/phone parsing (the
benchmark posts already-normalised values), custom-field definitions, the duplicate
e-mail pre-check (the unique index answers), signals. That is the point of a floor.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

import peewee
from flask import Flask, jsonify, request
from playhouse.pool import PooledPostgresqlDatabase

LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "converted")
LEAD_SOURCES = ("chat", "form", "manual", "referral", "email", "sms", "import", "api")
PRIORITIES = ("low", "medium", "high")
READ_ROLES = ("admin", "manager", "agent", "viewer")
WRITE_ROLES = ("admin", "manager", "agent")
TWO_PLACES = decimal.Decimal("0.01")

database = peewee.DatabaseProxy()


def make_database(url: str) -> peewee.Database:
    """The same settings crmcore.db.make_database uses (written out, not imported)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return peewee.SqliteDatabase(unquote(parsed.path[1:]), pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": "normal"})
    params = dict(parse_qsl(parsed.query))
    kwargs = {"host": parsed.hostname or "127.0.0.1", "port": parsed.port or 5432, "user": unquote(parsed.username) if parsed.username else None}
    if params.get("search_path"):
        kwargs["options"] = f"-c search_path={params['search_path']}"
    return PooledPostgresqlDatabase(parsed.path.lstrip("/"), max_connections=32, stale_timeout=300, timeout=10, **{k: v for k, v in kwargs.items() if v is not None})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class ApiToken(Base):
    tenant = peewee.IntegerField(column_name="tenant_id")
    name = peewee.CharField()
    prefix = peewee.CharField()
    token_hash = peewee.CharField()
    role = peewee.CharField()
    user = peewee.IntegerField(column_name="user_id", null=True)
    created_at = peewee.DateTimeField()
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_api_tokens"


class Lead(Base):
    # Same columns in the same order as crmcore's Lead (so the SELECT is the same text).
    tenant = peewee.IntegerField(column_name="tenant_id")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=1)
    custom = peewee.TextField(default="{}")
    name = peewee.CharField()
    email = peewee.CharField(null=True)
    phone = peewee.CharField(null=True)
    company_name = peewee.CharField(null=True)
    source = peewee.CharField(default="manual")
    status = peewee.CharField(default="new")
    priority = peewee.CharField(default="medium")
    owner = peewee.IntegerField(column_name="owner_id", null=True)
    estimated_value = peewee.DecimalField(max_digits=16, decimal_places=2, null=True)
    last_contact_at = peewee.DateTimeField(null=True)
    budget = peewee.CharField(null=True)
    authority = peewee.CharField(null=True)
    need = peewee.TextField(null=True)
    timeline = peewee.CharField(null=True)
    converted_at = peewee.DateTimeField(null=True)
    contact = peewee.IntegerField(column_name="contact_id", null=True)
    company = peewee.IntegerField(column_name="company_id", null=True)

    class Meta:
        table_name = "crm_lead"


class Tag(Base):
    tenant = peewee.IntegerField(column_name="tenant_id")
    name = peewee.CharField()

    class Meta:
        table_name = "crm_tag"


class Tagging(Base):
    tenant = peewee.IntegerField(column_name="tenant_id")
    tag = peewee.ForeignKeyField(Tag, column_name="tag_id")
    entity = peewee.CharField()
    entity_id = peewee.IntegerField()

    class Meta:
        table_name = "crm_tagging"


class CustomField(Base):
    tenant = peewee.IntegerField(column_name="tenant_id")
    entity = peewee.CharField()
    key = peewee.CharField()
    label = peewee.CharField()
    kind = peewee.CharField()
    choices = peewee.TextField()
    required = peewee.BooleanField()
    created_at = peewee.DateTimeField()
    version = peewee.IntegerField()

    class Meta:
        table_name = "crm_custom_field"


class AuditEntry(Base):
    tenant = peewee.IntegerField(column_name="tenant_id")
    entity = peewee.CharField()
    entity_id = peewee.IntegerField()
    action = peewee.CharField()
    actor_user = peewee.IntegerField(column_name="actor_user_id", null=True)
    actor_token = peewee.IntegerField(column_name="actor_token_id", null=True)
    changes = peewee.TextField(default="{}")
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crm_audit"


# --------------------------------------------------------------------------- helpers


def error(code: int, message: str, **extra):
    return jsonify({"code": code, "message": message, **extra}), code


def authenticate(roles: tuple[str, ...]):
    """(token row, None) or (None, error response)."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None, error(401, "authentication required")
    secret = header[7:].strip()
    if not secret.startswith("crm_"):
        return None, error(401, "invalid or revoked API token")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    token = ApiToken.select().where(ApiToken.token_hash == digest).first()
    if token is None or token.revoked_at is not None:
        return None, error(401, "invalid or revoked API token")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
    if token.role not in roles:
        return None, error(403, f"your role ({token.role}) lacks the permission")
    return token, None


def iso(value):
    # as the API writes it: stored naive UTC, written with its offset (RFC 3339)
    return None if value is None else value.replace(tzinfo=dt.timezone.utc).isoformat()


def lead_json(row: dict, tags: list[str]) -> dict:
    value = row["estimated_value"]
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "company_name": row["company_name"],
        "source": row["source"],
        "status": row["status"],
        "priority": row["priority"],
        "owner_id": row["owner"],
        "estimated_value": None if value is None else format(decimal.Decimal(value).quantize(TWO_PLACES), "f"),
        "last_contact_at": iso(row["last_contact_at"]),
        "budget": row["budget"],
        "authority": row["authority"],
        "need": row["need"],
        "timeline": row["timeline"],
        "tags": tags,
        "custom": json.loads(row["custom"]) if isinstance(row["custom"], str) else row["custom"],
        "contact_id": row["contact"],
        "company_id": row["company"],
        "converted_at": iso(row["converted_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "version": row["version"],
    }


def encode_cursor(created_at: dt.datetime, lead_id: int) -> str:
    raw = json.dumps([{"$dt": created_at.isoformat()}, lead_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str):
    try:
        value, lead_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return dt.datetime.fromisoformat(value["$dt"]), int(lead_id)
    except (ValueError, TypeError, KeyError):
        return None


def tags_for(tenant_id: int, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = (
        Tagging.select(Tagging.entity_id, Tag.name)
        .where(Tagging.tenant == tenant_id)
        .join(Tag, on=(Tagging.tag == Tag.id))
        .where((Tagging.entity == "lead") & (Tagging.entity_id.in_(ids)))
        .order_by(Tag.name)
        .tuples()
    )
    for entity_id, name in rows:
        out[entity_id].append(name)
    return out


# --------------------------------------------------------------------------- app


def create_floor_app(database_url: str) -> Flask:
    database.initialize(make_database(database_url))
    app = Flask("floor", root_path=str(Path(__file__).parent))

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if not database.is_closed():
            database.close()

    @app.get("/api/v1/leads")
    def list_leads():
        token, failed = authenticate(READ_ROLES)
        if failed:
            return failed
        statuses = request.args.getlist("status")
        if any(s not in LEAD_STATUSES for s in statuses):
            return error(422, "invalid status")
        try:
            limit = int(request.args.get("limit", 50))
        except ValueError:
            return error(422, "invalid limit")
        if not 1 <= limit <= 500:
            return error(422, "invalid limit")
        query = Lead.select().where(Lead.tenant == token.tenant)
        if statuses:
            query = query.where(Lead.status.in_(statuses))
        cursor = request.args.get("cursor")
        if cursor:
            decoded = decode_cursor(cursor)
            if decoded is None:
                return error(422, "invalid cursor")
            last_value, last_id = decoded
            # The redundant first bound lets the database seek in the (tenant, created_at, id) index.
            query = query.where((Lead.created_at <= last_value) & ((Lead.created_at < last_value) | ((Lead.created_at == last_value) & (Lead.id < last_id))))
        rows = list(query.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit + 1).dicts())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
        tags = tags_for(token.tenant, [r["id"] for r in rows])
        return jsonify({"items": [lead_json(r, tags[r["id"]]) for r in rows], "next_cursor": next_cursor})

    def lead_data(body: dict) -> dict | None:
        """Light hand-written checks of the posted JSON; None when it is not acceptable."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not 1 <= len(body["name"]) <= 200:
            return None
        data = {
            "name": body["name"],
            "email": body.get("email") or None,
            "phone": body.get("phone") or None,
            "company_name": body.get("company_name"),
            "source": body.get("source", "manual"),
            "status": body.get("status", "new"),
            "priority": body.get("priority", "medium"),
            "estimated_value": decimal.Decimal(body["estimated_value"]) if body.get("estimated_value") is not None else None,
            "need": body.get("need"),
        }
        if data["status"] not in LEAD_STATUSES or data["priority"] not in PRIORITIES or data["source"] not in LEAD_SOURCES:
            return None
        return data

    def created(row: dict, tags: list[str]):
        full = {**{f: None for f in ("owner", "last_contact_at", "budget", "authority", "timeline", "converted_at", "contact", "company")}, **row}
        response = jsonify(lead_json(full, tags))
        response.status_code = 201
        response.headers["ETag"] = f'"{row["id"]}-1"'
        return response

    def audit_changes(data: dict) -> str:
        return json.dumps({k: [None, str(v) if isinstance(v, decimal.Decimal) else v] for k, v in data.items()}, sort_keys=True)

    @app.post("/api/v1/leads")
    def create_lead():
        """The minimal create: token, insert the lead and an audit row, JSON."""
        token, failed = authenticate(WRITE_ROLES)
        if failed:
            return failed
        data = lead_data(request.get_json(silent=True))
        if data is None:
            return error(422, "invalid lead")
        now = utcnow()
        row = {"tenant": token.tenant, "created_at": now, "updated_at": now, "version": 1, "custom": "{}", **data}
        try:
            with database.atomic():
                row["id"] = Lead.insert(row).execute()
                AuditEntry.insert(tenant=token.tenant, entity="lead", entity_id=row["id"], action="create", actor_token=token.id, changes=audit_changes(data), at=now).execute()
        except peewee.IntegrityError:
            return error(409, "a lead with this email exists")
        return created(row, [])

    @app.post("/api/v1/leads-same-sql")
    def create_lead_same_sql():
        """The same statements as the full stack's create, written by hand: custom-field
        definitions, duplicate e-mail check, the insert in a savepoint, the audit row, and
        the new lead's tags read back after the commit."""
        token, failed = authenticate(WRITE_ROLES)
        if failed:
            return failed
        data = lead_data(request.get_json(silent=True))
        if data is None:
            return error(422, "invalid lead")
        definitions = list(CustomField.select().where((CustomField.tenant == token.tenant) & (CustomField.entity == "lead")).dicts())
        if any(d["required"] for d in definitions):
            return error(422, "custom fields required")
        now = utcnow()
        row = {"tenant": token.tenant, "created_at": now, "updated_at": now, "version": 1, "custom": "{}", **data, "owner": None}
        with database.atomic():
            if data["email"]:
                existing = Lead.select().where((Lead.tenant == token.tenant) & (Lead.email == data["email"])).first()
                if existing is not None:
                    return error(409, "a lead with this email exists", existing={"id": existing.id})
            try:
                with database.atomic():
                    row["id"] = Lead.insert(row).execute()
            except peewee.IntegrityError:
                return error(409, "this lead conflicts with an existing one")
            AuditEntry.insert(tenant=token.tenant, entity="lead", entity_id=row["id"], action="create", actor_user=None, actor_token=token.id, changes=audit_changes({**data, "custom": {}, "owner": None}), at=now).execute()
        return created(row, tags_for(token.tenant, [row["id"]])[row["id"]])

    return app
