"""Fixtures of the insights plugin's tests: tenant ``acme`` with insights (and kanban)
on, ``beta`` without."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from crmcore import db
from crmcore.db import utcnow
from crmcore.models import Task as QueuedTask
from crmcore.tasks import Worker

NOW = utcnow().replace(microsecond=0)


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["insights", "kanban"], settings={"insights": {"debounce_seconds": 0}})
    crm_env.write_tenant("beta", plugins=["kanban"])
    crm_env.create_app()
    return crm_env


@contextlib.contextmanager
def in_tenant(env: Any, slug: str = "acme") -> Iterator[Any]:
    """An app context, a connection and ``slug`` as the current tenant."""
    tenant = env.tenant(slug)
    with env.app.app_context(), db.connection(), db.tenant_context(tenant):
        yield tenant


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def stage(name: str) -> Any:
    from crmcore.entities import service
    from crmcore.sdk import Stage

    pipeline = service.ensure_default_pipeline(db.current_tenant())
    return Stage.get(Stage.pipeline == pipeline.id, Stage.name == name)


def make_deal(title: str = "Deal", stage_name: str = "Proposal", **data: Any) -> Any:
    from crmcore.sdk import Deal, create_record

    st = stage(stage_name)
    return create_record(Deal, {"title": title, "pipeline": st.pipeline_id, "stage": st.id, "value": 1000, **data})


def drain(env: Any, limit: int = 200) -> int:
    """Run every due task (bounded)."""
    worker = Worker(env.crm, worker_id="test-worker")
    ran = 0
    with env.app.app_context():
        for _ in range(limit):
            with db.database.connection_context():
                if worker.run_one() is None:
                    break
                ran += 1
    return ran


def queued(kind: str) -> int:
    return QueuedTask.select().where(QueuedTask.kind == kind, QueuedTask.status == "queued").count()
