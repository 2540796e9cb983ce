"""Cell-level rules of the CSV import and export (:mod:`crmcore.entities.csvio`).

Formulas: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a tab or carriage return first) as a formula, so an exported lead named
``=HYPERLINK("http://evil", "click")`` would run on the exporting user's machine. Such
cells are exported with a leading apostrophe (the OWASP advice: spreadsheets show the
rest as text), except two kinds of values people need to read and that cannot run:

* an E.164 phone number (``+4930123456``: ``+`` and 7 to 15 digits), which is how
  phone numbers are stored;
* a plain number, negative ones included (``-12``, ``-3.5``).

A cell that already starts with apostrophes before such a character gets one more, and
the import takes exactly one away from any cell that starts with apostrophes before
such a character, so an export imports back to exactly the values it came from.

Owners: an export names its owners by id, which mean nothing in another tenant. An
imported row whose owner is not a user of this tenant is imported without an owner
and with a warning, rather than refused.
"""

from __future__ import annotations

import re
from typing import Any

from crmcore.entities import checks

#: What a spreadsheet may read as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED = re.compile(r"^'+[=+\-@\t\r]")
_NEEDS_APOSTROPHE = re.compile(r"^'*[=+\-@\t\r]")
_SAFE = re.compile(r"^(?:\+[1-9][0-9]{6,14}|-?[0-9]+(?:\.[0-9]+)?)$")

#: The fields of the importable schemas that name a user of the tenant.
USER_FIELDS = ("owner_id",)


def neutralise(cell: str) -> str:
    """``cell`` as exported: a leading apostrophe when a spreadsheet could run it."""
    if _NEEDS_APOSTROPHE.match(cell) and not _SAFE.match(cell):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """The value of an exported ``cell`` (:func:`neutralise` undone)."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell


def drop_unknown_users(data: dict[str, Any]) -> dict[str, list[str]]:
    """Remove from a loaded row each user field that names no user of this tenant
    (an export of another tenant); the warnings by field."""
    warnings: dict[str, list[str]] = {}
    for key in USER_FIELDS:
        errors: dict[str, Any] = {}
        checks.check_user(data, key, errors)
        if errors:
            warnings[key] = [f"{data.pop(key)} is not a user of this tenant: imported without it."]
    return warnings
