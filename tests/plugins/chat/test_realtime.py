"""Real WebSocket clients against a running server: visitor <-> agent, resume, fallback,
and two server processes sharing the Redis hub."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
import websocket
from werkzeug.serving import make_server

from crm_plugins.chat.models import ChatMessage
from tests.conftest import stop_process, subprocess_env

from .conftest import ORIGIN, chat_settings, in_tenant


def recv(ws: websocket.WebSocket, want: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """The next JSON frame (of type ``want``; pings and others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        frame = json.loads(ws.recv())
        if want is None or frame.get("type") == want:
            return frame
        assert time.monotonic() < deadline, f"no {want!r} frame in {timeout}s"


def agent_event(ws: websocket.WebSocket, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        frame = json.loads(ws.recv())
        if frame.get("data", {}).get("kind") == kind:
            return frame
        assert time.monotonic() < deadline


class Server:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.sockets: list[websocket.WebSocket] = []

    def ws(self, path: str, **options: Any) -> websocket.WebSocket:
        ws = websocket.WebSocket()
        self.sockets.append(ws)
        ws.connect(f"ws://127.0.0.1:{self.port}{path}", timeout=5, **options)
        return ws

    def stop(self) -> None:
        for ws in self.sockets:
            ws.close(timeout=1)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(crm_env: Any) -> Iterator[Server]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=["chat"], settings=chat_settings(assistant_enabled=False))
    srv = Server(crm_env.create_app())
    try:
        yield srv
    finally:
        srv.stop()


def _key(crm_env: Any, base: str) -> str:
    return requests.get(f"{base}/chat/widget.js", timeout=5).ok and _public_key(crm_env)


def _public_key(crm_env: Any) -> str:
    from crm_plugins.chat import service

    with crm_env.app.test_request_context(), in_tenant(crm_env) as tenant:
        return service.public_key(tenant)


def _session(base: str, key: str) -> dict[str, Any]:
    response = requests.post(f"{base}/api/v1/chat/public/session", json={"name": "Ada"}, headers={"X-Chat-Key": key, "Origin": ORIGIN}, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def test_visitor_and_agent_exchange_messages_both_ways(server: Server, crm_env: Any) -> None:
    key = _key(crm_env, server.base)
    session = _session(server.base, key)
    cid, token = session["conversation"]["id"], session["token"]
    agent_token = crm_env.token("acme", "agent")
    agent = server.ws(f"/realtime/ws?topics=chat:inbox,chat:conversation:{cid}", header=[f"Authorization: Bearer {agent_token}"])
    assert json.loads(agent.recv())["type"] == "hello"
    visitor = server.ws(f"/chat/ws?key={key}&token={token}&after=0", origin=ORIGIN)
    greeting = recv(visitor, "message")
    assert greeting["message"]["sender"] == "system"
    assert recv(visitor, "ready")["last_message_id"] == greeting["message"]["id"]

    visitor.send(json.dumps({"type": "message", "content": "Hello from the website", "client_id": "v-1"}))
    ack = recv(visitor, "ack")
    assert ack["client_id"] == "v-1" and ack["message"]["content"] == "Hello from the website"
    heard = agent_event(agent, "message")
    assert heard["data"]["message"]["id"] == ack["message"]["id"]

    visitor.send(json.dumps({"type": "typing"}))
    assert agent_event(agent, "typing")["data"]["sender"] == "visitor"

    reply = requests.post(f"{server.base}/api/v1/chat/conversations/{cid}/messages", json={"content": "Hi, how can I help?"}, headers={"Authorization": f"Bearer {agent_token}"}, timeout=5)
    assert reply.status_code == 201
    while True:
        frame = recv(visitor, "message")
        if frame["message"]["sender"] == "agent":
            break
    assert frame["message"]["content"] == "Hi, how can I help?"

    visitor.send(json.dumps({"type": "read", "up_to": frame["message"]["id"]}))
    assert agent_event(agent, "read")["data"] == {"kind": "read", "reader": "visitor", "up_to": frame["message"]["id"]}

    visitor.send(json.dumps({"type": "message", "content": "", "client_id": "v-2"}))
    assert recv(visitor, "error")["code"] == 422


def test_reconnect_with_resume_loses_and_duplicates_nothing(server: Server, crm_env: Any) -> None:
    key = _key(crm_env, server.base)
    session = _session(server.base, key)
    cid, token = session["conversation"]["id"], session["token"]
    agent_headers = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
    visitor = server.ws(f"/chat/ws?key={key}&token={token}&after=0", origin=ORIGIN)
    last = recv(visitor, "ready")["last_message_id"]
    visitor.send(json.dumps({"type": "message", "content": "first", "client_id": "a"}))
    last = recv(visitor, "ack")["message"]["id"]
    visitor.close()  # the connection drops ...

    for n in range(3):  # ... while the agent writes
        requests.post(f"{server.base}/api/v1/chat/conversations/{cid}/messages", json={"content": f"reply {n}"}, headers=agent_headers, timeout=5)
    # ... and the visitor's resend of an unacknowledged message comes again on reconnect
    visitor = server.ws(f"/chat/ws?key={key}&token={token}&after={last}", origin=ORIGIN)
    got = []
    while True:
        frame = recv(visitor)
        if frame["type"] == "ready":
            break
        got.append(frame["message"]["content"])
    assert got == ["reply 0", "reply 1", "reply 2"]
    visitor.send(json.dumps({"type": "message", "content": "first", "client_id": "a"}))
    assert recv(visitor, "ack")["message"]["id"] == last  # the same message, not a new one
    with in_tenant(crm_env):
        assert ChatMessage.select().where(ChatMessage.content == "first").count() == 1


def test_replies_whose_events_arrive_out_of_commit_order_all_reach_the_visitor(server: Server, crm_env: Any) -> None:
    """Two server processes publish after their own commits, so the event of a later id
    can arrive first; the widget used to forward only ids above the last one sent and
    lost the other until a reload (issue 19)."""
    from crm_plugins.chat import service
    from crm_plugins.chat.models import ChatConversation

    key = _key(crm_env, server.base)
    session = _session(server.base, key)
    cid, token = session["conversation"]["id"], session["token"]
    visitor = server.ws(f"/chat/ws?key={key}&token={token}&after=0", origin=ORIGIN)
    last = recv(visitor, "ready")["last_message_id"]
    with in_tenant(crm_env) as tenant:
        conversation = ChatConversation.get_by_id(cid)
        first = ChatMessage.create(conversation=conversation, sender="agent", content="committed first")
        second = ChatMessage.create(conversation=conversation, sender="agent", content="committed second")
        wire = [service.message_dict(m) for m in (first, second)]
    hub = crm_env.app.extensions["crm"].hub
    hub.publish(tenant.id, service.conversation_topic(cid), {"kind": "message", "message": wire[1]})
    hub.publish(tenant.id, service.conversation_topic(cid), {"kind": "message", "message": wire[0]})
    got = [recv(visitor, "message")["message"] for _ in range(2)]
    assert [m["id"] for m in got] == [first.id, second.id] and first.id > last
    visitor.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:  # the late event of `first` sends nothing twice
            assert json.loads(visitor.recv())["type"] != "message"


@pytest.mark.skipif(not os.environ.get("CRM_TEST_DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL hands out ids in call order; SQLite has one writer")
def test_a_reply_takes_its_id_only_once_the_conversation_is_free(server: Server, crm_env: Any) -> None:
    """A message takes its id after its conversation's row lock, so within one
    conversation ids follow commit order and "messages after id N" misses none."""
    import psycopg2

    from crm_plugins.chat import service
    from crm_plugins.chat.models import ChatConversation

    key = _key(crm_env, server.base)
    cid = _session(server.base, key)["conversation"]["id"]
    base, _, _ = crm_env.database_url.partition("?")
    other = psycopg2.connect(base)  # another process, in the middle of its own reply
    try:
        cur = other.cursor()
        cur.execute("SELECT id FROM chat_conversation WHERE id = %s FOR UPDATE", (cid,))
        stored: list[int] = []

        def reply() -> None:
            with crm_env.app.test_request_context(), in_tenant(crm_env) as tenant:
                stored.append(service.post_message(tenant, ChatConversation.get_by_id(cid), sender="agent", content="ours")[0].id)

        thread = threading.Thread(target=reply)
        thread.start()
        time.sleep(0.3)
        cur.execute("INSERT INTO chat_message (tenant_id, conversation_id, sender, content, has_attachment, created_at) SELECT tenant_id, id, 'agent', 'theirs', false, now() FROM chat_conversation WHERE id = %s RETURNING id", (cid,))
        theirs = cur.fetchone()[0]
        other.commit()
        thread.join(timeout=10)
        assert stored and stored[0] > theirs
    finally:
        other.close()


def test_switching_the_chat_off_closes_the_visitors_open_socket(server: Server, crm_env: Any) -> None:
    """An open widget socket stops working when the tenant's chat is switched off: what
    the visitor sends then is refused and not stored (issue 19)."""
    from tests.core.test_realtime_ws import POLICY_VIOLATION, recv_close_code

    key = _key(crm_env, server.base)
    token = _session(server.base, key)["token"]
    visitor = server.ws(f"/chat/ws?key={key}&token={token}&after=0", origin=ORIGIN)
    recv(visitor, "ready")
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=[])
    time.sleep(1.1)  # the config files are looked at once a second
    visitor.send(json.dumps({"type": "message", "content": "after the switch", "client_id": "late"}))
    assert recv_close_code(visitor) == POLICY_VIOLATION
    with in_tenant(crm_env):
        assert not ChatMessage.select().where(ChatMessage.content == "after the switch").exists()


def test_websocket_refuses_bad_token_and_foreign_origin(server: Server, crm_env: Any) -> None:
    key = _key(crm_env, server.base)
    token = _session(server.base, key)["token"]
    for path, origin in ((f"/chat/ws?key={key}&token=forged", ORIGIN), (f"/chat/ws?key=wrong&token={token}", ORIGIN), (f"/chat/ws?key={key}&token={token}", "https://evil.example")):
        ws = server.ws(path, origin=origin)
        ws.settimeout(5)
        while True:
            frame = ws.recv_data_frame(control_frame=True)[1]
            assert frame.opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY), f"data leaked: {frame.data!r}"
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                assert int.from_bytes(frame.data[:2], "big") == 1008
                break


def test_http_fallback_long_poll_wakes_on_agent_reply(server: Server, crm_env: Any) -> None:
    key = _key(crm_env, server.base)
    session = _session(server.base, key)
    headers = {"X-Chat-Key": key, "X-Chat-Token": session["token"], "Origin": ORIGIN}
    after = session["messages"][-1]["id"]
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["body"] = requests.get(f"{server.base}/api/v1/chat/public/messages?after={after}&wait=10", headers=headers, timeout=15).json()
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    requests.post(f"{server.base}/api/v1/chat/conversations/{session['conversation']['id']}/messages", json={"content": "answer"}, headers={"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}, timeout=5)
    waiter.join(timeout=15)
    assert [m["content"] for m in result["body"]["messages"]] == ["answer"]
    assert result["took"] < 8  # woken by the reply, not by the timeout


# -- two processes, real Redis --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_visitor_on_one_process_agent_on_another_via_redis(crm_env: Any, redis_url: str) -> None:
    crm_env.write_instance(redis_url=redis_url)
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=["chat"], settings=chat_settings(assistant_enabled=False))
    local = Server(crm_env.create_app())  # process B: the agent's
    port = _free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "crmcore.cli", "--config", str(crm_env.config_dir), "run", "--no-worker", "--port", str(port)],
        env=subprocess_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    remote = f"http://127.0.0.1:{port}"  # process A: the visitor's
    try:
        deadline = time.monotonic() + 15
        while True:
            assert other.poll() is None, other.stdout.read()
            try:
                if requests.get(f"{remote}/login", timeout=0.5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "crm run did not start"
            time.sleep(0.1)
        key = _public_key(crm_env)
        session = _session(remote, key)
        cid, token = session["conversation"]["id"], session["token"]
        agent_token = crm_env.token("acme", "agent")
        agent = local.ws(f"/realtime/ws?topics=chat:conversation:{cid}&nonce={uuid.uuid4().hex}", header=[f"Authorization: Bearer {agent_token}"])
        assert json.loads(agent.recv())["type"] == "hello"
        visitor = websocket.WebSocket()
        local.sockets.append(visitor)
        visitor.connect(f"ws://127.0.0.1:{port}/chat/ws?key={key}&token={token}&after=0", origin=ORIGIN, timeout=5)
        recv(visitor, "ready")

        visitor.send(json.dumps({"type": "message", "content": "from process A", "client_id": "x1"}))
        assert agent_event(agent, "message")["data"]["message"]["content"] == "from process A"
        reply = requests.post(f"{local.base}/api/v1/chat/conversations/{cid}/messages", json={"content": "from process B"}, headers={"Authorization": f"Bearer {agent_token}"}, timeout=5)
        assert reply.status_code == 201
        while True:
            frame = recv(visitor, "message")
            if frame["message"]["sender"] == "agent":
                break
        assert frame["message"]["content"] == "from process B"
    finally:
        local.stop()
        output = stop_process(other)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter("crm:rt:*:chat:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    assert "Traceback" not in output, output


def test_socket_handshakes_count_against_the_ip_limit(crm_env: Any) -> None:
    crm_env.write_tenant("acme", hostnames=["127.0.0.1"], plugins=["chat"], settings=chat_settings(ip_requests_per_minute=3))
    srv = Server(crm_env.create_app())
    try:
        key = _public_key(crm_env)
        token = _session(srv.base, key)["token"]  # 1 request
        for _ in range(2):  # requests 2 and 3
            ws = srv.ws(f"/chat/ws?key={key}&token={token}", origin=ORIGIN)
            assert recv(ws, "ready")["type"] == "ready"
            ws.close()
        ws = srv.ws(f"/chat/ws?key={key}&token={token}", origin=ORIGIN)  # request 4: over the limit
        ws.settimeout(5)
        frame = ws.recv_data_frame(control_frame=True)[1]
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1013  # try again later
    finally:
        srv.stop()
