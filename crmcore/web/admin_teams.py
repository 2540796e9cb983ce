"""/app/admin/teams: the tenant's teams, and who is in each.

Admins add, rename and delete teams here; a user's team is set on their page
(/app/admin/users/<id>, "Team"). The rules are the domain's (:mod:`crmcore.entities.teams`):
names unique in the tenant, every change audited, a deleted team's members kept without one.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from crmcore.entities import teams
from crmcore.entities.errors import Conflict, Invalid
from crmcore.models import Team, User
from crmcore.web.admin import admin_only

bp = admin_only(Blueprint("admin_teams", __name__, url_prefix="/app/admin/teams"))


def team_or_404(team_id: int) -> Team:
    team = Team.get_or_none(Team.id == team_id)  # tenant-scoped: another tenant's id is 404
    if team is None:
        abort(404, f"No team {team_id} in this tenant.")
    return team


def render_index(errors: dict[str, dict[str, list[str]]] | None = None, form: dict[str, str] | None = None, status: int = 200):
    """Every team by name with its active members (two queries)."""
    rows = list(Team.select().order_by(Team.name, Team.id))
    members: dict[int, list[User]] = {team.id: [] for team in rows}
    for person in User.select().where(User.team.is_null(False) & (User.active == True)).order_by(User.name, User.email):  # noqa: E712
        members.setdefault(person.team_id, []).append(person)
    return render_template("crm/admin/teams.html", teams=rows, members=members, errors=errors or {}, form=form or {}), status


@bp.route("/", methods=["GET", "POST"])
def index():
    """The teams; POST adds one."""
    if request.method == "GET":
        return render_index()
    name = request.form.get("name", "")
    try:
        team = teams.create_team(name)
    except Invalid as exc:
        return render_index({"new": {k: list(v) for k, v in exc.errors.items()}}, {"name": name}, 422)
    except Conflict as exc:
        return render_index({"new": {"name": [str(exc) or teams.DUPLICATE_TEAM]}}, {"name": name}, 409)
    flash(f"Team {team.name} added. Put people in it on their user page.")
    return redirect(url_for(".index"))


@bp.route("/<int:team_id>", methods=["POST"])
def rename(team_id: int):
    """Rename a team."""
    team = team_or_404(team_id)
    name = request.form.get("name", "")
    try:
        teams.rename_team(team, name)
    except Invalid as exc:
        return render_index({f"team-{team.id}": {k: list(v) for k, v in exc.errors.items()}}, status=422)
    except Conflict:
        return render_index({f"team-{team.id}": {"name": [teams.DUPLICATE_TEAM]}}, status=409)
    flash(f"Saved team {team.name}.")
    return redirect(url_for(".index"))


@bp.route("/<int:team_id>/delete", methods=["POST"])
def delete(team_id: int):
    """Delete a team (its members stay, without a team)."""
    team = team_or_404(team_id)
    teams.delete_team(team)
    flash(f"Team {team.name} deleted; its members have no team now.")
    return redirect(url_for(".index"))
