"""Portable SQL pieces shared by the metrics: the filtered base queries, date
differences, the stage rank of a pipeline and the names of stages and users.

Every base query is tenant-scoped (TenantModel) and limited to what the caller may see
(agents with ``agents_see_own_only``), so every figure and its drill-down agree.
"""

from __future__ import annotations

from typing import Any

import peewee
from peewee import fn

from crm_plugins.analytics.filters import Filters
from crmcore import sdk
from crmcore.sdk import Activity, Deal, Lead, Pipeline, Stage, User

#: Key of a row about records without an owner (and of the total row: ``all``).
NO_OWNER = "none"
ALL = "all"


def seconds_between(later: Any, earlier: Any) -> Any:
    """``later - earlier`` in seconds, as a float expression on SQLite and PostgreSQL."""
    if sdk.is_postgres():
        return fn.date_part("epoch", later - earlier)
    return (fn.julianday(later) - fn.julianday(earlier)) * 86400.0


def owned_by(column: Any, f: Filters) -> Any:
    """``column`` (an owner or user id) matches the owner and team filters (True without)."""
    condition: Any = True
    if f.owner_id is not None:
        condition = column == f.owner_id
    if f.team_id is not None:
        members = column.in_(User.select(User.id).where(User.team == f.team_id))
        condition = members if condition is True else (condition & members)
    return condition


def deals(f: Filters, *columns: Any) -> Any:
    """Deals matching the filters (currency, owner, pipeline, source) the caller may see."""
    return deal_filters(Deal.select(*columns), f)


def deal_filters(query: Any, f: Filters) -> Any:
    """``query`` (which selects or joins ``Deal``) limited to the filters' deals."""
    query = sdk.visible(query, Deal).where(Deal.currency == f.currency)
    if f.owner_id is not None or f.team_id is not None:
        query = query.where(owned_by(Deal.owner, f))
    if f.pipeline_id is not None:
        query = query.where(Deal.pipeline == f.pipeline_id)
    if f.source is not None:
        query = query.where(Deal.source == f.source)
    return query


def leads(f: Filters, *columns: Any) -> Any:
    """Leads matching the filters (owner, source) the caller may see, created in the range."""
    query = sdk.visible(Lead.select(*columns), Lead).where(f.in_range(Lead.created_at))
    if f.owner_id is not None or f.team_id is not None:
        query = query.where(owned_by(Lead.owner, f))
    if f.source is not None:
        query = query.where(Lead.source == f.source)
    return query


def activities(f: Filters, *columns: Any) -> Any:
    """Activities that occurred in the range (logged by the owner filter's user) the caller may see."""
    query = sdk.visible_linked(Activity.select(*columns), Activity).where(f.in_range(Activity.occurred_at))
    if f.owner_id is not None or f.team_id is not None:
        query = query.where(owned_by(Activity.user, f))
    return query


def funnel_pipeline(f: Filters) -> Pipeline | None:
    """The pipeline a stage-by-stage metric is about: the filter's, else the default one."""
    if f.pipeline_id is not None:
        return Pipeline.get_or_none(Pipeline.id == f.pipeline_id)
    return Pipeline.select().order_by(Pipeline.is_default.desc(), Pipeline.order, Pipeline.id).first()


def stage_rank(stages: list[Stage], column: Any) -> Any:
    """A CASE giving each stage's position (1, 2 ...) in board order, NULL for others."""
    return peewee.Case(column, [(s.id, i) for i, s in enumerate(stages, start=1)], None)


def user_names(ids: Any) -> dict[int, str]:
    """Display names (name, else email) of some users, in one query."""
    wanted = [i for i in set(ids) if i is not None]
    if not wanted:
        return {}
    return {uid: name or email for uid, name, email in User.select(User.id, User.name, User.email).where(User.id.in_(wanted)).tuples()}


def owner_key(owner_id: int | None) -> str:
    return str(owner_id) if owner_id is not None else NO_OWNER


def int_key(key: str) -> int:
    """A row key that is an id; ValueError (a 422) for anything else, huge ids included."""
    value = int(key)
    if not 0 < value < 2**31:
        raise ValueError(key)
    return value


def owner_condition(column: Any, key: str) -> Any:
    """``column`` matches a row key made by :func:`owner_key` (``all`` matches everything)."""
    if key == ALL:
        return True
    if key == NO_OWNER:
        return column.is_null()
    return column == int_key(key)
