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
``AUTH_RECHECK_SECONDS`` and before an event is sent once that long has passed: a token
revoked (or a user deactivated) meanwhile gets close code 4401 and no further event;
sign in again (or use a live token) before reconnecting.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable
from urllib.parse import urlsplit

from flask import Flask, g, request
from flask_sock import ConnectionClosed, Sock

from crmcore.realtime import RealtimeUnavailable, event_id_key

log = logging.getLogger(__name__)

IDLE_PING_SECONDS = 20.0
POLL_SECONDS = 0.5  # how soon a vanished client (or a closed hub) is noticed
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


def init_app(app: Flask) -> None:
    sock = Sock(app)

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
            ws.close(reason=POLICY_VIOLATION, message=problem)
            return
        topics = list(dict.fromkeys(t for t in request.args["topics"].split(",") if t))
        hub = crm_state().hub
        try:
            sub = hub.subscribe(g.tenant.id, topics, last_id=request.args.get("last_id") or None)
        except RealtimeUnavailable:
            ws.close(reason=INTERNAL_ERROR, message="realtime service unavailable; retry shortly")
            return
        except RuntimeError:  # the hub is closed: this server is shutting down
            ws.close(reason=SERVICE_RESTART, message="server restarting; reconnect shortly")
            return
        except Exception:
            log.exception("realtime subscribe failed")
            ws.close(reason=INTERNAL_ERROR, message="internal error")
            return
        token, user = g.get("token"), g.get("user")
        tenant = g.tenant

        def authorised() -> bool:
            return _still_authorised(tenant, user.id if user is not None else None, token.id if token is not None else None)

        with sub:
            try:
                _serve(ws, sub, topics, authorised)
            except ConnectionClosed:
                return
            except Exception:  # never a traceback written into the upgraded socket
                log.exception("realtime WebSocket handler failed")
                ws.close(reason=INTERNAL_ERROR, message="internal error")
                return
            if sub.closed and ws.connected:  # the hub closed under us (shutdown)
                ws.close(reason=SERVICE_RESTART, message="server restarting; reconnect shortly")


def _serve(ws, sub, topics: list[str], authorised: Callable[[], bool]) -> None:  # noqa: ANN001
    """Forward events until the client leaves, the subscription is closed or the
    credentials stop being valid (checked again every AUTH_RECHECK_SECONDS)."""
    ws.send(json.dumps({"type": "hello", "topics": topics}))
    idle_since = checked_at = time.monotonic()
    while ws.connected and not sub.closed:
        event = sub.get(timeout=POLL_SECONDS)
        if time.monotonic() - checked_at >= AUTH_RECHECK_SECONDS:
            if not authorised():
                ws.close(reason=UNAUTHORISED, message="credentials revoked; sign in again")
                return
            checked_at = time.monotonic()
        if event is not None:
            ws.send(event.to_json())
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > IDLE_PING_SECONDS:
            ws.send(json.dumps({"type": "ping"}))
            idle_since = time.monotonic()
        # Clients send nothing; discard whatever they do send (so it cannot pile up)
        # and notice a closed socket (receive raises ConnectionClosed then).
        while ws.receive(timeout=0) is not None:
            pass
