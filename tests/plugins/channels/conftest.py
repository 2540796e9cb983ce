"""Fixtures of the channels and email plugins' tests: tenant ``acme`` with channels and
email on (sending to an aiosmtpd server on loopback), ``beta`` without them, API
callers and a worker run as the task queue's tests run it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from crmcore import auth, db
from crmcore.testing import Api, in_tenant  # noqa: F401 - shared with the tests here
from crmcore.testing import drain_tasks as drain  # noqa: F401

PASSWORD = "channels-secret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1: answers DATA with a script of replies ("451 ...", "550 ...";
    then 250) and keeps every message it accepted. ``hold`` (an Event) makes RCPT wait
    until it is set (a send in progress, to kill its worker)."""

    def __init__(self) -> None:
        self.accepted: list[Any] = []
        self.replies: list[str] = []
        self.attempts = 0
        self.hold: threading.Event | None = None
        self.holding = threading.Event()
        server = self

        class Handler:
            async def handle_RCPT(self, srv: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                if server.hold is not None:
                    server.holding.set()
                    await asyncio.get_running_loop().run_in_executor(None, server.hold.wait, 30)
                    server.hold = None
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
                server.attempts += 1
                reply = server.replies.pop(0) if server.replies else "250 Message accepted"
                if reply.startswith("250"):
                    server.accepted.append(message_from_bytes(envelope.content, policy=default_policy))
                return reply

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


def email_settings(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {"from_address": "sales@acme.test", "from_name": "Acme Sales", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
            "smtp_security": "none", "timeout_seconds": 5, **extra}


@pytest.fixture
def env(crm_env: Any, smtp: SmtpServer) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"],
                         settings={"email": email_settings(smtp.port), "channels": {"template_default": "there", "send_attempts": 3, "retry_seconds": 0.05}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=[])
    crm_env.create_app()
    return crm_env


def token(env: Any, slug: str = "acme", role: str = "admin") -> str:
    with db.database.connection_context():
        tenant = env.tenant(slug)
        user = auth.create_user(tenant, f"{role}-{time.monotonic_ns()}@{slug}.test", PASSWORD, role=role, name=role.title())
        return auth.create_token(tenant, role, name=role, user=user)[1]


@pytest.fixture
def admin(env: Any) -> Api:
    return Api(env, "acme", token(env))


def make_lead(env: Any, name: str = "Ada Lovelace", email: str | None = None, slug: str = "acme") -> Any:
    from crmcore.sdk import Lead, create_record

    with in_tenant(env, slug):
        return create_record(Lead, {"name": name, "email": email or f"{name.split()[0].lower()}-{time.monotonic_ns()}@example.com"})


@pytest.fixture
def app(env: Any) -> Any:
    """The env's app (so ``register_plugin`` registers on it)."""
    return env.app
