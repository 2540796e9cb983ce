"""Shared helpers of the chat plugin's tests."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from crmcore import db

ORIGIN = "https://shop.example"


class Chat:
    """A tenant with the chat on, its widget key, and a visitor's requests."""

    def __init__(self, crm_env: Any, slug: str = "acme") -> None:
        self.env = crm_env
        self.slug = slug
        self.client = crm_env.client(slug)
        with crm_env.app.test_request_context(base_url=f"http://{slug}.test"), db.database.connection_context():
            from crm_plugins.chat import service

            self.key = service.public_key(crm_env.tenant(slug))

    def headers(self, token: str | None = None, origin: str | None = ORIGIN) -> dict[str, str]:
        h = {"X-Chat-Key": self.key}
        if token:
            h["X-Chat-Token"] = token
        if origin:
            h["Origin"] = origin
        return h

    def start(self, **fields: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/chat/public/session", json=fields, headers=self.headers())
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def say(self, token: str, content: str, client_id: str | None = None) -> Any:
        return self.client.post("/api/v1/chat/public/messages", json={"content": content, "client_id": client_id}, headers=self.headers(token))


def chat_settings(**changes: Any) -> dict[str, Any]:
    base = {"allowed_origins": [ORIGIN], "assistant_delay_seconds": 0}
    base.update(changes)
    return {"chat": base}


@pytest.fixture
def chat(crm_env: Any) -> Chat:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["chat"], settings=chat_settings())
    crm_env.create_app()
    return Chat(crm_env)


def run_tasks(crm_env: Any) -> int:
    """Run every due task now; how many ran."""
    from crmcore.tasks import Worker

    ran = 0
    with crm_env.app.app_context(), db.database.connection_context():
        worker = Worker(crm_env.crm)
        while worker.run_one() is not None:
            ran += 1
    return ran


@contextlib.contextmanager
def in_tenant(crm_env: Any, slug: str = "acme") -> Any:
    """A database connection and the tenant as the current tenant (for assertions)."""
    tenant = crm_env.tenant(slug)
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(tenant):
        yield tenant
