"""The OpenAPI document and the interactive docs: a valid OpenAPI 3 document in which
every operation says what it needs and what it may answer; the docs page at
/api/v1/docs that works offline; docs/api.md's permission matrix equal to the code's."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from crmcore import api_docs
from crmcore.builtin.permissions import CORE_PERMISSIONS
from crmcore.permissions import ROLES

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "crmcore" / "static"
METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def spec(api_env):
    response = api_env.client("acme").get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                params = item[method].get("parameters", []) + item.get("parameters", [])
                yield f"{method.upper()} {path}", path, item[method], params


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


# --------------------------------------------------------------------------- the document


def test_openapi_document_is_valid_openapi_3(spec):
    from openapi_spec_validator import OpenAPIV30SpecValidator

    assert spec["openapi"].startswith("3.")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in OpenAPIV30SpecValidator(spec).iter_errors()]
    assert not errors, "\n".join(errors)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_every_operation_says_what_it_needs_and_may_answer(spec, api_env):
    known_permissions = api_env.crm.permissions  # the core's and the plugins'
    problems = []
    for key, path, op, params in operations(spec):
        responses = op.get("responses", {})
        if not (op.get("summary") or "").strip():
            problems.append(f"{key}: no summary (the first line of the view's docstring)")
        if not op.get("tags"):
            problems.append(f"{key}: no tag")
        if not any(code.startswith("2") for code in responses):
            problems.append(f"{key}: no success response")
        public = not op.get("security")
        if public:
            problems.append(f"{key}: no security requirement (every API operation needs a token)")
            continue
        if op["security"] != [{"bearerAuth": []}]:
            problems.append(f"{key}: security {op['security']} is not bearerAuth")
        for code, why in (("401", "no token"), ("429", "the API rate limit"), ("503", "a busy database")):
            if code not in responses:
                problems.append(f"{key}: {code} ({why}) not documented")
        permission = op.get("x-crm-permission")
        if permission is None:
            problems.append(f"{key}: names no permission (use crmcore.api.common.require)")
        elif permission not in known_permissions:
            problems.append(f"{key}: permission {permission!r} is declared nowhere (nobody has it)")
        elif "403" not in responses:
            problems.append(f"{key}: 403 not documented")
        if "{" in path and "404" not in responses:
            problems.append(f"{key}: 404 not documented")
        takes_input = "requestBody" in op or any(p.get("in") == "query" for p in params)
        if takes_input and "422" not in responses:
            problems.append(f"{key}: takes input but 422 is not documented")
        for code, response in responses.items():
            response = resolve(spec, response)
            if code[0] in "45" or code == "default":
                schema = (response.get("content") or {}).get("application/json", {}).get("schema")
                if schema != {"$ref": "#/components/schemas/ApiError"}:
                    problems.append(f"{key}: error response {code} has no ApiError body ({schema})")
    assert not problems, "\n".join(problems)


def _untyped(spec, schema, where, out, depth=0):
    """Properties of ``schema`` (recursively) that say nothing about their type."""
    if depth > 10 or not isinstance(schema, dict):
        return
    if "$ref" in schema:
        return  # a component: checked on its own
    for combinator in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(combinator, []):
            _untyped(spec, sub, where, out, depth + 1)
    for name, prop in (schema.get("properties") or {}).items():
        here = f"{where}.{name}"
        if not isinstance(prop, dict) or not ("type" in prop or "$ref" in prop or any(c in prop for c in ("allOf", "oneOf", "anyOf"))):
            out.append(f"{here}: no type")
            continue
        _untyped(spec, prop, here, out, depth + 1)
    if schema.get("type") == "array":
        items = schema.get("items")
        if not isinstance(items, dict) or not ("type" in items or "$ref" in items or any(c in items for c in ("allOf", "oneOf", "anyOf"))):
            out.append(f"{where}[]: items have no type")
        else:
            _untyped(spec, items, f"{where}[]", out, depth + 1)


def test_every_schema_property_is_typed(spec):
    problems: list[str] = []
    for name, schema in spec["components"].get("schemas", {}).items():
        if "type" not in schema and "allOf" not in schema and "oneOf" not in schema:
            problems.append(f"schema {name}: no type")
        _untyped(spec, schema, f"schema {name}", problems)
    for key, _path, op, params in operations(spec):
        for p in params:
            p = resolve(spec, p)
            if "type" not in (p.get("schema") or {}) and "$ref" not in (p.get("schema") or {}):
                problems.append(f"{key}: parameter {p.get('name')} has no type")
        for content in (op.get("requestBody") or {}).get("content", {}).values():
            _untyped(spec, content.get("schema") or {}, f"{key} request body", problems)
        for code, response in op.get("responses", {}).items():
            for content in resolve(spec, response).get("content", {}).values():
                _untyped(spec, content.get("schema") or {}, f"{key} {code}", problems)
    assert not problems, "\n".join(problems)


def test_decimal_fields_are_documented_as_decimal_strings(spec):
    lead = spec["components"]["schemas"]["Lead"]["properties"]["estimated_value"]
    assert lead["type"] == "string" and lead["format"] == "decimal"
    assert "minimum" not in lead  # a bound of a string field would not be valid OpenAPI


def test_documented_permissions_are_enforced(walk_env):
    """Each operation's x-crm-permission is what ``require`` checks: a role without it gets
    403 before anything else happens (ids need not exist)."""
    from tests.api.test_openapi_walk import UNKNOWN_ID, Ctx, Side, Spec

    api_env = walk_env
    spec = api_env.client("acme").get("/api/v1/openapi.json").json
    walk_spec = Spec(spec)
    acme = Side(api_env, "acme", walk_spec)
    for kind in walk_spec.kinds:  # ids that exist nowhere: a body valid in shape is enough
        acme.add_id(kind, UNKNOWN_ID)
    tokens = {role: api_env.token("acme", role) for role in ROLES}
    problems = []
    for op in walk_spec.operations:
        permission = op.doc.get("x-crm-permission")
        lacking = [role for role in ROLES if role not in api_env.crm.permissions.get(permission, ROLES)]
        if not lacking:
            continue
        role = lacking[0]
        entity = walk_spec.entities(op)[0]
        url, _ = acme.url(op, entity)
        body = acme.body(op, Ctx(entity, walk_spec.op_kind(op, entity)))
        acme.token = tokens[role]
        answer = acme.request(op.method, url, body=body)
        if answer.status != 403:
            problems.append(f"{op.key} as {role} (lacks {permission}): {answer.status} {answer.text[:200]}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the docs page


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.inline_scripts = 0
        self._in_script = False
        self.spec_url = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append((tag, attrs[name]))
        if tag == "script":
            self._in_script = "src" not in attrs
        if "data-spec-url" in attrs:
            self.spec_url = attrs["data-spec-url"]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_docs_page_works_offline(api_env):
    client = api_env.client("acme")
    page = client.get("/api/v1/docs")  # no credentials needed: the docs hold no data
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Swagger" in html or "swagger" in html

    links = _Links()
    links.feed(html)
    assert links.spec_url == "/api/v1/openapi.json"
    # Nothing from another host: no http(s) URL, no protocol-relative one.
    assert not re.search(r"(https?:)?//[a-z0-9]", html.replace("http://www.w3.org", ""), re.I), html
    assert links.inline_scripts == 0  # the CSP below forbids them
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src" not in csp.replace("default-src", "")

    assets = [url for _tag, url in links.urls if url != "data:,"]  # data:, is the empty favicon
    assert any(u.endswith("swagger-ui-bundle.js") for u in assets) and any(u.endswith("swagger-ui.css") for u in assets)
    for url in assets + [links.spec_url]:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.get_data()) > 0, url
        if url.endswith(".js"):
            assert asset.mimetype in ("text/javascript", "application/javascript"), (url, asset.mimetype)
        if url.endswith(".css"):
            assert asset.mimetype == "text/css", url
        asset.close()

    # The start-up script talks to this origin only (no online validator badge).
    script = (STATIC / "apidocs" / "apidocs.js").read_text()
    assert "validatorUrl: null" in script and "http" not in script
    assert client.get("/api/v1/docs/").status_code == 308


def test_docs_page_lets_you_paste_a_token(spec):
    """Swagger UI's Authorize button appears for a declared security scheme and sends the
    token as ``Authorization: Bearer``: the scheme must be HTTP bearer, and operations
    must ask for it."""
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert all(op.get("security") == [{"bearerAuth": []}] for _key, _path, op, _params in operations(spec))


def test_vendored_swagger_ui_is_the_recorded_release():
    folder = STATIC / "apidocs"
    recorded = dict(line.split()[::-1] for line in (folder / "VERSION").read_text().splitlines() if re.fullmatch(r"[0-9a-f]{64}  \S+", line))
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{name} differs from the vendored release"
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert (folder / "NOTICE").exists()


# --------------------------------------------------------------------------- docs/api.md


def test_permission_matrix_in_docs_matches_the_code():
    text = (ROOT / "docs" / "api.md").read_text()
    table = api_docs.permissions_section(text)
    assert table is not None, f"docs/api.md lacks the generated section ({api_docs.PERMISSIONS_BEGIN})"
    assert table == api_docs.permission_matrix_markdown(), "docs/api.md's permission matrix is out of date: regenerate it with `python -m crmcore.api_docs permissions --write`"
    # and the table says what the core's built-in permissions plugin says, row by row
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    parsed = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        parsed[cells[0].strip("`")] = tuple(role for role, cell in zip(ROLES, cells[1:], strict=True) if cell == "yes")
    assert parsed == {p.name: p.roles for p in CORE_PERMISSIONS}
