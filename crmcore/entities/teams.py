"""Teams of a tenant's users, as admins manage them (the admin page /app/admin/teams):
a user belongs to at most one team. Every change is audited (entity ``team``, and
``user`` for a member's team); a team's name is unique in its tenant.

The core only keeps who is in which team; what a team means (analytics filters and goals
per team ...) is for plugins, which read ``Team`` and ``User.team`` through the SDK.
"""

from __future__ import annotations

import peewee

from crmcore import db
from crmcore.entities import service
from crmcore.entities.context import Context
from crmcore.entities.errors import Conflict, Invalid
from crmcore.models import Team, User

DUPLICATE_TEAM = "A team with this name already exists."


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid({"name": ["Enter the team's name."]})
    if len(name) > 100:
        raise Invalid({"name": ["At most 100 characters."]})
    return name


def create_team(name: str, ctx: Context | None = None) -> Team:
    """Add a team; Invalid for an empty name, Conflict when the name is taken."""
    name = _clean_name(name)
    if Team.select().where(peewee.fn.LOWER(Team.name) == name.lower()).exists():
        raise Conflict(DUPLICATE_TEAM, field="name")
    try:
        with db.atomic():
            team = Team.create(name=name)
            service.audit("team", team.id, "create", {"name": [None, name]}, ctx=ctx)
    except peewee.IntegrityError as exc:  # added meanwhile by someone else
        raise Conflict(DUPLICATE_TEAM, field="name") from exc
    return team


def rename_team(team: Team, name: str, ctx: Context | None = None) -> None:
    """Give the team a new name (unique in the tenant)."""
    name = _clean_name(name)
    if name == team.name:
        return
    if Team.select().where((peewee.fn.LOWER(Team.name) == name.lower()) & (Team.id != team.id)).exists():
        raise Conflict(DUPLICATE_TEAM, field="name")
    try:
        with db.atomic():
            Team.update(name=name).where(Team.id == team.id).execute()
            service.audit("team", team.id, "update", {"name": [team.name, name]}, ctx=ctx)
    except peewee.IntegrityError as exc:
        raise Conflict(DUPLICATE_TEAM, field="name") from exc
    team.name = name


def delete_team(team: Team, ctx: Context | None = None) -> None:
    """Delete a team; its members stay, without a team."""
    with db.atomic():
        User.update(team=None).where(User.team == team.id).execute()
        Team.delete().where(Team.id == team.id).execute()
        service.audit("team", team.id, "delete", {"name": [team.name, None]}, ctx=ctx)


def set_team(user: User, team_id: int | None, ctx: Context | None = None) -> bool:
    """Put the user in team ``team_id`` (None: no team); Invalid for a team that is not
    this tenant's. False when nothing changed."""
    if team_id is not None and not Team.select().where(Team.id == team_id).exists():
        raise Invalid({"team_id": ["No such team in this tenant."]})
    if user.team_id == team_id:
        return False
    with db.atomic():
        User.update(team=team_id).where(User.id == user.id).execute()
        service.audit("user", user.id, "update", {"team_id": [user.team_id, team_id]}, ctx=ctx)
    user.team = team_id
    return True


def team_options() -> list[tuple[int, str]]:
    """(id, name) of the tenant's teams by name, for a select."""
    return list(Team.select(Team.id, Team.name).order_by(Team.name, Team.id).tuples())
