"""Likely duplicates of a lead, contact or company about to be created: the same name
(case aside; a company's without its legal form, "Globex Corp." finds "Globex
Corporation"), the same company name, or an address or website at the same domain (not a
free-mail one). Unique emails are the domain's hard rule (409); this is the soft one: the
page warns and the user creates anyway or opens the existing record.

One query per call, limited, among the records the caller may see.
"""

from __future__ import annotations

import re
from typing import Any

import peewee

from crmcore.entities import visibility
from crmcore.entities.context import Context
from crmcore.entities.models import Company, Contact, Lead

LIMIT = 5
#: addresses at these domains say nothing about the company
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "icloud.com",
    "me.com", "aol.com", "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com", "mail.com", "yandex.ru",
})
LEGAL_FORMS = re.compile(r"[\s,.]+(inc|ltd|llc|gmbh|ag|sa|sarl|bv|plc|corp|corporation|company|co|limited|group)\.?$", re.I)


def company_core(name: str) -> str:
    """A company name without its legal form and case: "Globex Corp." -> "globex"."""
    core = " ".join(name.split()).lower()
    while True:
        shorter = LEGAL_FORMS.sub("", core)
        if shorter == core:
            return core
        core = shorter


def domain_of(text: str | None) -> str | None:
    """The company domain of an email address or a website, None for free-mail ones."""
    if not text:
        return None
    text = text.strip().lower()
    host = text.rsplit("@", 1)[1] if "@" in text else re.sub(r"^[a-z]+://", "", text).split("/", 1)[0]
    host = host.removeprefix("www.")
    if "." not in host or host in FREE_MAIL:
        return None
    return host


def _same_name(field: peewee.Field, name: str | None) -> Any:
    name = " ".join((name or "").split())
    return peewee.fn.LOWER(field) == name.lower() if name else None


def _company_like(field: peewee.Field, name: str | None) -> Any:
    core = company_core(name or "")
    if len(core) < 3:
        return _same_name(field, name)
    return (peewee.fn.LOWER(field) == core) | (peewee.fn.LOWER(field).startswith(core + " ")) | (peewee.fn.LOWER(field).startswith(core + ","))


def _at_domain(field: peewee.Field, domain: str | None) -> Any:
    return peewee.fn.LOWER(field).endswith("@" + domain) if domain else None


def _any(*conditions: Any) -> Any:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    out = present[0]
    for c in present[1:]:
        out |= c
    return out


def likely(entity: str, data: dict[str, Any], ctx: Context | None = None, exclude_id: int | None = None) -> list[dict[str, Any]]:
    """``[{"record", "reasons"}]``: up to LIMIT visible records like ``data`` (a create
    form's loaded input, or a record's fields), each with why it looks the same ("same
    name", "same domain"); ``exclude_id``: the record itself."""
    if entity == "lead":
        model, domain = Lead, domain_of(data.get("email"))
        condition = _any(_same_name(Lead.name, data.get("name")), _company_like(Lead.company_name, data.get("company_name")) if data.get("company_name") else None, _at_domain(Lead.email, domain))
    elif entity == "contact":
        model, domain = Contact, domain_of(data.get("email"))
        first, last = (data.get("first_name") or "").strip(), (data.get("last_name") or "").strip()
        same_person = (peewee.fn.LOWER(Contact.first_name) == first.lower()) & (peewee.fn.LOWER(Contact.last_name) == last.lower()) if first and last else None
        condition = _any(same_person, _at_domain(Contact.email, domain))
    elif entity == "company":
        model = Company
        domain = domain_of(data.get("domain")) or domain_of(data.get("website"))
        condition = _any(_company_like(Company.name, data.get("name")), (peewee.fn.LOWER(Company.domain) == domain) if domain else None)
    else:
        return []
    if condition is None:
        return []
    if exclude_id is not None:
        condition = (condition) & (model.id != exclude_id)
    query = visibility.visible(model.select().where(condition), model, ctx) if ctx is not None else model.select().where(condition)
    found = []
    for record in query.order_by(model.id.desc()).limit(LIMIT):
        found.append({"record": record, "reasons": reasons(entity, data, record, domain)})
    return found


def reasons(entity: str, data: dict[str, Any], record: Any, domain: str | None) -> list[str]:
    out = []
    if entity == "contact":
        if (record.first_name or "").lower() == (data.get("first_name") or "").strip().lower() and (record.last_name or "").lower() == (data.get("last_name") or "").strip().lower():
            out.append("same name")
    elif entity == "company":
        if company_core(record.name or "") == company_core(data.get("name") or ""):
            out.append("similar name")
    elif (record.name or "").lower() == " ".join((data.get("name") or "").split()).lower():
        out.append("same name")
    if entity == "lead" and data.get("company_name") and company_core(record.company_name or "") == company_core(data["company_name"]):
        out.append("same company")
    record_domain = domain_of(getattr(record, "email", None)) if entity != "company" else (record.domain or "").lower() or None
    if domain and record_domain == domain:
        out.append(f"same domain ({domain})")
    return out or ["similar"]


def fields_of(record: Any) -> dict[str, Any]:
    """A stored record's fields as :func:`likely` reads them."""
    names = ("name", "email", "company_name", "first_name", "last_name", "domain", "website")
    return {n: getattr(record, n, None) for n in names}
