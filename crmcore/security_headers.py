"""Security headers on every answer, and the Content-Security-Policy of the app's pages.

Every response gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
same-origin`` (record URLs may carry names in their query: other sites get no referrer).
HTML pages also get ``X-Frame-Options: DENY`` and :data:`PAGE_POLICY`: scripts only
from this origin or inline with the request's nonce (``<script nonce="{{ csp_nonce()
}}">``; an inline event handler such as ``onclick=`` does not run: bind it from a
script), no plugins, no framing, forms posting to this origin only. Styles may be inline
(``style=""`` attributes are used by pages and Swagger UI; they cannot run code).

Not HTML, so untouched by the page policy: the API's JSON, the chat widget's script and
its public API, which other sites load cross-origin (no ``Cross-Origin-Resource-Policy``
is sent for that reason). A response that sets its own policy keeps it (the API docs
page, chat attachments).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, g

#: The page policy; ``{nonce}`` is the request's nonce (see :func:`csp_nonce`).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'{nonce}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def csp_nonce() -> str:
    """The request's script nonce (made on first use; a template calls ``csp_nonce()``)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def page_policy() -> str:
    """The Content-Security-Policy of this request's page."""
    nonce = g.get("csp_nonce")
    return PAGE_POLICY.format(nonce=f" 'nonce-{nonce}'" if nonce else "")


def install(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _security_headers(response: Any) -> Any:
        for name, value in ALWAYS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", page_policy())
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response
