"""Fixtures of the automation plugin's tests: tenant ``acme`` with the plugin on (fast
retries, a small depth limit), ``beta`` without it; API callers; the worker run as the
task queue's tests run it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import Api, in_tenant  # noqa: F401 - shared with the tests here
from crmcore.testing import drain_tasks as drain  # noqa: F401

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


def rule_body(**changes: Any) -> dict[str, Any]:
    body = {"name": "Tag web leads", "entity": "lead", "trigger": {"type": "record_created"},
            "conditions": {"all": [{"field": "source", "op": "eq", "value": "form"}]},
            "steps": [{"action": "add_tag", "params": {"tag": "web"}}], "status": "active"}
    body.update(changes)
    return body
