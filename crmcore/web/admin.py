"""The admin area, /app/admin: an overview, plus what every admin page shares.

The sections are modules of their own, each a blueprint under /app/admin/<section>:
``admin_users``, ``admin_teams``, ``admin_tokens``, ``admin_pipelines``, ``admin_fields`` and
``admin_plugins``. Each calls :func:`admin_only` so that only the tenant's admins reach
them (everyone else gets the 403 page); the "Admin" navigation item shows for admins only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, g, render_template, request
from marshmallow import ValidationError

from crmcore.contrib import NavItem
from crmcore.web.forms import flatten, form_input

bp = Blueprint("admin", __name__, url_prefix="/app/admin")

NAV = NavItem(label="Admin", endpoint="admin.index", order=90, icon="settings", roles=("admin",))

#: The admin area's sections, in the order of its tabs: (endpoint, label).
SECTIONS = (
    ("admin.index", "Overview"),
    ("admin_users.index", "Users"),
    ("admin_teams.index", "Teams"),
    ("admin_tokens.index", "API tokens"),
    ("admin_pipelines.index", "Pipelines"),
    ("admin_fields.index", "Custom fields"),
    ("admin_plugins.index", "Plugins"),
)


def admin_only(blueprint: Blueprint) -> Blueprint:
    """Answer 403 to signed-in users who are not admins, on every route of ``blueprint``.

    (The app has already sent people without a session to the sign-in page.)"""

    @blueprint.before_request
    def _require_admin() -> None:
        if g.get("user") is None or g.user.role != "admin":
            abort(403, "Only the tenant's admins can open the admin pages.")

    @blueprint.context_processor
    def _sections() -> dict[str, Any]:
        return {"admin_sections": SECTIONS}

    return blueprint


admin_only(bp)


def validate_form(schema: Any, *, partial: bool = False, raw: tuple[str, ...] = (), values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate the request's form with ``schema`` as :func:`crmcore.web.forms.load_form`
    does. Fields named in ``raw`` are taken exactly as typed (spaces in a password are
    part of it: sign-in does not trim them either); ``values`` replaces the input of
    fields the page reads its own way (choices typed one per line)."""
    data = form_input(schema, request.form, partial=partial)
    for key in raw:
        if key in request.form:
            data[key] = request.form[key]
    data.update(values or {})
    try:
        return schema.load(data, partial=partial), {}
    except ValidationError as exc:
        return data, flatten(exc.messages)


def form_version() -> int | None:
    """The record version the form was rendered with (hidden field ``version``), so an
    edit made meanwhile by someone else is not silently overwritten."""
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() else None


def no_store(response: Response) -> Response:
    """Keep a page out of caches (it shows a secret)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.route("/")
def index():
    """The admin overview: what each section holds, with a link to it."""
    from crmcore.app import crm_state
    from crmcore.entities.models import CustomField, Pipeline
    from crmcore.models import ApiToken, User

    crm = crm_state()
    enabled = crm.enabled(g.tenant)
    counts = {
        "users": User.select().where(User.active == True).count(),  # noqa: E712
        "admins": User.select().where((User.active == True) & (User.role == "admin")).count(),  # noqa: E712
        "tokens": ApiToken.select().where(ApiToken.revoked_at.is_null()).count(),
        "pipelines": Pipeline.select().count(),
        "fields": CustomField.select().count(),
        "plugins_on": sum(1 for name, info in crm.host.infos.items() if name in enabled and not info.always_on),
        "plugins": sum(1 for info in crm.host.infos.values() if not info.always_on),
        "broken": sum(1 for info in crm.host.infos.values() if info.error),
    }
    return render_template("crm/admin/index.html", counts=counts)
