"""The realtime WebSocket endpoint: ``/realtime/ws?topics=a,b&last_id=<id>``.

Authenticated like the API (bearer token header or the session cookie); the tenant comes
from the credentials, so a client can only hear its own tenant's topics. The server
sends each event as JSON ``{"id", "topic", "data"}``; a client that reconnects with the
last id it saw receives what it missed (within the hub's replay buffer). A
``{"type": "ping"}`` goes out after 20 idle seconds so proxies keep the socket open.

A topic ``user:<id>:...`` (a user's notifications) is refused to anyone but that user
(a token: its user).

Close codes a client sees: 1008 (policy violation) for a request that is wrong and
must not be retried as is -- no credentials, a cookie sent from another site, no or
too many topics, a malformed ``last_id``; 1011 when the realtime backend (Redis) is
unreachable and 1012 when the server shuts down: reconnect after a short pause, with
the last id seen. A bearer token that is invalid is refused at the handshake (401).

The credentials are checked again while the socket is open, at least every
``AUTH_RECHECK_SECONDS`` (for all of an app's open sockets at once, by its
:class:`CredentialWatch`) and before an event is sent once that long has passed: a token
revoked (or a user deactivated) meanwhile gets close code 4401 and no further event;
sign in again (or use a live token) before reconnecting.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from urllib.parse import urlsplit

from flask import Flask, g, request
from flask_sock import ConnectionClosed, Sock

from crmcore.realtime import RealtimeUnavailable, event_id_key

log = logging.getLogger(__name__)

IDLE_PING_SECONDS = 20.0
MAX_TOPICS = 32
MAX_TOPIC_LENGTH = 200

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
UNAUTHORISED = 4401  # the token was revoked or the user deactivated while connected
AUTH_RECHECK_SECONDS = 2.0


def _same_origin() -> bool:
    """A cookie-authenticated handshake must come from a page of this site (CSWSH)."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser: no ambient cookie to abuse
        return True
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == request.host.lower()


def _bad_request() -> str | None:
    """Why the request cannot be served (None: fine)."""
    if g.get("tenant") is None or (g.get("user") is None and g.get("token") is None):
        return "authentication required"
    if g.get("token") is None and not _same_origin():
        return "cross-site request refused"
    topics = [t for t in request.args.get("topics", "").split(",") if t]
    if not topics:
        return "no topics: use ?topics=a,b"
    if len(set(topics)) > MAX_TOPICS or any(len(t) > MAX_TOPIC_LENGTH for t in topics):
        return f"at most {MAX_TOPICS} topics of at most {MAX_TOPIC_LENGTH} characters"
    me = g.user.id if g.get("user") is not None else getattr(g.get("token"), "user_id", None)
    if any(t.startswith("user:") and t.split(":")[1] != str(me) for t in topics):
        return "a user:<id>:... topic is only for that user"  # their notifications
    refused = _refused_topic(topics)
    if refused is not None:
        return f"not allowed to listen to {refused}"
    last_id = request.args.get("last_id")
    if last_id:
        try:
            event_id_key(last_id)
        except ValueError:
            return "bad last_id"
    return None


def _refused_topic(topics: list[str]) -> str | None:
    """The first topic a plugin's rule (crm_live_topic_rules) does not let the caller
    hear; a rule that raises refuses (closed, not open, on a plugin's bug)."""
    from crmcore.app import crm_state

    for topic in topics:
        for plugin, rule in crm_state().live_topic_rules:
            if not topic.startswith(rule.prefix):
                continue
            try:
                allowed = bool(rule.allowed(topic))
            except Exception:
                log.exception("plugin %r: live topic rule for %r failed; the subscription is refused", plugin, rule.prefix)
                allowed = False
            if not allowed:
                return topic
    return None


def _still_authorised(tenant, user_id: int | None, token_id: int | None) -> bool:
    """Whether the socket's token is still live, or its user still active (a query on a
    connection opened for it and given back at once: the socket may stay open for hours)."""
    from crmcore import db
    from crmcore.models import ApiToken, User

    with db.connection(), db.tenant_context(tenant):
        if token_id is not None:
            return ApiToken.select().where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null()).exists()
        return User.select().where((User.id == user_id) & (User.active == True)).exists()  # noqa: E712


class _Socket:
    """One open socket's credentials, as the :class:`CredentialWatch` sees them."""

    __slots__ = ("tenant", "user_id", "token_id", "sub", "confirmed_at", "revoked")

    def __init__(self, tenant, user_id: int | None, token_id: int | None, sub) -> None:  # noqa: ANN001
        self.tenant, self.user_id, self.token_id, self.sub = tenant, user_id, token_id, sub
        self.confirmed_at = time.monotonic()
        self.revoked = False

    def check_now(self) -> bool:
        """Check this socket's credentials at once (an event is due and the last check is
        older than AUTH_RECHECK_SECONDS); False once they are no longer valid."""
        if not self.revoked and _still_authorised(self.tenant, self.user_id, self.token_id):
            self.confirmed_at = time.monotonic()
        else:
            self.revoked = True
        return not self.revoked


def _chunks(ids: set[int], size: int = 5000) -> list[list[int]]:
    """Ids in lists of at most ``size`` (bound parameters per statement are limited)."""
    ordered = sorted(ids)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


class CredentialWatch:
    """Re-checks the credentials of every open socket of an app, every
    AUTH_RECHECK_SECONDS, in two queries whatever the number of sockets (live tokens among
    theirs, active users among theirs; one more per 5,000 distinct ids). A socket whose credentials are gone is marked
    revoked and its subscription closed, which wakes its handler to close it with 4401.

    Before, each socket ran its own query every two seconds and woke twice a second to
    look: a thousand idle sockets cost 500 queries a second and half a core. The checking
    thread (a greenlet under gevent) runs only while sockets are open."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._sockets: set[_Socket] = set()
        self._running = False

    def add(self, socket: _Socket) -> None:
        with self._lock:
            self._sockets.add(socket)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="crm-ws-credentials", daemon=True).start()

    def discard(self, socket: _Socket) -> None:
        with self._lock:
            self._sockets.discard(socket)

    def _run(self) -> None:
        while True:
            time.sleep(AUTH_RECHECK_SECONDS)
            with self._lock:
                sockets = list(self._sockets)
                if not sockets:
                    self._running = False
                    return
            try:
                self.check(sockets)
            except Exception:  # the database is down or busy: the next round tries again
                log.warning("re-checking the credentials of open WebSockets failed", exc_info=True)

    def check(self, sockets: list[_Socket]) -> None:
        from crmcore import db
        from crmcore.models import ApiToken, User

        token_ids = {s.token_id for s in sockets if s.token_id is not None}
        user_ids = {s.user_id for s in sockets if s.token_id is None and s.user_id is not None}
        started = time.monotonic()
        # Unscoped on purpose: the ids are those of tokens and users this process
        # authenticated itself, each in its own tenant; only ids are read back.
        live_tokens: set[int] = set()
        active_users: set[int] = set()
        with self.app.app_context(), db.connection():
            for ids in _chunks(token_ids):
                live_tokens.update(t.id for t in ApiToken.select_all_tenants(ApiToken.id).where(
                    ApiToken.id.in_(ids) & ApiToken.revoked_at.is_null()))
            for ids in _chunks(user_ids):
                active_users.update(u.id for u in User.select_all_tenants(User.id).where(
                    User.id.in_(ids) & (User.active == True)))  # noqa: E712
        for socket in sockets:
            valid = socket.token_id in live_tokens if socket.token_id is not None else socket.user_id in active_users
            if valid:
                socket.confirmed_at = max(socket.confirmed_at, started)
            elif not socket.revoked:
                socket.revoked = True
                socket.sub.close()  # wakes the handler, which closes the socket with 4401


def init_app(app: Flask) -> None:
    sock = Sock(app)
    watch = CredentialWatch(app)
    app.extensions["crm_ws_credentials"] = watch

    @sock.route("/realtime/ws")
    def realtime_ws(ws) -> None:  # noqa: ANN001 - flask-sock's Server
        from crmcore import db
        from crmcore.app import crm_state

        # The request's database connection is not needed while the socket is open
        # (hours, maybe): give it back now rather than in teardown_request.
        if not db.database.is_closed():
            db.database.close()
        problem = _bad_request()
        if problem is not None:
            _close(ws, POLICY_VIOLATION, problem)
            return
        topics = list(dict.fromkeys(t for t in request.args["topics"].split(",") if t))
        hub = crm_state().hub
        try:
            sub = hub.subscribe(g.tenant.id, topics, last_id=request.args.get("last_id") or None)
        except RealtimeUnavailable:
            _close(ws, INTERNAL_ERROR, "realtime service unavailable; retry shortly")
            return
        except RuntimeError:  # the hub is closed: this server is shutting down
            _close(ws, SERVICE_RESTART, "server restarting; reconnect shortly")
            return
        except Exception:
            log.exception("realtime subscribe failed")
            _close(ws, INTERNAL_ERROR, "internal error")
            return
        token, user = g.get("token"), g.get("user")
        socket = _Socket(g.tenant, user.id if user is not None else None, token.id if token is not None else None, sub)
        watch.add(socket)
        with sub:
            try:
                _serve(ws, sub, topics, socket)
            except ConnectionClosed:
                return
            except OSError:  # the client vanished mid-send (a reset)
                return
            except Exception:  # never a traceback written into the upgraded socket
                log.exception("realtime WebSocket handler failed")
                _close(ws, INTERNAL_ERROR, "internal error")
                return
            finally:
                watch.discard(socket)


def _close(ws, code: int, message: str) -> None:  # noqa: ANN001
    """Close with ``code``, unless the client is gone already (a reset, a close of its
    own crossing ours, which the WebSocket library reports as a protocol error): nothing
    is left to tell then, and it is no error."""
    try:
        ws.close(reason=code, message=message)
    except Exception:  # noqa: BLE001 - best effort, see above
        pass


def _serve(ws, sub, topics: list[str], socket: _Socket) -> None:  # noqa: ANN001
    """Forward events until the client leaves, the subscription is closed or the
    credentials stop being valid. Blocks on the subscription (no polling: an idle socket
    wakes only to ping); a reader thread (a greenlet under gevent) notices the client
    leaving and closes the subscription, which wakes this loop."""
    ws.send(json.dumps({"type": "hello", "topics": topics}))
    left = threading.Event()

    def read() -> None:
        # Clients send nothing; discard whatever they do send (so it cannot pile up).
        # Ends when the client leaves (receive raises then), or soon after this socket's
        # subscription was closed for another reason.
        try:
            while not sub.closed:
                ws.receive(timeout=IDLE_PING_SECONDS)
            return
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("realtime WebSocket reader failed")
        left.set()
        sub.close()  # wakes the forwarding loop: the client is gone

    threading.Thread(target=read, name="crm-realtime-ws-reader", daemon=True).start()
    idle_since = time.monotonic()
    while not sub.closed:
        event = sub.get(timeout=IDLE_PING_SECONDS)
        if socket.revoked or left.is_set():
            break
        if event is not None:
            stale = time.monotonic() - socket.confirmed_at >= AUTH_RECHECK_SECONDS
            if stale and not socket.check_now():
                break
            ws.send(event.to_json())
            idle_since = time.monotonic()
        elif not sub.closed and time.monotonic() - idle_since >= IDLE_PING_SECONDS:
            ws.send(json.dumps({"type": "ping"}))
            idle_since = time.monotonic()
    if left.is_set() or not ws.connected:
        return
    if socket.revoked:
        _close(ws, UNAUTHORISED, "credentials revoked; sign in again")
    else:  # the hub closed under us (shutdown)
        _close(ws, SERVICE_RESTART, "server restarting; reconnect shortly")
