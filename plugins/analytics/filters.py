"""The filters every metric takes, and how they become WHERE clauses.

A date range is a pair of *days in the tenant's time zone* (``[settings.analytics]
time_zone``): ``date_from=2026-03-01&date_to=2026-03-31`` means from 1 March 00:00 to
1 April 00:00 local time, turned into UTC bounds once here, so the SQL compares stored
UTC timestamps with two constants (an index range, identical on SQLite and PostgreSQL).
Each metric says which timestamp the range applies to (created, closed, occurred ...).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_plugins.analytics.models import DATE_PRESETS
from crmcore import sdk

PLUGIN = "analytics"


#: Days outside this span are refused (422): they are typos, and arithmetic on them would overflow.
SANE_DAYS = validate.Range(min=dt.date(1900, 1, 1), max=dt.date(2199, 12, 31))


class FilterArgs(Schema):
    """Query parameters shared by every metric (and the dashboard page's form)."""

    date_from = fields.Date(load_default=None, validate=SANE_DAYS, metadata={"description": "First day of the range (a day in the tenant's time zone), inclusive."})
    date_to = fields.Date(load_default=None, validate=SANE_DAYS, metadata={"description": "Last day of the range (a day in the tenant's time zone), inclusive."})
    date_preset = fields.String(load_default=None, validate=validate.OneOf(DATE_PRESETS), metadata={"description": "A rolling range instead of date_from/date_to, in the tenant's time zone; quarters and years are fiscal ones (setting fiscal_year_start_month)."})
    owner_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "Only deals and leads this user owns, activities this user logged."})
    team_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "Only deals and leads owned by, and activities logged by, the members of this team (today's members)."})
    pipeline_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "Only deals of this pipeline (the funnel: the default pipeline without one)."})
    source = fields.String(load_default=None, validate=validate.Length(min=1, max=30), metadata={"description": "Only deals and leads of this source."})
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"), metadata={"description": "Deals in this currency only (ISO 4217); the tenant's default currency without one. Amounts in different currencies are never added up."})

    period = fields.String(load_default="month", validate=validate.OneOf(("month", "quarter")), metadata={"description": "The forecast's periods: month or quarter."})
    as_of = fields.Date(load_default=None, validate=SANE_DAYS, metadata={"description": "The day a forecast is made on (its run rate and back-test use the full months before it); today in the tenant's time zone without one."})

    @validates_schema
    def _range_in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("Must not be before date_from.", "date_to")
        if data.get("date_preset") and (data.get("date_from") or data.get("date_to")):
            raise ValidationError("Either a preset or fixed days, not both.", "date_preset")


@dataclass(frozen=True)
class Filters:
    """Validated filters with the date range as UTC bounds (naive, as stored)."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    owner_id: int | None = None
    team_id: int | None = None
    pipeline_id: int | None = None
    source: str | None = None
    currency: str = "EUR"
    time_zone: str = "UTC"
    start_utc: dt.datetime | None = None
    end_utc: dt.datetime | None = None
    period: str = "month"
    as_of: dt.date = dt.date(2000, 1, 1)
    as_of_given: bool = False

    def in_range(self, column: Any) -> Any:
        """``column`` (a UTC timestamp) inside the range; True without a range."""
        condition: Any = True
        if self.start_utc is not None:
            condition = column >= self.start_utc
        if self.end_utc is not None:
            condition = (column < self.end_utc) if condition is True else (condition & (column < self.end_utc))
        return condition

    def query_string(self, **extra: Any) -> str:
        """The filters as given (plus ``extra``), for links that keep them."""
        values = {"date_from": self.date_from, "date_to": self.date_to, "owner_id": self.owner_id, "team_id": self.team_id, "pipeline_id": self.pipeline_id, "source": self.source, "currency": self.currency}
        if self.period != "month":
            values["period"] = self.period
        if self.as_of_given:
            values["as_of"] = self.as_of
        values.update(extra)
        return urlencode({k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in values.items() if v not in (None, "")})

    def days(self) -> int | None:
        """Number of days in the range (None when open-ended)."""
        if self.date_from is None or self.date_to is None:
            return None
        return (self.date_to - self.date_from).days + 1


def local_midnight_utc(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """00:00 of ``day`` in ``zone`` as a naive UTC timestamp (DST-aware)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)


def _add_months(day: dt.date, months: int) -> dt.date:
    """The first of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def preset_range(preset: str, today: dt.date, fiscal_start_month: int = 1) -> tuple[dt.date, dt.date]:
    """First and last day of a rolling range, relative to ``today`` (a local day). Quarters
    and years are fiscal: the year starts on the first of ``fiscal_start_month`` (1 =
    calendar quarters and years)."""
    if preset == "today":
        return today, today
    if preset in ("last_7_days", "last_30_days"):
        return today - dt.timedelta(days=6 if preset == "last_7_days" else 29), today
    if preset == "this_month":
        return today.replace(day=1), today
    if preset == "last_month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    year_start = dt.date(today.year if today.month >= fiscal_start_month else today.year - 1, fiscal_start_month, 1)
    quarter_start = _add_months(year_start, 3 * (((today.month - fiscal_start_month) % 12) // 3))
    if preset == "this_quarter":
        return quarter_start, today
    if preset == "last_quarter":
        return _add_months(quarter_start, -3), quarter_start - dt.timedelta(days=1)
    if preset == "this_year":
        return year_start, today
    if preset == "last_year":
        return _add_months(year_start, -12), year_start - dt.timedelta(days=1)
    raise ValueError(preset)


def build(args: dict[str, Any], tenant: Any = None) -> Filters:
    """Filters from loaded :class:`FilterArgs` values for the current tenant (a
    ``date_preset`` resolved today, in its time zone and fiscal year)."""
    tenant = tenant if tenant is not None else sdk.current_tenant()
    plugin_settings = sdk.settings(tenant, PLUGIN)
    time_zone = plugin_settings["time_zone"]
    zone = zoneinfo.ZoneInfo(time_zone)
    if args.get("date_preset"):
        date_from, date_to = preset_range(args["date_preset"], dt.datetime.now(zone).date(), plugin_settings["fiscal_year_start_month"])
        args = {**args, "date_from": date_from, "date_to": date_to}
    currency = args.get("currency") or sdk.settings(tenant, "core").get("default_currency") or "EUR"
    start = local_midnight_utc(args["date_from"], zone) if args.get("date_from") else None
    end = local_midnight_utc(args["date_to"] + dt.timedelta(days=1), zone) if args.get("date_to") else None
    return Filters(
        date_from=args.get("date_from"),
        date_to=args.get("date_to"),
        owner_id=args.get("owner_id"),
        team_id=args.get("team_id"),
        pipeline_id=args.get("pipeline_id"),
        source=args.get("source"),
        currency=currency,
        time_zone=time_zone,
        start_utc=start,
        end_utc=end,
        period=args.get("period") or "month",
        as_of=args.get("as_of") or dt.datetime.now(zone).date(),
        as_of_given=args.get("as_of") is not None,
    )


def parse(raw: Any, tenant: Any = None) -> Filters:
    """Filters from raw query parameters; raises ValidationError (a 422) when bad."""
    plain = {k: v for k, v in dict(raw).items() if k in FilterArgs._declared_fields and v not in ("", None)}
    return build(FilterArgs().load(plain), tenant)
