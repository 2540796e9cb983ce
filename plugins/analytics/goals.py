"""Goals per user, team or everyone, and period: revenue won, deals won or activities, with
attainment and pacing. Attainment of any number of goals takes two queries (one over the
won deals, one over the activities), each goal joined to the records of its own period.
A team goal (the core's teams, ``User.team``) counts the records of the team's members
of today; a goal with neither user nor team counts everyone's.

Pacing compares attainment with the share of the period that has passed: a goal is
``on track`` when attainment ≥ elapsed share, ``behind`` otherwise, ``met`` once reached,
``missed`` when the period is over without it, ``upcoming`` before it starts.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import peewee
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from peewee import fn

from crm_plugins.analytics.deal_metrics import in_stages
from crm_plugins.analytics.filters import SANE_DAYS, local_midnight_utc
from crm_plugins.analytics.models import GOAL_KINDS, Goal
from crm_plugins.analytics.registry import money
from crmcore import sdk
from crmcore.sdk import Activity, Deal, Stage, Team, User


class GoalInput(Schema):
    user_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "The rep; with neither user_id nor team_id the goal counts everyone's records."})
    team_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "The team (its members' records); excludes user_id."})
    kind = fields.String(required=True, validate=validate.OneOf(GOAL_KINDS))
    target = fields.Decimal(required=True, places=2, validate=validate.Range(min=0, min_inclusive=False, max=10**15), as_string=True)
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"), metadata={"description": "Revenue goals: the tenant's default currency without one."})
    first_day = fields.Date(required=True, validate=SANE_DAYS)
    last_day = fields.Date(required=True, validate=SANE_DAYS)

    @validates_schema
    def _period(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("user_id") is not None and data.get("team_id") is not None:
            raise ValidationError("A goal is for a user or a team, not both.", "team_id")
        if "first_day" not in data or "last_day" not in data:
            return  # reported by the fields themselves
        if data["last_day"] < data["first_day"]:
            raise ValidationError("Must not be before first_day.", "last_day")
        if (data["last_day"] - data["first_day"]).days > 366 * 2:
            raise ValidationError("A goal's period is at most two years.", "last_day")


def create(data: dict[str, Any]) -> Goal:
    tenant = sdk.current_tenant()
    if data.get("user_id") is not None and not User.select().where(User.id == data["user_id"]).exists():
        raise ValidationError({"user_id": ["No such user in this tenant."]})
    if data.get("team_id") is not None and not Team.select().where(Team.id == data["team_id"]).exists():
        raise ValidationError({"team_id": ["No such team in this tenant."]})
    zone = zoneinfo.ZoneInfo(sdk.settings(tenant, "analytics")["time_zone"])
    currency = (data.get("currency") or sdk.settings(tenant, "core").get("default_currency") or "EUR") if data["kind"] == "revenue_won" else None
    with sdk.atomic():
        return Goal.create(
            user=data.get("user_id"), team=data.get("team_id"), kind=data["kind"], target=data["target"], currency=currency, first_day=data["first_day"], last_day=data["last_day"],
            start_at=local_midnight_utc(data["first_day"], zone), end_at=local_midnight_utc(data["last_day"] + dt.timedelta(days=1), zone),
        )


def _owner_matches(column: Any) -> Any:
    """``column`` (a record's owner) counts for the goal: everyone's, the user's, or a member's of the team."""
    members = User.select(User.id).where(User.team == Goal.team)
    everyone = Goal.user.is_null() & Goal.team.is_null()
    return everyone | (column == Goal.user) | (Goal.team.is_null(False) & column.in_(members))


def progress(goals: list[Goal], now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Each goal with its actual figure, attainment, elapsed share and pacing (two queries)."""
    if not goals:
        return []
    ids = [g.id for g in goals]
    won = (
        Goal.select(Goal.id, fn.COUNT(Deal.id), fn.SUM(Deal.value))
        .join(Deal, peewee.JOIN.LEFT_OUTER, on=(_owner_matches(Deal.owner) & (Deal.closed_at >= Goal.start_at) & (Deal.closed_at < Goal.end_at) & in_stages(Stage.is_won == True) & ((Goal.currency.is_null()) | (Deal.currency == Goal.currency)) & (Deal.tenant == Goal.tenant)))  # noqa: E712
        .where(Goal.id.in_(ids) & (Goal.kind != "activities"))
        .group_by(Goal.id)
        .tuples()
    )
    acts = (
        Goal.select(Goal.id, fn.COUNT(Activity.id))
        .join(Activity, peewee.JOIN.LEFT_OUTER, on=(_owner_matches(Activity.user) & (Activity.occurred_at >= Goal.start_at) & (Activity.occurred_at < Goal.end_at) & (Activity.tenant == Goal.tenant)))
        .where(Goal.id.in_(ids) & (Goal.kind == "activities"))
        .group_by(Goal.id)
        .tuples()
    )
    actual: dict[int, Any] = {}
    kinds = {g.id: g.kind for g in goals}
    for goal_id, count, value in won:
        actual[goal_id] = money(value) if kinds[goal_id] == "revenue_won" else int(count)
    for goal_id, count in acts:
        actual[goal_id] = int(count)
    now = now or sdk.utcnow()
    team_names = dict(Team.select(Team.id, Team.name).where(Team.id.in_([g.team_id for g in goals if g.team_id])).tuples()) if any(g.team_id for g in goals) else {}
    names = {uid: name or email for uid, name, email in User.select(User.id, User.name, User.email).where(User.id.in_([g.user_id for g in goals if g.user_id])).tuples()} if any(g.user_id for g in goals) else {}
    out = []
    for g in goals:
        figure = actual.get(g.id, 0)
        attainment = round(float(figure) / float(g.target), 4)
        elapsed = min(1.0, max(0.0, (now - g.start_at).total_seconds() / (g.end_at - g.start_at).total_seconds()))
        if attainment >= 1:
            pacing = "met"
        elif now >= g.end_at:
            pacing = "missed"
        elif now < g.start_at:
            pacing = "upcoming"
        else:
            pacing = "on track" if attainment >= elapsed else "behind"
        out.append({
            "id": g.id, "user_id": g.user_id, "team_id": g.team_id, "who": _who(g, names, team_names), "kind": g.kind, "currency": g.currency,
            "target": money(g.target), "first_day": g.first_day, "last_day": g.last_day, "actual": figure, "attainment": attainment, "elapsed": round(elapsed, 4), "pacing": pacing,
        })
    return out


def _who(goal: Goal, names: dict[int, str], team_names: dict[int, str]) -> str:
    if goal.user_id:
        return names.get(goal.user_id, "?")
    if goal.team_id:
        return "Team " + team_names.get(goal.team_id, "?")
    return "Everyone"


def visible_goals(user_id: int | None, restricted: bool) -> list[Goal]:
    """Goals in their period order; a rep restricted to their own records sees theirs,
    their team's and everyone's."""
    query = Goal.select().order_by(Goal.first_day.desc(), Goal.id)
    if restricted:
        own_team = User.select(User.team).where(User.id == user_id)
        query = query.where((Goal.user.is_null() & Goal.team.is_null()) | (Goal.user == user_id) | Goal.team.in_(own_team))
    return list(query.limit(500))
