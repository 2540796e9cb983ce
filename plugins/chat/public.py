"""The public side of the chat: what the widget on a customer's website talks to.

``/api/v1/chat/public/...`` (JSON) and ``/chat/widget.js`` + ``/chat/ws`` (the visitor's
WebSocket) are public blueprints: no CRM sign-in, but the tenant's widget key, and for
everything about a conversation the visitor's token (``X-Chat-Key`` / ``X-Chat-Token``
headers, or ``key`` / ``token`` query parameters where headers cannot be set). A token
opens exactly one conversation of one tenant, so a visitor can only read their own.

Cross-origin: the widget runs on another site, so these answers carry CORS headers for
the origins in the tenant's ``allowed_origins`` setting (and the CRM's own); a browser
request from any other origin is refused with 403. No cookies are involved
(``Access-Control-Allow-Credentials`` is never sent), so no CSRF exposure either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import peewee
from flask import Blueprint, Response, g, jsonify, request, send_from_directory
from flask_sock import ConnectionClosed, Sock
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.exceptions import NotFound

from crm_plugins.chat import service
from crm_plugins.chat.models import ChatAttachment, ChatConversation, ChatMessage
from crmcore import sdk
from crmcore.sdk import RealtimeUnavailable

log = logging.getLogger("crm_plugins.chat")

STATIC = Path(__file__).parent / "static"
LONG_POLL_MAX = 25.0
WS_IDLE_PING = 20.0
POLICY_VIOLATION = 1008  # bad key, token or origin: the widget gives up
TRY_AGAIN_LATER = 1013  # rate limited: the widget reconnects after its backoff

api = Blueprint("chat_public", __name__, url_prefix="/api/v1/chat/public")
api.crm_public = True
assets = Blueprint("chat_assets", __name__, url_prefix="/chat")
assets.crm_public = True
sock = Sock()


# --------------------------------------------------------------------------- helpers


def _fail(code: int, message: str, errors: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests"}
    body: dict[str, Any] = {"code": code, "status": names.get(code, ""), "message": message}
    if errors:
        body["errors"] = {"json": errors}
    response = jsonify(body)
    response.status_code = code
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def _origin_allowed() -> bool:
    """A browser's Origin must be the CRM itself or one of the tenant's allowed origins."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a cross-origin browser request (a server, a same-origin GET)
        return True
    parsed = urlsplit(origin)
    if parsed.scheme not in ("http", "https"):
        return False
    normal = f"{parsed.scheme}://{parsed.netloc}".lower()
    allowed = {o.rstrip("/").lower() for o in service.settings(g.tenant)["allowed_origins"]}
    return normal == _own_origin() or normal in allowed


def _ip() -> str:
    # The direct peer: behind a proxy, wrap the app in werkzeug's ProxyFix so this is
    # the client's address (a client-sent X-Forwarded-For would let anyone pick theirs).
    return request.remote_addr or "-"


def _limit_ip() -> None:
    service.hit(f"{g.tenant.id}:ip:{_ip()}", service.settings(g.tenant)["ip_requests_per_minute"], 60)


def _key() -> str | None:
    body = request.get_json(silent=True) if request.is_json else None
    return request.headers.get("X-Chat-Key") or request.args.get("key") or (body or {}).get("key")


def _token() -> str | None:
    body = request.get_json(silent=True) if request.is_json else None
    return request.headers.get("X-Chat-Token") or request.args.get("token") or (body or {}).get("token")


def _visitor() -> ChatConversation:
    """The visitor's conversation, or an error response raised as _Refused."""
    conversation = service.conversation_for_token(_token())
    if conversation is None:
        raise _Refused(_fail(401, "unknown or missing visitor token: start a session first"))
    return conversation


class _Refused(Exception):
    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@api.errorhandler(_Refused)
def _refused(exc: _Refused) -> Response:
    return exc.response


@api.errorhandler(service.RateLimited)
def _rate_limited(exc: service.RateLimited) -> Response:
    return _fail(429, "too many requests; slow down", headers={"Retry-After": str(exc.retry_after)})


@api.before_request
def _guard() -> Response | None:
    if g.tenant is None:  # the core answers 404 first; belt and braces
        raise NotFound()
    if not _origin_allowed():
        return _fail(403, "this website is not allowed to use the chat (allowed_origins)")
    if request.method == "OPTIONS":
        return Response(status=204)
    _limit_ip()
    if not service.key_valid(g.tenant, _key()):
        return _fail(401, "unknown or missing widget key (X-Chat-Key)")
    return None


@api.after_request
def _cors(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin and g.get("tenant") is not None and _origin_allowed():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Chat-Key, X-Chat-Token"
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _load(schema: Schema) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Refused(_fail(422, "send a JSON object", {"_schema": ["Invalid input type."]}))
    try:
        return schema.load({k: v for k, v in body.items() if k not in ("key", "token")})
    except ValidationError as exc:
        raise _Refused(_fail(422, "invalid input", exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})) from None


# --------------------------------------------------------------------------- schemas


class SessionIn(Schema):
    name = fields.String(load_default="", validate=validate.Length(max=200))
    email = fields.String(load_default="", validate=validate.Length(max=254))
    phone = fields.String(load_default="", validate=validate.Length(max=40))
    page_url = fields.String(load_default="", validate=validate.Length(max=500))


class MessageIn(Schema):
    content = fields.String(required=True)
    client_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


def _check_content(content: str) -> str:
    limit = service.settings(g.tenant)["max_message_length"]
    text = (content or "").strip()
    if not text:
        raise _Refused(_fail(422, "invalid input", {"content": ["Write a message."]}))
    if len(text) > limit:
        raise _Refused(_fail(422, "invalid input", {"content": [f"At most {limit} characters."]}))
    return text


def widget_config(tenant: Any) -> dict[str, Any]:
    conf = service.settings(tenant)
    online = service.is_open(tenant) and bool(service.agents_online(tenant))
    return {
        "title": conf["title"], "colour": conf["colour"], "position": conf["position"], "greeting": conf["greeting"],
        "avatar_url": conf["avatar_url"], "offline_message": conf["offline_message"], "custom_css": conf["custom_css"],
        "prechat": {"fields": list(conf["prechat_fields"]), "required": list(conf["prechat_required"])},
        "max_message_length": conf["max_message_length"], "online": online,
        "attachments": {"enabled": conf["attachments_enabled"], "max_mb": conf["attachment_max_mb"], "types": list(conf["attachment_types"])},
    }


def _session_payload(conversation: ChatConversation, token: str | None = None) -> dict[str, Any]:
    payload = {
        "conversation": {"id": conversation.id, "status": conversation.status, "visitor_name": conversation.visitor_name},
        "messages": [service.message_dict(m) for m in service.messages_after(conversation, 0, 500)],
    }
    if token:
        payload["token"] = token
    return payload


# --------------------------------------------------------------------------- endpoints


@api.route("/config", methods=["GET", "OPTIONS"])
def config() -> Any:
    """The widget's look and behaviour (and whether agents are online)."""
    return jsonify(widget_config(g.tenant))


@api.route("/session", methods=["POST", "OPTIONS"])
def session() -> Any:
    """Resume the visitor's conversation (a valid token) or start one (pre-chat form)."""
    existing = service.conversation_for_token(_token())
    if existing is not None:
        return jsonify(_session_payload(existing))
    data = _load(SessionIn())
    conf = service.settings(g.tenant)
    errors: dict[str, list[str]] = {}
    for name in conf["prechat_required"]:
        if not data[name].strip():
            errors[name] = ["Required."]
    email = phone = None
    if data["email"].strip():
        email = service.normalise_email(data["email"].strip())
        if email is None:
            errors["email"] = ["Not a valid email address."]
    if data["phone"].strip():
        _, phone = service.find_contact_details(data["phone"], conf["phone_region"])
        if phone is None:
            errors["phone"] = ["Not a valid phone number."]
    if errors:
        return _fail(422, "invalid input", errors)
    service.hit(f"{g.tenant.id}:session:{_ip()}", conf["sessions_per_ip_per_hour"], 3600)
    conversation, token = service.start_conversation(
        g.tenant, name=data["name"].strip(), email=email, phone=phone, page_url=data["page_url"], origin=request.headers.get("Origin", ""),
    )
    response = jsonify(_session_payload(conversation, token))
    response.status_code = 201
    return response


@api.route("/messages", methods=["POST", "OPTIONS"])
def send() -> Any:
    """Send a message; a resend with the same ``client_id`` returns the stored one (200)."""
    conversation = _visitor()
    data = _load(MessageIn())
    content = _check_content(data["content"])
    message, created = service.post_message(g.tenant, conversation, sender="visitor", content=content, client_id=data["client_id"])
    response = jsonify(service.message_dict(message))
    response.status_code = 201 if created else 200
    return response


@api.route("/messages", methods=["GET"])
def history() -> Any:
    """Messages after ``after`` (a message id); ``wait=<s>`` long-polls up to 25 s."""
    conversation = _visitor()
    try:
        after = int(request.args.get("after", "0") or 0)
        wait = min(float(request.args.get("wait", "0") or 0), LONG_POLL_MAX)
        if after < 0 or wait < 0:
            raise ValueError
    except ValueError:
        return _fail(422, "invalid input", {"after": ["A message id (integer)."]})
    messages = service.messages_after(conversation, after)
    if not messages and wait > 0:
        messages = _wait_for_messages(conversation, after, wait)
    status = ChatConversation.select(ChatConversation.status).where(ChatConversation.id == conversation.id).scalar()
    return jsonify({"messages": [service.message_dict(m) for m in messages], "status": status})


def _wait_for_messages(conversation: ChatConversation, after: int, wait: float) -> list[Any]:
    """Long poll: wake on the conversation's live topic, then read the database (the
    source of truth, so an event lost by the hub costs latency, not a message)."""

    deadline = time.monotonic() + wait
    sdk.database.close()  # do not hold a pooled connection while waiting
    try:
        sub = sdk.live_subscribe(g.tenant, [service.conversation_topic(conversation.id)], last_id=sdk.live_since_id())
    except (RealtimeUnavailable, RuntimeError):
        sub = None
    try:
        while True:
            with sdk.connection():
                messages = service.messages_after(conversation, after)
            if messages or time.monotonic() >= deadline:
                return messages
            remaining = deadline - time.monotonic()
            if sub is not None:
                sub.get(timeout=min(remaining, 5.0))
            else:
                time.sleep(min(remaining, 1.0))
    finally:
        if sub is not None:
            sub.close()
        sdk.database.connect(reuse_if_open=True)


@api.route("/attachments", methods=["POST", "OPTIONS"])
def upload() -> Any:
    """Send a file (multipart ``file``, optional ``client_id``): checked by size and by its
    first bytes against the tenant's ``attachment_types``; stored under a random name."""
    conversation = _visitor()
    conf = service.settings(g.tenant)
    if not conf["attachments_enabled"]:
        return _fail(403, "attachments are switched off for this chat")
    limit = int(conf["attachment_max_mb"] * 1024 * 1024)
    request.max_content_length = limit + 64 * 1024  # werkzeug answers 413 past this, before reading it all
    upload = request.files.get("file")
    client_id = request.form.get("client_id") or None
    errors: dict[str, list[str]] = {}
    if client_id is not None and len(client_id) > 64:
        errors["client_id"] = ["At most 64 characters."]
    data = b""
    if upload is None:
        errors["file"] = ["Choose a file."]
    else:
        data = upload.stream.read(limit + 1)
        if not data:
            errors["file"] = ["The file is empty."]
        elif len(data) > limit:
            errors["file"] = [f"At most {conf['attachment_max_mb']:g} MB."]
        elif service.sniff_type(data[:512]) not in conf["attachment_types"]:
            errors["file"] = ["This kind of file cannot be sent here."]
    if errors:
        return _fail(422, "invalid input", errors)
    if client_id:
        existing = ChatMessage.get_or_none((ChatMessage.conversation == conversation.id) & (ChatMessage.client_id == client_id))
        if existing is not None:
            return jsonify(service.message_dict(existing))
    service.check_visitor_rate(g.tenant, conversation)
    stored = service.store_attachment(g.tenant, data, upload.filename or "file")
    message, created = service.post_message(g.tenant, conversation, sender="visitor", content=stored["name"], client_id=client_id, attachment=stored)
    if not created:  # a resend raced us: keep theirs, drop our copy
        (service.attachment_dir(g.tenant) / stored["storage_key"]).unlink(missing_ok=True)
    response = jsonify(service.message_dict(message))
    response.status_code = 201 if created else 200
    return response


@api.route("/attachments/<int:attachment_id>", methods=["GET"])
def download(attachment_id: int) -> Any:
    """A file of the visitor's own conversation (``?key=&token=``: links cannot send headers)."""
    conversation = _visitor()
    attachment = (
        ChatAttachment.select().join(ChatMessage, on=(ChatAttachment.message == ChatMessage.id))
        .where((ChatAttachment.id == attachment_id) & (ChatMessage.conversation == conversation.id)).first()
    )
    if attachment is None:
        raise NotFound()
    return send_attachment(g.tenant, attachment)


def send_attachment(tenant: Any, attachment: ChatAttachment) -> Response:
    """The stored file, with headers that keep a hostile file harmless: its sniffed type,
    nosniff, a sandboxing CSP, and a download for anything but images."""
    from flask import send_file

    path = service.attachment_path(tenant, attachment)
    if not path.is_file():
        raise NotFound()
    inline = attachment.content_type.startswith("image/")
    response = send_file(path, mimetype=attachment.content_type, as_attachment=not inline, download_name=attachment.name, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@api.route("/typing", methods=["POST", "OPTIONS"])
def typing() -> Any:
    conversation = _visitor()
    service.publish_ephemeral(g.tenant, conversation.id, {"kind": "typing", "sender": "visitor", "at": time.time()})
    return Response(status=204)


@api.route("/read", methods=["POST", "OPTIONS"])
def read() -> Any:
    conversation = _visitor()
    body = request.get_json(silent=True) or {}
    up_to = body.get("up_to")
    if up_to is not None and (not isinstance(up_to, int) or isinstance(up_to, bool)):
        return _fail(422, "invalid input", {"up_to": ["A message id (integer)."]})
    return jsonify({"marked": service.mark_read(g.tenant, conversation, "visitor", up_to)})


# --------------------------------------------------------------------------- assets + WebSocket


@assets.route("/widget.js")
def widget_js() -> Any:
    response = send_from_directory(STATIC, "widget.js", mimetype="application/javascript", max_age=300)
    response.headers["Access-Control-Allow-Origin"] = "*"  # a script, with no secrets in it
    return response


@assets.route("/openapi.json")
def widget_openapi() -> Any:
    """The widget API's OpenAPI document (for anyone building their own widget)."""
    from crm_plugins.chat.widget_openapi import widget_api_document

    response = jsonify(widget_api_document())
    response.headers["Access-Control-Allow-Origin"] = "*"  # a description, with no secrets in it
    return response


def _ws_rate_ok() -> bool:
    """The per-IP limit applies to socket handshakes too (a reconnect loop is requests)."""
    try:
        _limit_ip()
    except service.RateLimited:
        return False
    return True


@sock.route("/ws", bp=assets)
def visitor_ws(ws: Any) -> None:
    """The visitor's socket: ``/chat/ws?key=&token=&after=<message id>``.

    Sends ``{"type": "message", "message": {...}}`` for every message after ``after``
    (from the database first, then live, never twice), ``typing`` / ``read`` /
    ``status`` events; takes ``{"type": "message", "content", "client_id"}``,
    ``{"type": "typing"}`` and ``{"type": "read", "up_to"}``. Each sent message is
    acknowledged with ``{"type": "ack", "client_id", "message"}`` (or an ``error`` with
    ``code`` 422 / 429 and ``retry_after``)."""

    problem = None
    code = POLICY_VIOLATION  # do not retry as is
    conversation = None
    try:
        if not _origin_allowed():
            problem = "origin not allowed"
        elif not _ws_rate_ok():
            problem = "too many requests; retry later"
            code = TRY_AGAIN_LATER
        elif not service.key_valid(g.tenant, request.args.get("key")):
            problem = "unknown widget key"
        else:
            conversation = service.conversation_for_token(request.args.get("token"))
            if conversation is None:
                problem = "unknown visitor token"
        after = int(request.args.get("after", "0") or 0)
    except ValueError:
        problem = "bad after"
    finally:
        if not sdk.database.is_closed():
            sdk.database.close()
    if problem is not None:
        ws.close(reason=code, message=problem)
        return
    tenant = g.tenant
    try:
        sub = sdk.live_subscribe(tenant, [service.conversation_topic(conversation.id)], last_id=sdk.live_since_id())
    except RealtimeUnavailable:
        ws.close(reason=1011, message="realtime service unavailable; retry shortly")
        return
    except RuntimeError:
        ws.close(reason=1012, message="server restarting; reconnect shortly")
        return
    with sub:
        try:
            _serve_visitor(ws, sub, tenant, conversation, after)
        except (ConnectionClosed, OSError):  # the visitor left (an OSError: mid-send)
            return
        except Exception:
            log.exception("chat visitor WebSocket failed")
            ws.close(reason=1011, message="internal error")


class _Socket:
    """The visitor's socket shared by the forwarding loop and the reader thread: sends
    are serialised (two threads writing frames at once would interleave their bytes)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self.ws.connected

    def send(self, data: str) -> None:
        with self.lock:
            self.ws.send(data)

    def receive(self, timeout: float | None = None) -> Any:
        return self.ws.receive(timeout=timeout)

    def close(self, reason: int, message: str) -> None:
        with self.lock:
            self.ws.close(reason=reason, message=message)


SWITCHED_OFF = "the chat is switched off"


def _serve_visitor(raw_ws: Any, sub: Any, tenant: Any, conversation: ChatConversation, after: int) -> None:
    """Backlog, then two loops: this thread forwards hub events as they come (blocking
    on the subscription), a reader thread handles what the visitor sends (blocking on
    the socket) -- neither waits on a poll interval."""
    from flask import current_app

    ws = _Socket(raw_ws)
    last_sent = after
    with sdk.connection():
        backlog = service.messages_after(conversation, after, 1000)
    for message in backlog:
        ws.send(json.dumps({"type": "message", "message": service.message_dict(message)}))
        last_sent = message.id
    ws.send(json.dumps({"type": "ready", "last_message_id": last_sent}))
    stop = threading.Event()
    app = current_app._get_current_object()

    def read() -> None:
        # SQLite: one connection for the socket's life (opening one per frame cost more
        # than the frame); PostgreSQL: from the pool per frame, so idle sockets hold none.
        keep = contextlib.nullcontext() if sdk.is_postgres() else sdk.connection()
        try:
            with app.app_context(), sdk.tenant_context(tenant), keep:
                while ws.connected and not stop.is_set():
                    # Blocks until a frame or the close: an idle socket costs no wake-ups
                    # (with 1,000 visitors, waking every second was measurable).
                    raw = ws.receive(timeout=None)
                    if raw is None:
                        continue
                    if not sdk.is_enabled(tenant, "chat", fresh=True):
                        ws.close(POLICY_VIOLATION, SWITCHED_OFF)  # nothing more is stored
                        break
                    _handle_frame(ws, tenant, conversation, raw)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("chat visitor WebSocket reader failed")
        finally:
            stop.set()
            sub.close()  # wakes the forwarding loop: the visitor is gone

    reader = threading.Thread(target=read, name=f"chat-visitor-{conversation.id}", daemon=True)
    reader.start()
    idle = time.monotonic()
    try:
        while ws.connected and not sub.closed and not stop.is_set():
            event = sub.get(timeout=WS_IDLE_PING)
            if event is None:
                with sdk.connection():
                    switched_off = not sdk.is_enabled(tenant, "chat", fresh=True)
                if switched_off:
                    ws.close(POLICY_VIOLATION, SWITCHED_OFF)
                    break
                if time.monotonic() - idle > WS_IDLE_PING:
                    ws.send(json.dumps({"type": "ping"}))
                    idle = time.monotonic()
                continue
            data = event.data
            kind = data.get("kind")
            if kind == "message" and data["message"]["id"] > last_sent:
                # From the database, not the event: events of two processes may arrive
                # out of commit order, and ids within a conversation follow commit order
                # (service.post_message), so everything after last_sent is there now.
                with sdk.connection():
                    missed = service.messages_after(conversation, last_sent, 1000)
                for message in missed:
                    ws.send(json.dumps({"type": "message", "message": service.message_dict(message)}))
                    last_sent = message.id
            elif kind == "typing" and data.get("sender") == "agent":
                ws.send(json.dumps({"type": "typing", "sender": "agent"}))
            elif kind == "read" and data.get("reader") == "agent":
                ws.send(json.dumps({"type": "read", "up_to": data.get("up_to")}))
            elif kind == "conversation":
                ws.send(json.dumps({"type": "status", "status": data["conversation"]["status"]}))
            idle = time.monotonic()
    finally:
        # The reader ends when the socket closes (flask-sock closes it after we return).
        stop.set()


def _handle_frame(ws: Any, tenant: Any, conversation: ChatConversation, raw: Any) -> None:
    try:
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            raise TypeError
    except (TypeError, ValueError):
        ws.send(json.dumps({"type": "error", "code": 400, "message": "send JSON objects"}))
        return
    kind = frame.get("type")
    with sdk.connection():
        if kind == "message":
            client_id = frame.get("client_id")
            if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 64):
                ws.send(json.dumps({"type": "error", "code": 422, "client_id": None, "errors": {"client_id": ["1 to 64 characters."]}}))
                return
            content = frame.get("content")
            limit = service.settings(tenant)["max_message_length"]
            text = content.strip() if isinstance(content, str) else ""
            if not text or len(text) > limit:
                ws.send(json.dumps({"type": "error", "code": 422, "client_id": client_id, "errors": {"content": [f"1 to {limit} characters."]}}))
                return
            try:
                message, _ = service.post_message(tenant, conversation, sender="visitor", content=text, client_id=client_id)
            except service.RateLimited as exc:
                ws.send(json.dumps({"type": "error", "code": 429, "client_id": client_id, "retry_after": exc.retry_after}))
                return
            except peewee.OperationalError:  # e.g. SQLite busy past its timeout: not stored, say so
                log.warning("chat message not stored (database busy); the visitor will resend", exc_info=True)
                ws.send(json.dumps({"type": "error", "code": 503, "client_id": client_id, "retry_after": 1}))
                return
            ws.send(json.dumps({"type": "ack", "client_id": client_id, "message": service.message_dict(message)}))
        elif kind == "typing":
            service.publish_ephemeral(tenant, conversation.id, {"kind": "typing", "sender": "visitor", "at": time.time()})
        elif kind == "read":
            up_to = frame.get("up_to")
            service.mark_read(tenant, conversation, "visitor", up_to if isinstance(up_to, int) and not isinstance(up_to, bool) else None)
        elif kind != "pong":
            ws.send(json.dumps({"type": "error", "code": 400, "message": f"unknown type {kind!r}"}))
