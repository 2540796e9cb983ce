"""Fixtures of the scoring plugin's tests: tenant ``acme`` with scoring on, ``beta`` without."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from crmcore import db
from crmcore.db import utcnow

NOW = utcnow().replace(microsecond=0)


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["scoring"], settings={"scoring": {"debounce_seconds": 0}})
    crm_env.write_tenant("beta", plugins=[])
    crm_env.create_app()
    return crm_env


@contextlib.contextmanager
def in_tenant(env: Any, slug: str = "acme") -> Iterator[Any]:
    """An app context, a connection and ``slug`` as the current tenant."""
    tenant = env.tenant(slug)
    with env.app.app_context(), db.connection(), db.tenant_context(tenant):
        yield tenant


def make_lead(**data: Any) -> Any:
    from crmcore.entities import service
    from crmcore.entities.models import Lead

    data.setdefault("name", "Lead")
    return service.create(Lead, data)


def make_deal(lead: Any, probability: int, value: float, stage_name: str = "Qualified") -> Any:
    from crmcore.entities import service
    from crmcore.entities.models import Deal, Stage

    pipeline = service.ensure_default_pipeline(db.current_tenant())
    stage = Stage.get(Stage.pipeline == pipeline.id, Stage.name == stage_name)
    return service.create(Deal, {"title": f"Deal of {lead.name}", "lead": lead.id, "pipeline": pipeline.id, "stage": stage.id, "probability": probability, "value": value})


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


class QueryCounter:
    """Counts the SQL statements the database runs (wraps ``execute_sql``)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @contextlib.contextmanager
    def counting(self) -> Iterator[QueryCounter]:
        database = db.database.obj
        original = database.execute_sql

        def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(sql)
            return original(sql, params, *args, **kwargs)

        database.execute_sql = execute_sql
        try:
            yield self
        finally:
            del database.execute_sql
