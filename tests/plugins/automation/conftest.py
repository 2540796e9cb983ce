"""Fixtures of the automation plugin's tests: tenant ``acme`` with the plugin on (fast
retries, a small depth limit), ``beta`` without it; API callers; the worker run as the
task queue's tests run it."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.models import Task as QueuedTask
from crmcore.tasks import Worker

FAST = {"retry_base_seconds": 0, "step_attempts": 2, "max_depth": 3, "runs_per_record_per_hour": 5}


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["automation"], settings={"automation": FAST})
    crm_env.write_tenant("beta", name="Beta Co", plugins=[])
    crm_env.write_tenant("gamma", name="Gamma AG", plugins=["automation", "scoring"], settings={"automation": FAST, "scoring": {"debounce_seconds": 0}})
    crm_env.create_app()
    return crm_env


@pytest.fixture
def app(env: Any) -> Any:
    return env.app


class Api:
    """Calls /api/v1 of one tenant with one token."""

    def __init__(self, env: Any, slug: str, token: str):
        self.client, self.token = env.client(slug), token

    def __call__(self, method: str, url: str, json: Any = None, status: int | None = None) -> Any:
        response = self.client.open(f"/api/v1{url}", method=method, json=json, headers={"Authorization": f"Bearer {self.token}"})
        if status is None:
            assert response.status_code < 400, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        else:
            assert response.status_code == status, f"{method} {url}: {response.status_code} {response.get_data(as_text=True)}"
        return response.get_json(silent=True)


def make_user(env: Any, slug: str = "acme", role: str = "admin") -> Any:
    with env.app.app_context(), db.database.connection_context():
        return auth.create_user(env.tenant(slug), f"{role}-{uuid.uuid4().hex[:6]}@{slug}.test", "secret-pw", role=role, name=f"{role.title()} {uuid.uuid4().hex[:3]}")


def api_for(env: Any, user: Any, slug: str = "acme") -> Api:
    with env.app.app_context(), db.database.connection_context():
        return Api(env, slug, auth.create_token(env.tenant(slug), user.role, name="t", user=user)[1])


@pytest.fixture
def admin_user(env: Any) -> Any:
    return make_user(env)


@pytest.fixture
def admin(env: Any, admin_user: Any) -> Api:
    return api_for(env, admin_user)


@contextlib.contextmanager
def in_tenant(env: Any, slug: str = "acme") -> Iterator[Any]:
    tenant = env.tenant(slug)
    with env.app.app_context(), db.connection(), db.tenant_context(tenant):
        yield tenant


def drain(env: Any, timeout: float = 10.0) -> int:
    """Run the worker until no task is queued or running (waiting for ones due soon)."""
    worker = Worker(env.crm, worker_id="test-worker")
    ran = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.database.connection_context():
            task = worker.run_one()
            if task is not None:
                ran += 1
                continue
            if not QueuedTask.select().where(QueuedTask.status.in_(["queued", "running"])).exists():
                return ran
        time.sleep(0.02)
    raise AssertionError("tasks still queued after the timeout")


def rule_body(**changes: Any) -> dict[str, Any]:
    body = {"name": "Tag web leads", "entity": "lead", "trigger": {"type": "record_created"},
            "conditions": {"all": [{"field": "source", "op": "eq", "value": "form"}]},
            "steps": [{"action": "add_tag", "params": {"tag": "web"}}], "status": "active"}
    body.update(changes)
    return body
