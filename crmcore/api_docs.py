"""The OpenAPI document's finishing touches and the interactive API docs at /api/v1/docs.

Three things, all installed by :func:`init_app` right after the ``Api`` is created
(before any blueprint registers its operations):

* :class:`CrmSpecPlugin`, an apispec plugin that completes every operation of an API
  blueprint centrally, so that resource modules need not repeat it: the ``bearerAuth``
  security requirement, the 401 response, the 403 response, the permission the
  operation declares (``require``) and the roles that have it (``x-crm-permission``,
  ``x-crm-roles`` and a line of the description; ``@public`` operations get no security
  requirement), the plugin that answers (``x-crm-plugin``), the 404 response when the
  path has parameters, one error schema (``ApiError``) for every error response. The
  document stays honest because tests/api/test_openapi_walk.py calls every operation
  and checks the answers.
* ``/api/v1/openapi.json`` for the request's tenant: without the paths of plugins the
  tenant has off (:mod:`crmcore.tenant_openapi`).
* The docs page: Swagger UI served from files vendored into ``crmcore/static/apidocs``
  (swagger-ui-dist from npm; see ``VERSION`` there), so it works offline and behind a
  firewall. No CDN, no inline script, and a Content-Security-Policy that lets the page
  talk to its own origin only.

``python -m crmcore.api_docs permissions [--write]`` prints (or rewrites) the permission
matrix of docs/api.md.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

from apispec import BasePlugin
from flask import Blueprint, Flask, current_app, g, redirect, render_template_string, url_for
from flask_smorest import Api
from marshmallow import Schema, fields

from crmcore.tenant_openapi import TenantDocuments

DOCS_PATH = "/api/v1/docs"

#: error statuses every API operation may answer, by the response component they use
ERROR_RESPONSES = {
    "Unauthorized": (401, "No credentials, or an invalid or revoked token (`Authorization: Bearer <token>`)."),
    "Forbidden": (403, "The token's role lacks the permission this operation needs."),
    "NotFound": (404, "No such record in your tenant (records of other tenants are never revealed: 404, not 403)."),
    "UnprocessableEntity": (422, "Invalid input: `errors` holds the messages by location (`json`, `query`) and field."),
    "TooManyRequests": (429, "The token made more than the instance's `api_rate_per_minute` requests this minute: wait the `Retry-After` seconds (the `RateLimit-*` headers of every answer say how many are left)."),
    "ServiceUnavailable": (503, "The database was too busy to answer in time (a lock or busy timeout): nothing was changed; retry after `Retry-After` seconds."),
    "ApiError": (None, "Any other error, same shape."),
}


class ConflictingRecordSchema(Schema):
    id = fields.Integer(metadata={"description": "The id of the record that already holds the value."})
    url = fields.String(metadata={"description": "Its API URL."})


class ApiErrorSchema(Schema):
    """The body of every error answer of the API."""

    code = fields.Integer(metadata={"description": "The HTTP status code."})
    status = fields.String(metadata={"description": "The HTTP status name."})
    message = fields.String(metadata={"description": "What went wrong, for people."})
    errors = fields.Dict(
        keys=fields.String(),
        metadata={"description": "400 and 422: messages by location (`json`, `query`), then by field (`{\"json\": {\"email\": [\"...\"]}}`)."},
    )
    existing = fields.Nested(ConflictingRecordSchema, metadata={"description": "409 only: the record that clashes."})
    field = fields.String(metadata={"description": "409 only: the field that clashes."})


def decimal2properties(self: Any, field: Any, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Decimal fields: as JSON Schema wants them (a marshmallow converter attribute function).

    apispec documents every Decimal as a number and copies Decimal range bounds as
    strings, which is not valid OpenAPI. A Decimal sent and received as a string
    (``as_string=True``, the way money travels here) is documented as a string with
    format ``decimal``, its bounds kept as ``x-minimum``/``x-maximum``; other Decimals
    get numeric bounds. Runs after apispec's own attribute functions and edits ``ret``."""
    import decimal

    if not isinstance(field, fields.Decimal):
        return {}
    if field.as_string:
        ret["type"] = "string"
        ret["format"] = "decimal"
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in ret and not isinstance(ret[key], bool):
                ret["x-" + key] = str(ret.pop(key))
        if isinstance(ret.get("default"), (int, float, decimal.Decimal)):
            ret["default"] = str(ret["default"])
    else:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(ret.get(key), (str, decimal.Decimal)):
                ret[key] = float(ret[key])
    return {}


def permission_of(app: Flask, endpoint: str, method: str) -> str | None:
    """What an API operation declares (``require``): a permission, ``PUBLIC``, or None."""
    from crmcore.permissions import declared_permission

    view = app.view_functions.get(endpoint)
    return declared_permission(view, method) if view is not None else None


class CrmSpecPlugin(BasePlugin):
    """Complete the operations of the CRM's API blueprints (see the module docstring)."""

    METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}

    def __init__(self, app: Flask):
        self.app = app

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        from crmcore.permissions import PUBLIC

        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        crm = self.app.extensions.get("crm")
        top = rule.endpoint.split(".")[0]
        authenticated = crm is not None and top in crm.api_blueprints
        has_path_params = bool(rule.arguments)
        # Collected before any API blueprint registers (crmcore.app), so complete here.
        permissions = crm.permissions if crm is not None else {}

        for method, operation in operations.items():
            if method not in self.METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            # Decorators may use int or str status codes: one spelling (str) from here on.
            for code in [c for c in responses if isinstance(c, int)]:
                responses.setdefault(str(code), responses.pop(code))
            if crm is not None:
                # Which plugin answers: the per-tenant document (crmcore.tenant_openapi) reads it.
                operation["x-crm-plugin"] = crm.blueprint_plugins.get(top)
            permission = permission_of(self.app, rule.endpoint, method) if authenticated else None
            if permission == PUBLIC:
                operation["security"] = []
                _add_note(operation, "Public: no credentials needed.")
            elif authenticated:
                # Only @public opens an operation: the document says what is enforced.
                operation["security"] = [{"bearerAuth": []}]
                responses.setdefault("401", "Unauthorized")
                responses.setdefault("429", "TooManyRequests")
                if permission is not None:  # None: create_app stops with an error anyway
                    roles = permissions.get(permission, ())
                    responses.setdefault("403", "Forbidden")
                    operation["x-crm-permission"] = permission
                    operation["x-crm-roles"] = list(roles)
                    _add_note(operation, f"Permission: `{permission}` (roles: {', '.join(roles) or 'none'}).")
            if has_path_params:
                responses.setdefault("404", "NotFound")
            responses.setdefault("503", "ServiceUnavailable")
            for code in [c for c in responses if str(c) == "422"]:
                if responses[code] == "UNPROCESSABLE_ENTITY":
                    responses[code] = "UnprocessableEntity"
            # Error answers documented with a description only get the error schema.
            for code, response in list(responses.items()):
                if isinstance(response, dict) and str(code)[:1] in "45" and "content" not in response and "$ref" not in response:
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}


def _add_note(operation: dict[str, Any], note: str) -> None:
    description = operation.get("description", "")
    if note not in description:
        operation["description"] = f"{description}\n\n{note}".strip()


# --------------------------------------------------------------------------- the page

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ title }} - interactive docs</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{{ url_for('static', filename='apidocs/swagger-ui.css') }}">
  <link rel="stylesheet" href="{{ url_for('static', filename='apidocs/apidocs.css') }}">
</head>
<body>
  <noscript>This page needs JavaScript. The OpenAPI document itself is at
    <a href="{{ spec_url }}">{{ spec_url }}</a>.</noscript>
  <div id="swagger-ui" data-spec-url="{{ spec_url }}"></div>
  <script src="{{ url_for('static', filename='apidocs/swagger-ui-bundle.js') }}"></script>
  <script src="{{ url_for('static', filename='apidocs/apidocs.js') }}"></script>
</body>
</html>
"""

#: The page may load and call its own origin only. Swagger UI sets style attributes,
#: and shows images given as data: URLs.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

docs_pages = Blueprint("crm_api_docs", __name__)


@docs_pages.route(DOCS_PATH)
def docs_page() -> Any:
    tenant = g.get("tenant")
    title = current_app.config.get("API_TITLE", "API") + (f" ({tenant.name})" if tenant is not None else "")
    html = render_template_string(PAGE, title=title, spec_url=url_for("api-docs.openapi_json"))
    return html, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def openapi_json() -> Any:
    """The OpenAPI document for the request's tenant (from its token, session or host
    name, as every request resolves it): only the paths of the plugins it has on."""
    from crmcore.app import crm_state

    documents: TenantDocuments = current_app.extensions["crm_api_documents"]
    text = documents.json_for(crm_state().enabled(g.get("tenant")))
    return current_app.response_class(text, mimetype="application/json", headers={"Cache-Control": "no-cache", "Vary": "Authorization, Cookie, Host"})


@docs_pages.route(DOCS_PATH + "/")
def docs_page_slash() -> Any:
    return redirect(url_for("crm_api_docs.docs_page"), 308)


class LazyDocApi(Api):
    """flask-smorest's ``Api``, documenting blueprints when the document is first read.

    Registering a blueprint's routes is needed to serve requests; writing its OpenAPI
    documentation (about half of ``create_app``: apispec resolving every schema) is
    needed only by whoever reads ``api.spec`` -- the document's views, the tenant
    documents, the permission checks of the docs. So ``register_blueprint`` adds the
    routes at once and queues the documentation; the first read of ``spec`` writes it,
    in registration order, under a lock. The document is the same either way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending_docs: list[tuple[Any, str, Any]] = []
        self._docs_lock = threading.RLock()
        self._spec: Any = None
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def spec(self) -> Any:
        if self._pending_docs:
            with self._docs_lock:
                pending, self._pending_docs = self._pending_docs, []
                for blp, name, parameters in pending:
                    blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
                    self._spec.tag({"name": name, "description": blp.description})
        return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        with self._docs_lock:
            self._pending_docs.append((blp, name, parameters))


def init_app(app: Flask, api: Any) -> None:
    """Install the spec plugin and error responses on ``api``, and the docs page on ``app``.

    Call right after creating the ``Api``, before registering blueprints."""
    spec = api.spec
    plugin = CrmSpecPlugin(app)
    plugin.init_spec(spec)
    spec.plugins.append(plugin)
    spec.components.schema("ApiError", schema=ApiErrorSchema)
    ref = {"$ref": "#/components/schemas/ApiError"}
    for name, (_status, description) in ERROR_RESPONSES.items():
        spec.components.response(name, {"description": description, "content": {"application/json": {"schema": ref}}}, lazy=True)
    api.DEFAULT_ERROR_RESPONSE_NAME = "ApiError"
    api.ma_plugin.converter.add_attribute_function(decimal2properties)
    app.register_blueprint(docs_pages)
    # flask-smorest's own view serves the whole document to everyone: replace it.
    app.extensions["crm_api_documents"] = TenantDocuments(api)
    app.view_functions["api-docs.openapi_json"] = openapi_json


# --------------------------------------------------------------------------- docs/api.md


def permission_matrix_markdown() -> str:
    """The core's permission matrix for docs/api.md, from the built-in plugin
    :mod:`crmcore.builtin.permissions` (plugins document their own)."""
    from crmcore.builtin.permissions import CORE_PERMISSIONS
    from crmcore.permissions import ROLES

    lines = ["| permission | " + " | ".join(ROLES) + " |", "| --- |" + " :---: |" * len(ROLES)]
    for permission in CORE_PERMISSIONS:
        lines.append(f"| `{permission.name}` | " + " | ".join("yes" if role in permission.roles else "-" for role in ROLES) + " |")
    return "\n".join(lines) + "\n"


PERMISSIONS_BEGIN = "<!-- permissions:begin (generated: python -m crmcore.api_docs permissions) -->"
PERMISSIONS_END = "<!-- permissions:end -->"


def permissions_section(markdown: str) -> str | None:
    """The generated table inside docs/api.md (between the markers), or None."""
    match = re.search(re.escape(PERMISSIONS_BEGIN) + r"\n(.*?)" + re.escape(PERMISSIONS_END), markdown, re.S)
    return match.group(1) if match else None


def main(argv: list[str]) -> int:
    """``permissions``: print the matrix; ``permissions --write [docs/api.md]``: replace
    the generated section of that file."""
    if argv[:1] == ["permissions"] and len(argv) == 1:
        sys.stdout.write(permission_matrix_markdown())
        return 0
    if argv[:2] == ["permissions", "--write"] and len(argv) <= 3:
        from pathlib import Path

        path = Path(argv[2] if len(argv) == 3 else "docs/api.md")
        text = path.read_text()
        if permissions_section(text) is None:
            sys.stderr.write(f"{path}: no section between {PERMISSIONS_BEGIN} and {PERMISSIONS_END}\n")
            return 1
        start = text.index(PERMISSIONS_BEGIN) + len(PERMISSIONS_BEGIN) + 1
        path.write_text(text[:start] + permission_matrix_markdown() + text[text.index(PERMISSIONS_END, start):])
        return 0
    sys.stderr.write("usage: python -m crmcore.api_docs permissions [--write [docs/api.md]]\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
