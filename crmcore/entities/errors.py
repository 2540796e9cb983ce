"""The domain's refusals, with no HTTP in them.

Domain functions raise these; each adapter says them in its own words: the API maps
them to status codes in one place (``crmcore.api.common.domain_error_response``), the web
pages show their messages next to the inputs, the CLI prints them.

==================  ====================================================  ========
error               meaning                                               API
==================  ====================================================  ========
:class:`NotFound`   the record does not exist or the caller may not see   404
:class:`Invalid`    the input is wrong; ``errors`` maps field -> messages 422
:class:`Conflict`   the write would duplicate or break another record     409
:class:`StaleVersion` the caller's version is older than the stored one   412
:class:`Forbidden`  the caller's role may not do this                     403
==================  ====================================================  ========
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError


class DomainError(Exception):
    """Base of every refusal of the domain layer."""


class NotFound(DomainError):
    """The record does not exist in this tenant, or the caller may not see it (404: the
    caller cannot tell the two apart)."""


class Forbidden(DomainError):
    """The caller's role may not do this (403)."""


class Conflict(DomainError):
    """A write would create a duplicate or break a reference (409); ``existing`` is the
    record in the way, ``field`` the input that collides (both optional)."""

    def __init__(self, message: str, existing: Any = None, field: str | None = None):
        super().__init__(message)
        self.existing = existing
        self.field = field


class StaleVersion(DomainError):
    """The caller's version (If-Match, a form's hidden version) is older than the stored one (412)."""


class Invalid(DomainError, ValidationError):
    """The input is wrong: ``errors`` maps a field to its messages (422).

    Also a marshmallow ``ValidationError`` (``messages`` is ``errors``), so code written
    against the deal rules' ValidationError, and marshmallow's own error handling, keep
    working. DomainError comes first in the bases, so handlers registered for
    DomainError see it before those for ValidationError.
    """

    def __init__(self, errors: dict[str, Any], message: str = "invalid input"):
        ValidationError.__init__(self, errors)
        self.errors = errors
        self.message = message

    def __str__(self) -> str:
        return f"{self.message}: {self.errors}"
