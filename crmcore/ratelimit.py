"""The core's rate limits: failed sign-ins per account and per IP, API calls per token.

Fixed-window counters in one table (``crm_rate_limits``), so every process of a
deployment (several gunicorn workers, several machines) counts together, and nothing
beyond the database is needed. Flask-Limiter was not brought back: its default memory
storage counts per process, and its limits are bound when routes are decorated, while
the API's limit is an instance setting (``api_rate_per_minute`` in crm.toml) read per
request (docs/architecture.md). The chat plugin keeps its own table for its public
endpoints (``chat_rate``), built the same way.

* Sign-in (:func:`login_refusal`, :func:`login_failed`, :func:`login_succeeded`): at most
  ``LOGIN_FAILURES_PER_ACCOUNT`` wrong passwords per email address and tenant and
  ``LOGIN_FAILURES_PER_IP`` per IP in ``LOGIN_WINDOW_SECONDS``; past that the form
  answers 429 with ``Retry-After`` until the window ends, even for the right password
  (else the limit would only slow a guesser down, not stop them).
* API (:func:`install`): each bearer token may make ``api_rate_per_minute`` requests a
  minute (0: no limit); every answer carries ``RateLimit-Limit``, ``RateLimit-Remaining``,
  ``RateLimit-Reset`` and ``RateLimit-Policy`` (IETF draft), a refusal is a 429 with
  ``Retry-After``.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import peewee
from flask import Flask, g, jsonify, request

from crmcore import db
from crmcore.db import BaseModel

LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_IP = 20
API_WINDOW_SECONDS = 60
KEEP_SECONDS = 2 * 3600  # longer than the longest window: older counters are dropped


class RateCounter(BaseModel):
    """How many times ``key`` was counted in the window starting at ``window`` (epoch s)."""

    key = peewee.CharField(max_length=200)
    window = peewee.BigIntegerField()
    count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "crm_rate_limits"
        indexes = ((("key", "window"), True),)


@dataclass(frozen=True)
class Verdict:
    """Where a key stands in its window: ``allowed`` is False once ``count`` passed ``limit``."""

    limit: int
    count: int
    reset_after: int  # seconds until the window ends

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


def _window(window_seconds: int) -> tuple[int, int]:
    """(the current window's start, seconds until it ends) in whole seconds."""
    now = time.time()
    start = int(now // window_seconds) * window_seconds
    return start, max(1, int(start + window_seconds - now + 0.999))


def hit(key: str, limit: int, window_seconds: int) -> Verdict:
    """Count one event for ``key`` and say whether it is still within ``limit``.

    One statement (an upsert that returns the new count), committed on its own: every API
    request runs it, and a transaction around two statements cost as much again."""
    start, reset_after = _window(window_seconds)
    key = key[:200]
    database = RateCounter._meta.database
    if _upsert_returns(database):
        p = database.param
        cursor = database.execute_sql(
            f'INSERT INTO {RateCounter._meta.table_name} ("key", "window", "count") VALUES ({p}, {p}, 1) '
            f'ON CONFLICT ("key", "window") DO UPDATE SET "count" = {RateCounter._meta.table_name}."count" + 1 RETURNING "count"',
            (key, start),
        )
        count = cursor.fetchone()[0]
        cursor.close()
    else:  # SQLite before 3.35 has no RETURNING
        with db.atomic():
            RateCounter.insert(key=key, window=start, count=1).on_conflict(
                conflict_target=[RateCounter.key, RateCounter.window], update={RateCounter.count: RateCounter.count + 1}
            ).execute()
            count = RateCounter.select(RateCounter.count).where((RateCounter.key == key) & (RateCounter.window == start)).scalar()
    if secrets.randbelow(500) == 0:  # now and then, drop counters of long-gone windows
        expire()
    return Verdict(limit, count or 0, reset_after)


def _upsert_returns(database: Any) -> bool:
    if isinstance(database.obj if hasattr(database, "obj") else database, peewee.SqliteDatabase):
        return sqlite3.sqlite_version_info >= (3, 35)
    return True


def peek(key: str, limit: int, window_seconds: int) -> Verdict:
    """Where ``key`` stands without counting anything."""
    start, reset_after = _window(window_seconds)
    count = RateCounter.select(RateCounter.count).where((RateCounter.key == key[:200]) & (RateCounter.window == start)).scalar()
    return Verdict(limit, count or 0, reset_after)


def clear(key: str) -> None:
    """Forget ``key``'s counts (an account's failures once its owner signed in)."""
    RateCounter.delete().where(RateCounter.key == key[:200]).execute()


def expire(now: float | None = None) -> int:
    """Delete counters whose window started more than KEEP_SECONDS ago."""
    cutoff = (now if now is not None else time.time()) - KEEP_SECONDS
    return RateCounter.delete().where(RateCounter.window < cutoff).execute()


# --------------------------------------------------------------------------- sign-in


def _login_keys(tenant_id: int, email: str, ip: str) -> tuple[str, str]:
    return f"login:account:{tenant_id}:{email}", f"login:ip:{ip}"


def login_refusal(tenant_id: int, email: str, ip: str) -> int | None:
    """Seconds to wait when this account or this IP failed too often, else None."""
    account, address = _login_keys(tenant_id, email, ip)
    waits = [
        v.reset_after
        for v in (peek(account, LOGIN_FAILURES_PER_ACCOUNT, LOGIN_WINDOW_SECONDS), peek(address, LOGIN_FAILURES_PER_IP, LOGIN_WINDOW_SECONDS))
        if v.count >= v.limit
    ]
    return max(waits) if waits else None


def login_failed(tenant_id: int, email: str, ip: str) -> None:
    """Count a wrong password against the account and the IP."""
    account, address = _login_keys(tenant_id, email, ip)
    hit(account, LOGIN_FAILURES_PER_ACCOUNT, LOGIN_WINDOW_SECONDS)
    hit(address, LOGIN_FAILURES_PER_IP, LOGIN_WINDOW_SECONDS)


def login_succeeded(tenant_id: int, email: str) -> None:
    """The account's owner signed in: its earlier failures no longer count (the IP's do)."""
    clear(f"login:account:{tenant_id}:{email}")


# --------------------------------------------------------------------------- the API


def _headers(verdict: Verdict) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset_after),
        "RateLimit-Policy": f"{verdict.limit};w={API_WINDOW_SECONDS}",
    }


def install(app: Flask) -> None:
    """Limit each bearer token to the instance's ``api_rate_per_minute`` (after the
    request's credentials are resolved: install after the core's request handling)."""

    @app.before_request
    def _limit_token() -> Any:
        token = g.get("token")
        if token is None:
            return None
        limit = app.extensions["crm"].config.instance.api_rate_per_minute
        if not limit:
            return None
        verdict = hit(f"api:token:{token.id}", limit, API_WINDOW_SECONDS)
        g.rate_verdict = verdict
        if verdict.allowed:
            return None
        message = f"too many requests: this token may make {limit} requests a minute; retry in {verdict.reset_after} s"
        response = jsonify({"code": 429, "status": "Too Many Requests", "message": message})
        response.status_code = 429
        response.headers["Retry-After"] = str(verdict.reset_after)
        return response

    @app.after_request
    def _rate_headers(response: Any) -> Any:
        verdict = g.get("rate_verdict")
        if verdict is not None and request.path.startswith("/api/"):
            for name, value in _headers(verdict).items():
                response.headers.setdefault(name, value)
        return response
