"""End-to-end tests of the realtime WebSocket endpoint ``/realtime/ws``.

A real HTTP server on loopback (werkzeug, threaded, the app from ``crm_env``) and a
real WebSocket client (websocket-client); the cross-process test runs ``crm run`` in a
subprocess with the real Redis and publishes from another subprocess.

The Redis tests use the ``redis_url`` fixture (tests/conftest.py: CRM_TEST_REDIS_URL
when set, else a private redis-server) and a fresh topic per run, so runs sharing a
Redis never see each other's events.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Iterator

import pytest
import redis
import requests
import websocket
from werkzeug.serving import make_server

from crmcore import auth, db
from tests.conftest import stop_process, subprocess_env

POLICY_VIOLATION = 1008
QUIET = 0.3  # how long "nothing more arrives" is waited for


# -- helpers ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def recv_json(ws: websocket.WebSocket, timeout: float = 3.0) -> dict[str, Any]:
    """The next data message as JSON (a close frame or a timeout fails the test)."""
    ws.settimeout(timeout)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT, f"expected a text frame, got opcode {opcode}: {data!r}"
    return json.loads(data)


def recv_event(ws: websocket.WebSocket, timeout: float = 3.0) -> dict[str, Any]:
    """The next event, skipping keep-alive pings."""
    while True:
        msg = recv_json(ws, timeout)
        if msg.get("type") != "ping":
            return msg


def assert_quiet(ws: websocket.WebSocket, wait: float = QUIET) -> None:
    """Nothing but keep-alive pings arrives within ``wait`` seconds."""
    ws.settimeout(wait)
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data).get("type") == "ping":
                continue
            pytest.fail(f"unexpected frame (opcode {opcode}): {data!r}")
    except websocket.WebSocketTimeoutException:
        pass


def recv_close_code(ws: websocket.WebSocket, timeout: float = 3.0) -> int:
    """Wait for the server's close frame (failing on any data frame); its status code."""
    ws.settimeout(timeout)
    while True:
        frame = ws.recv_data_frame(control_frame=True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005
        assert frame.opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY), f"data leaked before close: {frame.data!r}"


class WsServer:
    """The app served on loopback; ``connect()`` opens tracked WebSocket clients."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hub = app.extensions["crm"].hub
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="ws-test-server", daemon=True)
        self.clients: list[websocket.WebSocket] = []

    def connect(self, query: str = "topics=board", token: str | None = None, cookie: str | None = None, **options: Any) -> websocket.WebSocket:
        headers = [f"Authorization: Bearer {token}"] if token else []
        ws = websocket.WebSocket()
        self.clients.append(ws)
        ws.connect(f"ws://127.0.0.1:{self.port}/realtime/ws?{query}", header=headers, cookie=cookie, timeout=5, **options)
        return ws

    def subscribe(self, token: str, query: str = "topics=board", **options: Any) -> websocket.WebSocket:
        """Connect and consume the hello message (the subscription is active then)."""
        ws = self.connect(query, token=token, **options)
        hello = recv_json(ws)
        assert hello["type"] == "hello", hello
        return ws

    def handler_threads(self) -> list[threading.Thread]:
        # socketserver names its per-request threads after process_request_thread.
        return [t for t in threading.enumerate() if "process_request_thread" in t.name and t.is_alive()]

    def stop(self) -> None:
        for ws in self.clients:
            ws.close(timeout=1)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(crm_env: Any) -> Iterator[WsServer]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["acme.test", "127.0.0.1"])
    crm_env.write_tenant("beta", name="Beta Inc", hostnames=["beta.test"])
    srv = WsServer(crm_env.create_app())
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.stop()  # before crm_env's teardown closes the hub and the database


def tenant_id(crm_env: Any, slug: str) -> int:
    return crm_env.tenant(slug).id


# -- in-process server ------------------------------------------------------------


def test_bearer_token_receives_published_events(server: WsServer, crm_env: Any) -> None:
    acme = tenant_id(crm_env, "acme")
    ws = server.connect("topics=board,chat", token=crm_env.token("acme"))
    assert recv_json(ws) == {"type": "hello", "topics": ["board", "chat"]}

    sent = server.hub.publish(acme, "board", {"deal": 7, "stage": "won", "note": "über"})
    assert recv_event(ws) == {"id": sent.id, "topic": "board", "data": {"deal": 7, "stage": "won", "note": "über"}}
    chat = server.hub.publish(acme, "chat", {"text": "hi"})
    server.hub.publish(acme, "unrelated", {"x": 1})  # not subscribed
    assert recv_event(ws) == {"id": chat.id, "topic": "chat", "data": {"text": "hi"}}
    assert_quiet(ws)


def test_handler_ends_and_releases_everything_on_disconnect(server: WsServer, crm_env: Any) -> None:
    acme = tenant_id(crm_env, "acme")
    token = crm_env.token("acme")
    baseline = set(server.handler_threads())
    ws = server.subscribe(token)
    assert server.hub._active(), "a subscription while connected"
    if hasattr(db.database.obj, "_in_use"):  # pooled PostgreSQL: none held by the open socket
        assert not db.database.obj._in_use, db.database.obj._in_use
    assert len(set(server.handler_threads()) - baseline) == 1

    ws.close()
    assert _wait_until(lambda: not server.hub._active()), "subscription leaked after disconnect"
    assert _wait_until(lambda: not (set(server.handler_threads()) - baseline)), "handler thread still running"
    server.hub.publish(acme, "board", {"after": "close"})  # nobody left to deliver to: no error

    # An abrupt disconnect (no close frame) is noticed as well.
    ws = server.subscribe(token)
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    assert _wait_until(lambda: not server.hub._active()), "subscription leaked after a dropped socket"
    assert _wait_until(lambda: not (set(server.handler_threads()) - baseline)), "handler thread still running"


def test_unauthenticated_is_refused_and_hears_nothing(server: WsServer, crm_env: Any) -> None:
    acme = tenant_id(crm_env, "acme")
    server.hub.publish(acme, "board", {"secret": 1})
    # Host 127.0.0.1 resolves tenant acme, but a tenant alone is no credential.
    ws = server.connect("topics=board&last_id=0-0")
    assert recv_close_code(ws) == POLICY_VIOLATION
    assert not server.hub._active()

    # A bad token is refused at the handshake.
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        server.connect("topics=board", token="not-a-real-token")
    assert info.value.status_code == 401
    assert not server.hub._active()


@pytest.mark.parametrize("query", [
    "",  # no topics at all
    "topics=,,",
    "last_id=0-0",
    "topics=board&last_id=banana",
    "topics=board&last_id=-1-0",
    "topics=board&last_id=1_0-0",
    "topics=board&last_id=99999999999999999999999999-0",
    "topics=" + ",".join(f"t{i}" for i in range(100)),  # too many
    "topics=" + "x" * 1000,  # too long
])
def test_bad_requests_close_with_policy_violation(server: WsServer, crm_env: Any, query: str) -> None:
    ws = server.connect(query, token=crm_env.token("acme"))
    assert recv_close_code(ws) == POLICY_VIOLATION
    assert _wait_until(lambda: not server.hub._active())


def test_hub_unavailable_closes_with_try_again(server: WsServer, crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcore.realtime import RealtimeUnavailable

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RealtimeUnavailable("redis is down")

    monkeypatch.setattr(server.hub, "subscribe", down)
    ws = server.connect(token=crm_env.token("acme"))
    assert recv_close_code(ws) == 1011  # internal error: the client retries later


def test_hub_shutdown_closes_clients_so_they_reconnect(server: WsServer, crm_env: Any) -> None:
    ws = server.subscribe(crm_env.token("acme"))
    server.hub.close()
    assert recv_close_code(ws) == 1012  # service restart
    # A new connection to a closed hub is refused cleanly, not with a traceback.
    ws = server.connect(token=crm_env.token("acme"))
    assert recv_close_code(ws) == 1012


def test_tenant_isolation(server: WsServer, crm_env: Any) -> None:
    acme, beta = tenant_id(crm_env, "acme"), tenant_id(crm_env, "beta")
    assert acme != beta
    acme_ws = server.subscribe(crm_env.token("acme"))
    # The token decides the tenant, whatever Host header the client sends.
    beta_ws = server.subscribe(crm_env.token("beta"), host="acme.test")

    a = server.hub.publish(acme, "board", {"who": "acme"})
    b = server.hub.publish(beta, "board", {"who": "beta"})
    assert recv_event(acme_ws) == {"id": a.id, "topic": "board", "data": {"who": "acme"}}
    assert recv_event(beta_ws) == {"id": b.id, "topic": "board", "data": {"who": "beta"}}
    assert_quiet(acme_ws)
    assert_quiet(beta_ws)

    # Replay is tenant-scoped as well: beta resuming from the start sees only beta's.
    replay = server.subscribe(crm_env.token("beta"), "topics=board&last_id=0-0")
    assert recv_event(replay)["data"] == {"who": "beta"}
    assert_quiet(replay)


def test_resume_from_last_id(server: WsServer, crm_env: Any) -> None:
    acme = tenant_id(crm_env, "acme")
    token = crm_env.token("acme")
    ws = server.subscribe(token)
    published = [server.hub.publish(acme, "board", {"n": n}) for n in range(1, 6)]
    first, second = recv_event(ws), recv_event(ws)
    assert [first["data"]["n"], second["data"]["n"]] == [1, 2]
    ws.close()

    ws = server.subscribe(token, f"topics=board&last_id={second['id']}")
    got = [recv_event(ws) for _ in range(3)]
    assert [e["data"]["n"] for e in got] == [3, 4, 5]
    assert [e["id"] for e in got] == [e.id for e in published[2:]]
    live = server.hub.publish(acme, "board", {"n": 6})
    assert recv_event(ws) == {"id": live.id, "topic": "board", "data": {"n": 6}}
    assert_quiet(ws)  # no duplicates


def test_session_cookie_auth(server: WsServer, crm_env: Any) -> None:
    acme = tenant_id(crm_env, "acme")
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "rep@acme.test", "secret-pw", role="admin")
    with requests.Session() as http:
        page = http.get(f"{server.base}/login", timeout=5)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        signed_in = http.post(f"{server.base}/login", data={"email": "rep@acme.test", "password": "secret-pw", "csrf_token": csrf}, allow_redirects=False, timeout=5)
        assert signed_in.status_code == 302, signed_in.text
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)

    ws = server.connect(cookie=cookie)  # websocket-client sends Origin: http://127.0.0.1:<port>
    assert recv_json(ws)["type"] == "hello"
    sent = server.hub.publish(acme, "board", {"via": "cookie"})
    assert recv_event(ws) == {"id": sent.id, "topic": "board", "data": {"via": "cookie"}}

    # Cross-site WebSocket hijacking: a page elsewhere must not ride on the cookie.
    evil = server.connect(cookie=cookie, origin="http://evil.example")
    assert recv_close_code(evil) == POLICY_VIOLATION
    # ... while a bearer token is no ambient credential, so any origin may use it.
    ok = server.subscribe(crm_env.token("acme"), origin="http://elsewhere.example")
    ok.close()


def test_revoked_token_is_disconnected_and_hears_nothing_more(server: WsServer, crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcore import realtime_ws
    from crmcore.entities.users import revoke_token
    from crmcore.models import ApiToken

    monkeypatch.setattr(realtime_ws, "AUTH_RECHECK_SECONDS", 0.3)
    acme = tenant_id(crm_env, "acme")
    secret = crm_env.token("acme")
    ws = server.subscribe(secret)
    kept = server.subscribe(crm_env.token("acme"))  # another token: unaffected
    sent = server.hub.publish(acme, "board", {"before": "revoke"})
    assert recv_event(ws)["id"] == sent.id and recv_event(kept)["id"] == sent.id

    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(crm_env.tenant("acme")):
        revoke_token(ApiToken.get(ApiToken.token_hash == auth._digest(secret)))
    time.sleep(realtime_ws.AUTH_RECHECK_SECONDS + 0.1)
    after = server.hub.publish(acme, "board", {"after": "revoke"})
    assert recv_close_code(ws, timeout=3) == realtime_ws.UNAUTHORISED  # fails on any data frame first
    assert recv_event(kept)["id"] == after.id
    with pytest.raises(websocket.WebSocketBadStatusException):  # and it cannot come back
        server.connect(token=secret)


def test_deactivated_user_is_disconnected(server: WsServer, crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcore import realtime_ws
    from crmcore.models import User

    monkeypatch.setattr(realtime_ws, "AUTH_RECHECK_SECONDS", 0.3)
    with crm_env.app.app_context(), db.database.connection_context():
        user = auth.create_user(crm_env.tenant("acme"), "rep@acme.test", "secret-pw", role="agent")
    with requests.Session() as http:
        page = http.get(f"{server.base}/login", timeout=5)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert http.post(f"{server.base}/login", data={"email": "rep@acme.test", "password": "secret-pw", "csrf_token": csrf}, allow_redirects=False, timeout=5).status_code == 302
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    ws = server.connect(cookie=cookie)
    assert recv_json(ws)["type"] == "hello"
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(crm_env.tenant("acme")):
        User.update(active=False).where(User.id == user.id).execute()
    assert recv_close_code(ws, timeout=3) == realtime_ws.UNAUTHORISED



def test_open_sockets_credentials_are_checked_in_two_queries(server: WsServer, crm_env: Any) -> None:
    """However many sockets are open, one round of re-checks is at most two statements
    (live tokens among theirs, active users among theirs), not one per socket."""
    from crmcore import realtime_ws
    from crmcore.models import ApiToken

    watch = server.app.extensions["crm_ws_credentials"]
    secrets = [crm_env.token("acme") for _ in range(6)]
    sockets = [server.subscribe(secret) for secret in secrets]
    assert _wait_until(lambda: len(watch._sockets) == 6)
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(crm_env.tenant("acme")):
        ApiToken.update(revoked_at=db.utcnow()).where(ApiToken.token_hash == auth._digest(secrets[0])).execute()
    statements: list[str] = []
    database = server.app.extensions["crm"].database
    original = database.execute_sql

    def counting(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    database.execute_sql = counting
    try:
        watch.check(list(watch._sockets))
    finally:
        del database.execute_sql
    assert len(statements) == 1, statements  # only tokens here: no user query at all
    assert recv_close_code(sockets[0]) == realtime_ws.UNAUTHORISED
    acme = tenant_id(crm_env, "acme")
    sent = server.hub.publish(acme, "board", {"n": 1})
    for ws in sockets[1:]:
        assert recv_event(ws)["id"] == sent.id

# -- two processes, real Redis --------------------------------------------------------


def test_event_from_another_process_via_redis(crm_env: Any, redis_url: str) -> None:
    topic = f"board-{uuid.uuid4().hex[:12]}"  # fresh per run: no stale or foreign events
    crm_env.write_instance(redis_url=redis_url)
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["acme.test", "127.0.0.1"])
    crm_env.create_app()  # migrates the shared database
    acme = tenant_id(crm_env, "acme")
    token = crm_env.token("acme")

    port = _free_port()
    env = subprocess_env(PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "crmcore.cli", "--config", str(crm_env.config_dir), "run", "--no-worker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    ws = websocket.WebSocket()
    stream_keys: list[str] = []
    try:
        def answers() -> bool:
            assert server.poll() is None, f"crm run exited: {server.stdout.read()}"
            try:
                return requests.get(f"http://127.0.0.1:{port}/login", timeout=0.5).status_code == 200
            except requests.ConnectionError:
                return False

        assert _wait_until(answers, timeout=10), "crm run did not start"
        ws.connect(f"ws://127.0.0.1:{port}/realtime/ws?topics={topic}", header=[f"Authorization: Bearer {token}"], timeout=5)
        assert recv_json(ws) == {"type": "hello", "topics": [topic]}

        code = (
            "import json, sys\n"
            "from crmcore.app import create_app\n"
            "app = create_app(sys.argv[1])\n"
            "crm = app.extensions['crm']\n"
            "event = crm.hub.publish(int(sys.argv[2]), sys.argv[3], {'from': 'B', 'n': 1})\n"
            "print(json.dumps({'id': event.id, 'hub': type(crm.hub).__name__}))\n"
            "crm.shutdown()\n"
        )
        publisher = subprocess.run([sys.executable, "-c", code, str(crm_env.config_dir), str(acme), topic], env=env, capture_output=True, text=True, timeout=20)
        assert publisher.returncode == 0, publisher.stderr
        published = json.loads(publisher.stdout.strip().splitlines()[-1])
        assert published["hub"] == "RedisHub"
        stream_keys.append(f"crm:rt:{acme}:{topic}")

        assert recv_event(ws, timeout=5) == {"id": published["id"], "topic": topic, "data": {"from": "B", "n": 1}}
        assert_quiet(ws)

        # And a reconnect to process A with that id as last_id resumes after it.
        ws.close()
        later = crm_env.crm.hub.publish(acme, topic, {"from": "test", "n": 2})
        ws.connect(f"ws://127.0.0.1:{port}/realtime/ws?topics={topic}&last_id={published['id']}", header=[f"Authorization: Bearer {token}"], timeout=5)
        assert recv_json(ws)["type"] == "hello"
        assert recv_event(ws) == {"id": later.id, "topic": topic, "data": {"from": "test", "n": 2}}
        assert_quiet(ws)
    finally:
        ws.close(timeout=1)
        output = stop_process(server)
        client = redis.Redis.from_url(redis_url)
        try:
            if stream_keys:
                client.delete(*stream_keys)
        finally:
            client.close()
    assert "Traceback" not in output, output


def test_redis_databases_do_not_share_live_events(redis_url: str) -> None:
    """Pub/sub channels are server-wide in Redis: two instances on one server with
    different databases (and the same fixed key prefix) must not hear each other."""
    from crmcore.realtime import RedisHub

    other_db = re.sub(r"/\d*$", "", redis_url) + ("/14" if not redis_url.endswith("/14") else "/13")
    topic = f"iso-{uuid.uuid4().hex[:12]}"
    mine, theirs = RedisHub(redis_url), RedisHub(other_db)
    try:
        sub = mine.subscribe(1, [topic])
        assert mine.connected.wait(3)
        theirs.publish(1, topic, {"from": "the other instance"})
        own = mine.publish(1, topic, {"from": "this instance"})
        got = sub.get(timeout=3)
        assert got is not None and got.id == own.id and got.data == {"from": "this instance"}
        assert sub.get(timeout=QUIET) is None
    finally:
        for hub, url in ((mine, redis_url), (theirs, other_db)):
            hub.close()
            client = redis.Redis.from_url(url)
            client.delete(f"crm:rt:1:{topic}")
            client.close()


def test_hook_crm_live_topic_rules(crm_env: Any, sample_plugin_path: Any) -> None:
    """A plugin's rule decides who may listen to the topics it claims, in the
    subscribing request; False or an exception refuses the socket (1008); topics no
    rule claims stay open to every signed-in user."""
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["acme.test", "127.0.0.1"], plugins=["sample"])
    srv = WsServer(crm_env.create_app())
    srv.thread.start()
    try:
        admin, agent = crm_env.token("acme", "admin"), crm_env.token("acme", "agent")
        assert recv_json(srv.connect("topics=sample:admins", token=admin))["type"] == "hello"
        assert recv_close_code(srv.connect("topics=board,sample:admins", token=agent)) == POLICY_VIOLATION
        assert recv_close_code(srv.connect("topics=sample:broken", token=admin)) == POLICY_VIOLATION
        assert recv_json(srv.connect("topics=board,sample:other", token=agent))["type"] == "hello"
    finally:
        srv.stop()
