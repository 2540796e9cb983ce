"""People's own accounts: invitations, password resets, profile, the notification digest.

* Invitations and password resets are links with a single-use, expiring token. Only a
  SHA-256 of the token is stored (``crm_account_tokens``; it has 256 bits of entropy,
  so a slow hash adds nothing); :func:`redeem` marks it used with one
  ``UPDATE ... RETURNING``, so two clicks on one link cannot both set a password.
  Issuing a new token of a purpose voids the user's older unused ones.
* An invited user exists with no password (``password_hash`` empty: sign-in refuses
  it) until the link sets one.
* "Forgot password" never says whether an address has an account: the page answers the
  same either way and the mail (if any) goes through the task queue. It is rate limited
  per IP address and per address asked for (crmcore.ratelimit).
* The daily digest (:func:`send_digests`, a scheduled job) claims each user's day with
  one ``UPDATE ... RETURNING`` on ``digest_sent_on`` and queues one system mail per
  claimed user with an idempotency key of the user and the day: a job run twice, or by
  two schedulers, sends one digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import zoneinfo
from typing import Any

import peewee

from crmcore import db, ratelimit
from crmcore.db import IdField, Tenant, TenantModel, utcnow
from crmcore.entities.errors import Invalid
from crmcore.models import User

INVITE = "invite"
RESET = "reset"
LIFETIMES = {INVITE: dt.timedelta(days=7), RESET: dt.timedelta(hours=1)}
MIN_PASSWORD = 8
FORGOT_PER_IP = 10
FORGOT_PER_ADDRESS = 3
FORGOT_WINDOW_SECONDS = 15 * 60
DIGEST_LIMIT = 20  # notifications listed in one digest (the rest: "and N more")


class AccountToken(TenantModel):
    """A link that lets one user set their password once (an invitation or a reset)."""

    id = IdField()
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+")
    purpose = peewee.CharField(max_length=16)
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_account_tokens"
        indexes = ((("user", "purpose"), False),)


MODELS = [AccountToken]
USER_COLUMNS = ("time_zone", "digest_daily", "digest_sent_on")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --------------------------------------------------------------------------- tokens


def issue(user: User, purpose: str) -> str:
    """A new link token for ``user`` (current tenant); older unused ones of the purpose are void."""
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    with db.atomic():
        AccountToken.update(used_at=now).where((AccountToken.user == user.id) & (AccountToken.purpose == purpose)
                                               & AccountToken.used_at.is_null()).execute()
        AccountToken.create(user=user.id, purpose=purpose, token_hash=_digest(secret), expires_at=now + LIFETIMES[purpose])
    return secret


def _live(secret: str, purpose: str) -> Any:
    return ((AccountToken.token_hash == _digest(secret or "")) & (AccountToken.purpose == purpose)
            & AccountToken.used_at.is_null() & (AccountToken.expires_at > utcnow()))


def peek(secret: str, purpose: str) -> User | None:
    """The active user a live token of ``purpose`` belongs to, or None (unknown, used,
    expired, another tenant's): for showing the form before anything is used up."""
    row = AccountToken.select(AccountToken.user).where(_live(secret, purpose)).first()
    if row is None:
        return None
    return User.get_or_none((User.id == row.user_id) & (User.active == True))  # noqa: E712


def check_password_rules(password: str, confirm: str | None = None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= 200):
        errors["password"] = [f"At least {MIN_PASSWORD} characters (at most 200)."]
    elif confirm is not None and confirm != password:
        errors["confirm"] = ["The two passwords differ."]
    return errors


def redeem(secret: str, purpose: str, password: str) -> User | None:
    """Use the token up and set the user's password, in one transaction; None when the
    token is not live (then nothing changes). Raises :class:`Invalid` for a weak password
    before using anything up."""
    from crmcore.auth import hash_password

    errors = check_password_rules(password)
    if errors:
        raise Invalid(errors)
    password_hash = hash_password(password)
    with db.atomic():
        claimed = list(AccountToken.update(used_at=utcnow()).where(_live(secret, purpose))
                       .returning(AccountToken.user).tuples().execute())
        if not claimed:
            return None
        user = User.get_or_none((User.id == claimed[0][0]) & (User.active == True))  # noqa: E712
        if user is None:
            return None
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        # A password set by link voids every other outstanding link of the user.
        AccountToken.update(used_at=utcnow()).where((AccountToken.user == user.id) & AccountToken.used_at.is_null()).execute()
    return user


# --------------------------------------------------------------------------- invitations, resets


def invite(email: str, *, role: str, name: str = "", link_for: Any) -> User:
    """Add a user without a password (or re-invite one who never set it) and mail them a
    link ``link_for(token)``. Raises Invalid for a bad email or role, Conflict when
    the address already belongs to a user who can sign in, MailNotConfigured."""
    from crmcore.entities import users
    from crmcore.entities.errors import Conflict
    from crmcore.system_mail import MailNotConfigured, configured, send_system_mail

    if not configured():
        raise MailNotConfigured("system mail is off: set [mail] host in config/crm.toml")
    email = (email or "").strip().lower()
    tenant = db.current_tenant()
    with db.atomic():
        user = User.get_or_none(User.email == email)
        if user is not None and user.password_hash:
            raise Conflict(users.DUPLICATE, user, "email")
        if user is None:
            # create_user checks and audits; the random password is dropped at once
            user = users.create_user(email, secrets.token_urlsafe(24), role=role, name=name)
            User.update(password_hash="").where(User.id == user.id).execute()
        token = issue(user, INVITE)
        send_system_mail(email, f"You are invited to {tenant.name}",
                         f"Hello {user.name},\n\nYou have been invited to {tenant.name}'s CRM. "
                         f"Choose your password here (the link works once, for 7 days):\n\n{link_for(token)}\n")
    return user


def forgot(email: str, ip: str, *, link_for: Any) -> bool:
    """Mail a reset link if ``email`` is an active user who has a password; False only
    when the IP address asked too often (the page then answers 429). The same answer
    whether or not the account exists: the caller must not say more."""
    from crmcore.system_mail import configured, send_system_mail

    tenant = db.current_tenant()
    if not ratelimit.hit(f"forgot:ip:{tenant.id}:{ip}", FORGOT_PER_IP, FORGOT_WINDOW_SECONDS).allowed:
        return False
    email = (email or "").strip().lower()
    if not email or not ratelimit.hit(f"forgot:email:{tenant.id}:{email}", FORGOT_PER_ADDRESS, FORGOT_WINDOW_SECONDS).allowed:
        return True
    user = User.get_or_none((User.email == email) & (User.active == True))  # noqa: E712
    if user is None or not user.password_hash or not configured():
        return True
    with db.atomic():
        token = issue(user, RESET)
        send_system_mail(email, f"Reset your password for {tenant.name}",
                         f"Hello {user.name},\n\nSomeone (we hope you) asked to reset your password for {tenant.name}'s CRM. "
                         f"Choose a new one here (the link works once, for an hour):\n\n{link_for(token)}\n\n"
                         "If it was not you, ignore this message: your password stays as it is.\n")
    return True


# --------------------------------------------------------------------------- profile


def change_password(user: User, current: str, new: str, confirm: str) -> None:
    """The user's own password change: Invalid unless ``current`` is right and ``new`` is good."""
    from crmcore.auth import check_password, hash_password

    errors = check_password_rules(new, confirm)
    if not check_password(user, current or ""):
        errors["current"] = ["That is not your current password."]
    if errors:
        raise Invalid(errors)
    User.update(password_hash=hash_password(new)).where(User.id == user.id).execute()


def time_zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


def change_preferences(user: User, time_zone: str, digest_daily: bool) -> None:
    """Set the user's time zone (an IANA name) and daily digest; Invalid for an unknown zone."""
    if time_zone not in zoneinfo.available_timezones():
        raise Invalid({"time_zone": ["Choose a time zone from the list."]})
    User.update(time_zone=time_zone, digest_daily=bool(digest_daily)).where(User.id == user.id).execute()


def local_time(value: dt.datetime | None, time_zone: str) -> dt.datetime | None:
    """A stored (naive UTC) time in ``time_zone``."""
    if value is None:
        return None
    try:
        zone = zoneinfo.ZoneInfo(time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return value.replace(tzinfo=dt.timezone.utc).astimezone(zone)


# --------------------------------------------------------------------------- digest


def send_digests(tenant: Tenant) -> int:
    """Scheduled daily: claim today's digest of every active user who wants one and has
    unread notifications, and queue one system mail each. Returns how many were queued.
    A constant number of queries, whatever the number of users."""
    from crmcore.notifications import Notification
    from crmcore.system_mail import configured, send_system_mail

    if not configured():
        return 0
    today = utcnow().date()
    with db.tenant_context(tenant), db.atomic():
        has_unread = Notification.select(Notification.id).where((Notification.user == User.id) & Notification.read_at.is_null())
        claimed = list(
            User.update(digest_sent_on=today)
            .where((User.tenant == tenant.id) & (User.digest_daily == True) & (User.active == True)  # noqa: E712
                   & (User.digest_sent_on.is_null() | (User.digest_sent_on < today)) & peewee.fn.EXISTS(has_unread))
            .returning(User.id, User.email, User.name)
            .tuples()
            .execute()
        )
        if not claimed:
            return 0
        ids = [row[0] for row in claimed]
        ranked = (Notification.select(Notification.user, Notification.title, Notification.link,
                                      peewee.fn.ROW_NUMBER().over(partition_by=[Notification.user], order_by=[Notification.id.desc()]).alias("rank"),
                                      peewee.fn.COUNT(Notification.id).over(partition_by=[Notification.user]).alias("total"))
                  .where(Notification.user.in_(ids) & Notification.read_at.is_null()))
        query = (peewee.Select([ranked.alias("r")], [peewee.SQL("*")]).where(peewee.SQL('"rank"') <= DIGEST_LIMIT)
                 .bind(db.database))
        items: dict[int, list[tuple[str, str | None]]] = {}
        totals: dict[int, int] = {}
        for user_id, title, link, _rank, total in query.tuples():
            items.setdefault(user_id, []).append((title, link))
            totals[user_id] = total
        for user_id, email, name in claimed:
            lines = [f"- {title}" for title, _link in items.get(user_id, [])]
            more = totals.get(user_id, 0) - len(lines)
            if more > 0:
                lines.append(f"... and {more} more.")
            send_system_mail(email, f"{tenant.name}: {totals.get(user_id, 0)} unread notifications",
                             f"Hello {name},\n\nUnread in {tenant.name}'s CRM:\n\n" + "\n".join(lines)
                             + "\n\nOpen /app/notifications to read them; turn this email off on your profile page.\n",
                             tenant=tenant, idempotency_key=f"digest:{tenant.id}:{user_id}:{today.isoformat()}")
    return len(claimed)
