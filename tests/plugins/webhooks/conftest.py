"""Fixtures of the webhooks plugin's tests: tenant ``acme`` with the plugin on (short
retry delays and timeout), ``beta`` without it, a loopback receiver that verifies
signatures with the standardwebhooks library, and a worker run as the tests of the
task queue run it."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from crmcore import auth, db
from crmcore.testing import Api, in_tenant  # noqa: F401 - shared with the tests here
from crmcore.testing import drain_tasks as drain  # noqa: F401

PASSWORD = "webhooks-secret-pw"
FAST = {"retry_schedule": [0, 0.05, 0.05, 0.05], "timeout_seconds": 0.5}


class Receiver:
    """An HTTP server on 127.0.0.1 that answers with a script of replies and records
    every request (and whether its signature verifies with each known secret)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []  # consumed one per request; then 200
        self.secrets: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = {}
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified[secret] = True
                    except WebhookVerificationError:
                        verified[secret] = False
                receiver.requests.append({"path": self.path, "headers": headers, "body": body, "json": json.loads(body), "verified": verified})
                reply = receiver.replies.pop(0) if receiver.replies else {}
                if reply.get("sleep"):
                    time.sleep(reply["sleep"])
                payload = reply.get("body", "ok").encode()
                try:
                    self.send_response(reply.get("status", 200))
                    for k, v in reply.get("headers", {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def env(crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRM_WEBHOOKS_ALLOW_PRIVATE", "1")
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["webhooks"], settings={"webhooks": FAST})
    crm_env.write_tenant("beta", name="Beta Co", plugins=[])
    crm_env.create_app()
    return crm_env


@pytest.fixture
def app(env: Any) -> Any:
    return env.app


def token(env: Any, slug: str = "acme", role: str = "admin") -> str:
    with db.database.connection_context():
        tenant = env.tenant(slug)
        user = auth.create_user(tenant, f"{role}-{time.monotonic_ns()}@{slug}.test", PASSWORD, role=role, name=role.title())
        return auth.create_token(tenant, role, name=role, user=user)[1]


@pytest.fixture
def admin(env: Any) -> Api:
    return Api(env, "acme", token(env))


def make_lead(env: Any, name: str = "Ada", slug: str = "acme") -> Any:
    from crmcore.sdk import Lead, create_record

    with in_tenant(env, slug):
        return create_record(Lead, {"name": name, "email": f"{name.lower()}-{time.monotonic_ns()}@example.com"})
