"""Fixtures for the kanban plugin's tests: a tenant with the plugin on, a bearer-token API
caller and a few deals spread over the default pipeline's stages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from crmcore import auth, db

PASSWORD = "kanban-secret-pw"


class Api:
    """Calls /api/v1 of one tenant as one token; asserts the status when told."""

    def __init__(self, env: Any, slug: str, token: str):
        self.client, self.token = env.client(slug), token

    def __call__(self, method: str, url: str, json: Any = None, status: int | None = None, headers: dict[str, str] | None = None) -> Any:
        response = self.client.open(f"/api/v1{url}", method=method, json=json, headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        if status is None:
            assert response.status_code < 400, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        else:
            assert response.status_code == status, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        self.last = response
        return response.get_json(silent=True)


@pytest.fixture
def kanban_env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"])
    crm_env.write_tenant("other", name="Other Inc", plugins=["kanban"])
    crm_env.write_tenant("plain", name="Plain Co")
    crm_env.create_app()
    return crm_env


def user_token(env: Any, slug: str, name: str, role: str = "admin") -> tuple[Any, str]:
    with db.database.connection_context():
        tenant = env.tenant(slug)
        user = auth.create_user(tenant, f"{name.split()[0].lower()}-{role}@{slug}.test", PASSWORD, role=role, name=name)
        return user, auth.create_token(tenant, role, name=name, user=user)[1]


@pytest.fixture
def admin(kanban_env: Any) -> Any:
    user, token = user_token(kanban_env, "acme", "Ada Admin")
    api = Api(kanban_env, "acme", token)
    api.user = user
    return api


@pytest.fixture
def pipeline(admin: Any) -> dict[str, Any]:
    """The default pipeline (created by the first deal) with its stages by name."""
    admin("POST", "/deals", json={"title": "Seed"})
    data = admin("GET", "/pipelines")["items"][0]
    data["by_name"] = {s["name"]: s for s in data["stages"]}
    return data


@contextlib.contextmanager
def count_queries() -> Iterator[list[str]]:
    """The SQL statements run while the block runs."""
    database = db.database.obj
    statements: list[str] = []
    original = database.execute_sql

    def execute_sql(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    database.execute_sql = execute_sql
    try:
        yield statements
    finally:
        del database.execute_sql


@pytest.fixture
def app(kanban_env: Any) -> Any:
    """The kanban tenants' app (so that ``register_plugin`` registers on the app the
    ``admin`` client talks to, instead of building a second one)."""
    return kanban_env.app
