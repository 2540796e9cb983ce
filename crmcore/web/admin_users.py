"""/app/admin/users: the people who sign in to this tenant, and their roles.

Admins add users with an initial password, change names and roles, deactivate and
reactivate them and reset passwords. The rules are the domain's
(:mod:`crmcore.entities.users`, shared with the ``crm users`` commands): the tenant
always keeps an active admin, and changes are written to the tenant's audit trail
(entity ``user``), passwords never.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError, fields, validate

from crmcore.api import common
from crmcore.api.fields import EmailAddress
from crmcore.entities import teams, users
from crmcore.entities.errors import Conflict, Invalid
from crmcore.entities.users import DUPLICATE, LAST_ADMIN, LastAdmin  # noqa: F401 - importable here as before
from crmcore.models import ROLES, User
from crmcore.web.admin import admin_only, validate_form

bp = admin_only(Blueprint("admin_users", __name__, url_prefix="/app/admin/users"))

PAGE_SIZE = 100
MIN_PASSWORD = 8
ROLE_HELP = {
    "admin": "everything, including these admin pages",
    "manager": "all records, pipelines, imports and exports",
    "agent": "works on records (optionally only their own)",
    "viewer": "reads records",
}
ROLE_OPTIONS = [(role, f"{role}: {ROLE_HELP[role]}") for role in ROLES]


class RequiredEmail(EmailAddress):
    """An email address that must be given (EmailAddress reads "" as no address)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        email = super()._deserialize(value, attr, data, **kwargs)
        if not email:
            raise ValidationError("Enter an email address.")
        if len(email) > 254:
            raise ValidationError("At most 254 characters.")
        return email


def password_field() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=MIN_PASSWORD, max=200, error=f"At least {MIN_PASSWORD} characters (at most 200)."))


class UserCreateForm(Schema):
    email = RequiredEmail(required=True)
    name = fields.String(load_default="", validate=validate.Length(max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = password_field()


class UserChangeForm(Schema):
    name = fields.String(load_default="", validate=validate.Length(max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class PasswordForm(Schema):
    password = password_field()


def user_or_404(user_id: int) -> User:
    user = User.get_or_none(User.id == user_id)  # tenant-scoped: another tenant's id is 404
    if user is None:
        abort(404, f"No user {user_id} in this tenant.")
    return user


# The rules (last admin, audit) are the domain's: crmcore.entities.users.
change_user = users.change_user

def render_user(user: User, errors: dict[str, dict[str, list[str]]] | None = None, form: Any = None, status: int = 200):
    errors = errors or {}
    return render_template("crm/admin/user.html", person=user, role_options=ROLE_OPTIONS, team_options=teams.team_options(), errors=errors, form=form or {}, min_password=MIN_PASSWORD), status


@bp.route("/")
def index():
    """Every user of the tenant, by email (a page of 100 at a time)."""
    query = User.select()
    show = request.args.get("show", "all")
    if show == "active":
        query = query.where(User.active == True)  # noqa: E712
    elif show == "inactive":
        query = query.where(User.active == False)  # noqa: E712
    rows, next_cursor = common.keyset_page(query, User, "email", PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("crm/admin/users.html", users=rows, next_cursor=next_cursor, show=show)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Add a user with an initial password (they sign in with it and change nothing else:
    there is no email sending in the core, so hand the password over yourself)."""
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {"role": "agent"}
    status = 200
    if request.method == "POST":
        data, errors = validate_form(UserCreateForm(), raw=("password",))
        form = {k: v for k, v in data.items() if k != "password"}
        status = 422
        if not errors:
            try:
                user = users.create_user(data["email"], data["password"], role=data["role"], name=data["name"])
            except Conflict:  # the email is taken (perhaps just now, by someone else)
                errors, status = {"email": [DUPLICATE]}, 409
            except Invalid as exc:
                errors = {k: list(v) for k, v in exc.errors.items()}
            else:
                flash(f"User {user.email} added as {user.role}. Give them their initial password.")
                return redirect(url_for(".index"))
    return render_template("crm/admin/user_new.html", role_options=ROLE_OPTIONS, errors=errors, form=form, min_password=MIN_PASSWORD), status


@bp.route("/<int:user_id>", methods=["GET", "POST"])
def edit(user_id: int):
    """A user's name and role."""
    user = user_or_404(user_id)
    if request.method == "GET":
        return render_user(user)
    data, errors = validate_form(UserChangeForm())
    if errors:
        return render_user(user, {"profile": errors}, form=data, status=422)
    try:
        changes = change_user(user, {"name": data["name"] or user.name, "role": data["role"]})
    except LastAdmin:
        return render_user(user, {"profile": {"role": [LAST_ADMIN]}}, form=data, status=409)
    flash(f"Saved {user.email}." if changes else "Nothing changed.")
    if user.id == g.user.id and user.role != "admin":
        flash("You are no longer an admin of this tenant.")
        return redirect(url_for("core.dashboard"))
    return redirect(url_for(".edit", user_id=user.id))


@bp.route("/<int:user_id>/active", methods=["POST"])
def set_active(user_id: int):
    """Deactivate (they are signed out at their next request) or reactivate a user."""
    user = user_or_404(user_id)
    active = request.form.get("active") == "1"
    try:
        change_user(user, {"active": active})
    except LastAdmin:
        return render_user(user, {"status": {"_form": [LAST_ADMIN]}}, status=409)
    flash(f"{user.email} is {'active again' if active else 'deactivated: they can no longer sign in'}.")
    if user.id == g.user.id and not active:
        return redirect(url_for("auth.login"))
    return redirect(url_for(".edit", user_id=user.id))


@bp.route("/<int:user_id>/password", methods=["POST"])
def reset_password(user_id: int):
    """Set a new password for a user (their current sessions stay signed in)."""
    user = user_or_404(user_id)
    data, errors = validate_form(PasswordForm(), raw=("password",))
    if errors:
        return render_user(user, {"password": errors}, status=422)
    users.set_password(user, data["password"])
    flash(f"New password set for {user.email}.")
    return redirect(url_for(".edit", user_id=user.id))


@bp.route("/<int:user_id>/team", methods=["POST"])
def set_team(user_id: int):
    """Put a user in a team, or in none (empty choice)."""
    user = user_or_404(user_id)
    raw = request.form.get("team_id", "").strip()
    if raw and not raw.isdigit():
        return render_user(user, {"team": {"team_id": ["Choose a team from the list."]}}, status=422)
    try:
        changed = teams.set_team(user, int(raw) if raw else None)
    except Invalid as exc:
        return render_user(user, {"team": {k: list(v) for k, v in exc.errors.items()}}, status=422)
    flash(("Team saved for " if changed else "Nothing changed for ") + user.email + ".")
    return redirect(url_for(".edit", user_id=user.id))
