"""Authentication: password hashing, API tokens, sessions and CSRF.

* Passwords: Argon2id (argon2-cffi), rehashed when the parameters change.
* API tokens: ``crm_<random>``; only a SHA-256 of the token is stored (a token has 256
  bits of entropy, so a slow KDF adds nothing), with an 8-character prefix to tell
  tokens apart in listings. Bound to one tenant and a role; revocable; last use recorded.
* Sessions: Flask's signed cookie holds the user id, tenant id and a CSRF token; every
  unsafe request from a session must echo the CSRF token (form field ``csrf_token`` or
  header ``X-CSRF-Token``). Bearer-token requests carry no cookie and need no CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import session

from crmcore.db import Tenant, tenant_context, utcnow
from crmcore.models import ROLES, ApiToken, User

_hasher = PasswordHasher()
TOKEN_PREFIX = "crm_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    """True when ``password`` is the user's; upgrades an outdated hash in place."""
    if not user.password_hash:
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        user.save(only=[User.password_hash])
    return True


def create_user(tenant: Tenant, email: str, password: str, role: str = "agent", name: str = "") -> User:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    with tenant_context(tenant):
        return User.create(email=email.strip().lower(), name=name or email.split("@")[0], password_hash=hash_password(password), role=role)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(tenant: Tenant, role: str, name: str = "", user: User | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with tenant_context(tenant):
        row = ApiToken.create(name=name, prefix=secret[:12], token_hash=_digest(secret), role=role, user=user)
    return row, secret


def token_from_secret(secret: str) -> ApiToken | None:
    """The live token for ``secret`` (any tenant: the token decides the tenant)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = ApiToken.select_all_tenants().where(ApiToken.token_hash == _digest(secret)).first()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    # Record use at most once a minute: a write per request would cost more than the request.
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        ApiToken.update_all_tenants(last_used_at=now).where(ApiToken.id == row.id).execute()
        row.last_used_at = now
    return row


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def csrf_valid(value: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and value and hmac.compare_digest(expected, value))
