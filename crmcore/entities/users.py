"""Users and API tokens of a tenant, as admins manage them (the admin pages and the
``crm users``/``crm tokens`` commands alike): every change audited (entity ``user`` or
``api_token``; passwords never), and the tenant always keeps an active admin.

The last-admin rule: a change that would leave the tenant without an active admin
raises :class:`LastAdmin` and writes nothing. On PostgreSQL the tenant row is locked
first, so two admins demoting each other at the same moment cannot both succeed.
"""

from __future__ import annotations

from typing import Any

import peewee
from argon2 import PasswordHasher

from crmcore import db
from crmcore.db import Tenant, utcnow
from crmcore.entities import service
from crmcore.entities.context import Context, resolve
from crmcore.entities.errors import Conflict, Invalid
from crmcore.models import ROLES, ApiToken, User

# The same Argon2id parameters as crmcore.auth (argon2-cffi's defaults); a hash made
# with other parameters is upgraded at the next sign-in.
_hasher = PasswordHasher()

DUPLICATE = "A user with this email already exists in this tenant."
LAST_ADMIN = "This is the tenant's last active admin. Make another user an admin first."


class LastAdmin(Conflict):
    """The change would leave the tenant without an active admin."""

    def __init__(self, message: str = LAST_ADMIN):
        super().__init__(message, field="role")


def create_user(email: str, password: str, *, role: str = "agent", name: str = "", ctx: Context | None = None) -> User:
    """Add a user to the context's tenant and audit it; Invalid for a bad email, role or
    empty password, Conflict (field ``email``) when the email is taken."""
    ctx = resolve(ctx)
    email = (email or "").strip().lower()
    errors: dict[str, list[str]] = {}
    local, _, domain = email.rpartition("@")
    if not local or not domain or " " in email:
        errors["email"] = [f"Not a valid email address: {email!r}."]
    if role not in ROLES:
        errors["role"] = [f"Must be one of: {', '.join(ROLES)}."]
    if not password:
        errors["password"] = ["The password must not be empty."]
    if errors:
        raise Invalid(errors)
    with db.tenant_context(ctx.current_tenant):
        if User.select().where(User.email == email).exists():
            raise Conflict(DUPLICATE, User.get(User.email == email), "email")
        try:
            with db.atomic():
                user = User.create(email=email, name=name or email.split("@")[0], password_hash=_hasher.hash(password), role=role)
                service.audit("user", user.id, "create", {"email": [None, user.email], "name": [None, user.name], "role": [None, user.role]}, ctx=ctx)
        except peewee.IntegrityError as exc:  # added meanwhile by someone else
            raise Conflict(DUPLICATE, field="email") from exc
    return user


def change_user(user: User, values: dict[str, Any], ctx: Context | None = None) -> dict[str, list[Any]]:
    """Write ``values`` (name, role, active) to the user and audit them; raise
    :class:`LastAdmin` (and write nothing) when no active admin would be left."""
    ctx = resolve(ctx)
    changes = {k: [getattr(user, k), v] for k, v in values.items() if getattr(user, k) != v}
    if not changes:
        return {}
    with db.atomic():
        if db.is_postgres():
            # Serialise admin changes per tenant: the count below must see the others'.
            Tenant.select().where(Tenant.id == ctx.current_tenant.id).for_update().execute()
        User.update(**values).where(User.id == user.id).execute()
        admins = User.select().where((User.role == "admin") & (User.active == True)).count()  # noqa: E712
        if admins == 0:
            raise LastAdmin()
        service.audit("user", user.id, "update", changes, ctx=ctx)
    for key, value in values.items():
        setattr(user, key, value)
    return changes


def set_password(user: User, password: str, ctx: Context | None = None) -> None:
    """Give the user a new password (audited as "(reset)", never the password)."""
    if not password:
        raise Invalid({"password": ["The password must not be empty."]})
    with db.atomic():
        User.update(password_hash=_hasher.hash(password)).where(User.id == user.id).execute()
        service.audit("user", user.id, "update", {"password": [None, "(reset)"]}, ctx=ctx)


def revoke_token(token: ApiToken, ctx: Context | None = None) -> bool:
    """Revoke an API token and audit it; False (and nothing written) when it already was."""
    now = utcnow()
    with db.atomic():
        count = ApiToken.update(revoked_at=now).where((ApiToken.id == token.id) & ApiToken.revoked_at.is_null()).execute()
        if not count:
            return False
        service.audit("api_token", token.id, "update", {"revoked_at": [None, now.isoformat()]}, ctx=ctx)
    token.revoked_at = now
    return True
