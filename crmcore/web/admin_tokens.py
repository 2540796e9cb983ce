"""/app/admin/tokens: API tokens for programs (``Authorization: Bearer <token>``).

A token is created with a name and a role and shown exactly once, on the page that
answers the form (sent with ``Cache-Control: no-store``); only its hash and an
8-character prefix are stored (crmcore.auth). Revoking is immediate and final.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from marshmallow import Schema, fields, validate

from crmcore import auth, db
from crmcore.api import common
from crmcore.entities import service, users
from crmcore.models import ROLES, ApiToken
from crmcore.web.admin import admin_only, no_store, validate_form
from crmcore.web.admin_users import ROLE_OPTIONS

bp = admin_only(Blueprint("admin_tokens", __name__, url_prefix="/app/admin/tokens"))

PAGE_SIZE = 100


class TokenForm(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"description": "What the token is for."})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


def token_or_404(token_id: int) -> ApiToken:
    token = ApiToken.get_or_none(ApiToken.id == token_id)  # tenant-scoped
    if token is None:
        abort(404, f"No API token {token_id} in this tenant.")
    return token


@bp.route("/")
def index():
    """The tenant's tokens, newest first, revoked ones included (for the record)."""
    query = ApiToken.select()
    show = request.args.get("show", "all")
    if show == "active":
        query = query.where(ApiToken.revoked_at.is_null())
    elif show == "revoked":
        query = query.where(ApiToken.revoked_at.is_null(False))
    rows, next_cursor = common.keyset_page(query, ApiToken, "-created_at", PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("crm/admin/tokens.html", tokens=rows, next_cursor=next_cursor, show=show)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Create a token and show its secret, once."""
    errors: dict[str, list[str]] = {}
    form = {"role": "viewer"}
    if request.method == "POST":
        data, errors = validate_form(TokenForm())
        form = data
        if not errors:
            with db.atomic():
                row, secret = auth.create_token(g.tenant, data["role"], name=data["name"])
                service.audit("api_token", row.id, "create", {"name": [None, row.name], "role": [None, row.role], "prefix": [None, row.prefix]})
            response = make_response(render_template("crm/admin/token_created.html", token=row, secret=secret), 201)
            return no_store(response)
    status = 422 if errors else 200
    return render_template("crm/admin/token_new.html", role_options=ROLE_OPTIONS, errors=errors, form=form), status


@bp.route("/<int:token_id>/revoke", methods=["GET", "POST"])
def revoke(token_id: int):
    """Ask, then revoke: programs using the token get 401 from then on."""
    token = token_or_404(token_id)
    if request.method == "GET":
        return render_template("crm/admin/confirm.html", title=f"Revoke the token “{token.name or token.prefix}”?",
                               message=f"Programs that use the token {token.prefix}… (role {token.role}) get 401 Unauthorized from now on. This cannot be undone.",
                               action=url_for(".revoke", token_id=token.id), button="Revoke token", cancel=url_for(".index"), already=token.revoked_at is not None)
    if token.revoked_at is not None:
        flash(f"The token {token.prefix}… was already revoked.")
        return redirect(url_for(".index"))
    users.revoke_token(token)  # audited; shared with `crm tokens revoke`
    flash(f"Token “{token.name or token.prefix}” revoked.")
    return redirect(url_for(".index"))
