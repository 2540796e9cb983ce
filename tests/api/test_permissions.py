"""Permissions deny by default, and the OpenAPI document per tenant.

* Every API operation declares a permission (``require``) or ``@public``: one that does
  not, or names a permission nobody declared, stops create_app with an error naming the
  plugin, the blueprint, the route and the method.
* The check runs centrally for every API request, whatever the view's decorators do.
* The core's matrix comes from the built-in ``permissions`` plugin through
  ``crm_permissions``; its areas are the core's alone.
* A viewer writes through no plugin's API (bundled plugins and the sample plugin).
* ``/api/v1/openapi.json`` and ``/api/v1/docs`` answer for the request's tenant: no path
  of a plugin it has off; each operation names its permission and the roles that have it.
"""

from __future__ import annotations

import functools
import os
import re

import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from crmcore import Permission, hookimpl
from crmcore.api.common import public, require
from crmcore.app import create_app
from crmcore.migrations import migrate
from crmcore.permissions import ROLES
from crmcore.plugins import PluginError, PluginHost, PluginInfo

WRITE_METHODS = ("post", "put", "patch", "delete")
METHODS = ("get",) + WRITE_METHODS

#: The core's matrix as it was in crmcore/api/common.py before it became the built-in
#: plugin's contribution (and as docs/api.md shows it).
CORE_MATRIX_BEFORE = {
    "records:read": ("admin", "manager", "agent", "viewer"),
    "records:write": ("admin", "manager", "agent"),
    "records:delete": ("admin", "manager"),
    "records:bulk": ("admin", "manager"),
    "records:import": ("admin", "manager"),
    "records:export": ("admin", "manager"),
    "records:merge": ("admin", "manager"),
    "privacy:manage": ("admin",),
    "pipelines:manage": ("admin", "manager"),
    "custom_fields:manage": ("admin",),
    "audit:read": ("admin", "manager"),
    "analytics:read": ("admin", "manager", "agent", "viewer"),
    # added with in-app notifications (crmcore.notifications): everyone reads their own
    "notifications:own": ("admin", "manager", "agent", "viewer"),
    # Added with the analytics plugin (issue 15): the core owns the "analytics" area, so
    # the plugin's goal-setting permission is declared here.
    "analytics:goals": ("admin", "manager"),
    # added with saved views (issue 16): tidying the views others shared
    "views:manage": ("admin", "manager"),
}


def build_app(crm_env, plugins: dict[str, object]):
    """An app with extra plugin objects (always on) registered before startup."""
    host = PluginHost()
    host.discover(entry_points=False)
    for name, obj in plugins.items():
        host.pm.register(obj, name=name)
        host.infos[name] = PluginInfo(name, "0", "", (), None, name, "test", hooks_module=obj, always_on=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    app = create_app(crm_env.config_dir, env=env, host=host)
    crm_env.apps.append(app)
    with app.app_context():
        migrate(host, report=lambda m: None)
    return app


class NameSchema(Schema):
    name = fields.String(required=True)


def api_plugin(blueprint: Blueprint, permissions: list[Permission] | None = None) -> object:
    class ApiPlugin:
        @hookimpl
        def crm_api_blueprints(self):
            return [blueprint]

        @hookimpl
        def crm_permissions(self):
            return permissions or []

    return ApiPlugin()


def bearer(env, slug: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.token(slug, role)}"}


# --------------------------------------------------------------------------- startup


def test_an_api_operation_without_a_permission_stops_the_app(crm_env):
    blp = Blueprint("loose_api", __name__, url_prefix="/loose")

    @blp.route("/items")
    class Items(MethodView):
        @blp.response(200)
        @require("records:read")
        def get(self):
            """List"""
            return []

        @blp.arguments(NameSchema)
        @blp.response(201)
        def post(self, data):  # forgot @require
            """Create"""
            return data, 201

    @blp.route("/ping", methods=["GET"])
    def ping():  # a plain route function, forgotten too
        return {"ok": True}

    crm_env.write_tenant("acme")
    with pytest.raises(PluginError) as caught:
        build_app(crm_env, {"loose": api_plugin(blp)})
    message = str(caught.value)
    assert "plugin 'loose', blueprint 'loose_api': POST /api/v1/loose/items declares no permission" in message
    assert "plugin 'loose', blueprint 'loose_api': GET /api/v1/loose/ping declares no permission" in message
    assert "GET /api/v1/loose/items" not in message  # that one declares records:read


def test_a_permission_nobody_declares_stops_the_app(crm_env):
    blp = Blueprint("typo_api", __name__, url_prefix="/typo")

    @blp.route("/items")
    class Items(MethodView):
        @blp.response(200)
        @require("typo:raed")
        def get(self):
            """List"""
            return []

    crm_env.write_tenant("acme")
    with pytest.raises(PluginError, match=re.escape("plugin 'typo', blueprint 'typo_api': GET /api/v1/typo/items requires 'typo:raed', which no plugin declares")):
        build_app(crm_env, {"typo": api_plugin(blp, [Permission("typo:read", ROLES)])})


@pytest.mark.parametrize(("plugin", "name", "error"), [
    ("intruder", "records:purge", "must be named 'intruder:<action>'"),
    ("intruder", "intruder", "must be named 'intruder:<action>'"),
    ("records", "records:purge", "the area 'records' is the core's"),
    ("intruder", "intruder:read", None),
])
def test_core_areas_are_for_built_in_plugins_only(crm_env, plugin, name, error):
    class Declares:
        @hookimpl
        def crm_permissions(self):
            return [Permission(name, ("admin",))]

    crm_env.write_tenant("acme")
    if error is None:
        assert build_app(crm_env, {plugin: Declares()}).extensions["crm"].permissions[name] == ("admin",)
    else:
        with pytest.raises(PluginError, match=re.escape(error)):
            build_app(crm_env, {plugin: Declares()})


def test_the_core_matrix_is_the_built_in_plugins_and_unchanged(api_env):
    host = api_env.crm.host
    assert host.infos["permissions"].always_on and host.infos["permissions"].source == "builtin"
    declared = dict(host.call_startup("crm_permissions"))
    assert {p.name: p.roles for p in declared["permissions"]} == CORE_MATRIX_BEFORE
    assert {k: v for k, v in api_env.crm.permissions.items() if k in CORE_MATRIX_BEFORE} == CORE_MATRIX_BEFORE


# --------------------------------------------------------------------------- enforcement


def test_the_check_runs_whatever_the_decorators_do(crm_env):
    """A decorator that calls the undecorated view (skipping require's own check) does
    not open the operation: the check runs before the view, from what it declares."""

    def unwrapping(func):
        @functools.wraps(func)
        def call_innermost(*args, **kwargs):
            return getattr(func, "__wrapped__", func)(*args, **kwargs)

        return call_innermost

    blp = Blueprint("odd_api", __name__, url_prefix="/odd")
    calls = []

    @blp.route("/things")
    class Things(MethodView):
        @blp.response(201)
        @unwrapping
        @require("odd:write")
        def post(self):
            """Create"""
            calls.append(1)
            return {"ok": True}, 201

    @blp.route("/open")
    class Open(MethodView):
        @blp.response(200)
        @public
        def get(self):
            """Anyone"""
            return {"open": True}

    crm_env.write_tenant("acme")
    build_app(crm_env, {"odd": api_plugin(blp, [Permission("odd:write", ("admin",))])})
    client = crm_env.client("acme")
    assert client.post("/api/v1/odd/things").status_code == 401
    refused = client.post("/api/v1/odd/things", headers=bearer(crm_env, "acme", "manager"))
    assert refused.status_code == 403 and "odd:write" in refused.json["message"]
    assert calls == []
    assert client.post("/api/v1/odd/things", headers=bearer(crm_env, "acme", "admin")).status_code == 201
    assert calls == [1]
    # @public: no credentials needed, and documented without a security requirement
    assert client.get("/api/v1/odd/open").json == {"open": True}
    doc = client.get("/api/v1/openapi.json").json
    assert doc["paths"]["/api/v1/odd/open"]["get"]["security"] == []
    assert doc["paths"]["/api/v1/odd/things"]["post"]["x-crm-permission"] == "odd:write"


@pytest.fixture
def every_plugin_env(sample_plugin_path, walk_env):
    """acme with every installed plugin on, the sample plugin included."""
    assert "sample" in walk_env.crm.enabled(walk_env.tenant("acme"))
    return walk_env


def test_a_viewer_writes_through_no_plugin_api(every_plugin_env):
    """Every write operation of every plugin (bundled and sample), called by a viewer:
    none answers 2xx, and each whose permission viewers lack answers 403 before the
    view runs (so ids that exist nowhere and an empty body are enough)."""
    env = every_plugin_env
    client = env.client("acme")
    viewer = bearer(env, "acme", "viewer")
    doc = client.get("/api/v1/openapi.json", headers=bearer(env, "acme", "admin")).json
    called, problems = [], []
    for path, item in doc["paths"].items():
        for method in WRITE_METHODS:
            op = item.get(method)
            if op is None or op["x-crm-plugin"] in ("core", "permissions"):
                continue
            url = re.sub(r"\{[^}]+\}", "987654321", path)
            answer = client.open(url, method=method.upper(), json={}, headers=viewer)
            called.append(f"{method.upper()} {path}")
            viewers_may = "viewer" in env.crm.permissions[op["x-crm-permission"]]
            if 200 <= answer.status_code < 300 or (not viewers_may and answer.status_code != 403):
                problems.append(f"{method.upper()} {path} ({op['x-crm-permission']}): {answer.status_code} {answer.get_data(as_text=True)[:200]}")
    assert not problems, "\n".join(problems)
    plugins_walked = {doc["paths"][key.split(" ")[1]][key.split(" ")[0].lower()]["x-crm-plugin"] for key in called}
    assert {"chat", "kanban", "scoring", "sample"} <= plugins_walked, plugins_walked


# --------------------------------------------------------------------------- the document


@pytest.fixture
def chat_env(crm_env):
    crm_env.write_tenant("talky", name="Talky Ltd", plugins=["chat"])
    crm_env.write_tenant("quiet", name="Quiet Inc")
    crm_env.create_app()
    return crm_env


def operations(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_the_document_is_the_tenants(chat_env):
    from openapi_spec_validator import OpenAPIV30SpecValidator

    env = chat_env
    talky = env.client("talky").get("/api/v1/openapi.json").json  # tenant from the host name
    quiet = env.client("quiet").get("/api/v1/openapi.json", headers=bearer(env, "quiet", "viewer")).json
    assert any("/chat/" in path for path in talky["paths"])
    assert not [path for path in quiet["paths"] if "/chat/" in path]
    assert "/api/v1/leads" in quiet["paths"]  # the core's are everyone's
    assert {op["x-crm-plugin"] for _p, _m, op in operations(quiet)} == {"core", "csv", "privacy"}  # the built-ins
    # tags and schemas only chat used are gone too, and the cut is valid OpenAPI 3
    assert "chat_api" in {t["name"] for t in talky["tags"]} and "chat_api" not in {t["name"] for t in quiet["tags"]}
    chat_only = set(talky["components"]["schemas"]) - set(quiet["components"]["schemas"])
    assert chat_only and all(name not in quiet["components"]["schemas"] for name in chat_only)
    for doc in (talky, quiet):
        errors = [e.message[:200] for e in OpenAPIV30SpecValidator(doc).iter_errors()]
        assert not errors, errors
    # the token's tenant wins over the host name, as for every request
    as_talky = env.client("quiet").get("/api/v1/openapi.json", headers=bearer(env, "talky", "admin")).json
    assert as_talky == talky
    # a host name no tenant has: the core's paths only
    nobody = env.app.test_client().get("/api/v1/openapi.json", base_url="http://unknown.test").json
    assert nobody["paths"] == quiet["paths"]


def test_each_operation_names_its_permission_and_roles(chat_env):
    env = chat_env
    doc = env.client("talky").get("/api/v1/openapi.json").json
    permissions = env.crm.permissions
    problems = []
    for path, method, op in operations(doc):
        permission = op.get("x-crm-permission")
        if permission not in permissions:
            problems.append(f"{method.upper()} {path}: permission {permission!r}")
            continue
        roles = permissions[permission]
        if op.get("x-crm-roles") != list(roles):
            problems.append(f"{method.upper()} {path}: roles {op.get('x-crm-roles')} != {roles}")
        if f"Permission: `{permission}` (roles: {', '.join(roles)})." not in op.get("description", ""):
            problems.append(f"{method.upper()} {path}: description lacks the permission line")
        if "(roles: none)" in op.get("description", ""):
            problems.append(f"{method.upper()} {path}: says no role has its permission")
    assert not problems, "\n".join(problems)
    chat_post = doc["paths"]["/api/v1/chat/faq"]["post"]
    assert chat_post["x-crm-permission"] == "chat:manage" and chat_post["x-crm-roles"] == ["admin", "manager"]


def test_the_docs_page_is_the_tenants(chat_env):
    page = chat_env.client("talky").get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Talky Ltd" in html and 'data-spec-url="/api/v1/openapi.json"' in html
    assert "Quiet Inc" in chat_env.client("quiet").get("/api/v1/docs").get_data(as_text=True)
