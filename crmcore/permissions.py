"""Permissions: the role matrix, how an API operation declares what it needs, and the
check that runs for every API request whatever its author wrote (deny by default).

* The matrix (permission -> roles) is built at app creation from the ``crm_permissions``
  hook: the core's own permissions come from the built-in plugin
  :mod:`crmcore.builtin.permissions`, each plugin adds ``<plugin>:<action>`` names.
* Every operation of every API blueprint declares one permission with :func:`require`,
  or opts out with :func:`public`. :func:`check_api_operations` walks them all at app
  creation: an operation that declares nothing, or names a permission nobody declared,
  stops the app with an error naming the plugin, the blueprint, the route and the method.
* :func:`refusal` runs before every API request (``crmcore.app``), from the matched
  endpoint and method: 401 without credentials, 403 without the permission. The check
  does not depend on where ``@require`` sits among the view's decorators, or on the view
  calling anything: a route without a check cannot exist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, request
from flask_smorest import abort

from crmcore.plugins import PluginError

ROLES = ("admin", "manager", "agent", "viewer")

#: What :func:`public` declares instead of a permission name.
PUBLIC = "(public)"

_ATTRIBUTE = "_crm_permission"


def require(permission: str) -> Callable:
    """Declare the permission a view needs: ``@require("<plugin>:<action>")``.

    On an API operation the check itself runs centrally before the request reaches the
    view (:func:`refusal`), so the decorator's place among the others does not matter.
    The wrapper checks too, so that ``require`` also protects a web page's view: 401
    without credentials, 403 without the permission.
    """

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.get("role") is None:
                abort(401, message="authentication required")
            if not has_permission(permission):
                abort(403, message=lacks_message(permission))
            return func(*args, **kwargs)

        setattr(wrapper, _ATTRIBUTE, permission)
        return wrapper

    return decorator


def public(func: Callable) -> Callable:
    """Declare an API operation open to anyone, without credentials: ``@public``.

    Only for operations that read nothing of a tenant's records and act for nobody (a
    health check, a widget's public configuration). The OpenAPI document shows them
    without a security requirement."""
    setattr(func, _ATTRIBUTE, PUBLIC)
    return func


def declared_permission(view: Any, method: str) -> str | None:
    """What the view serving ``method`` declares: a permission name, :data:`PUBLIC`, or
    None (nothing). For a ``MethodView`` that is the method's function; a plain view
    function declares one permission for every method it serves. flask-smorest's
    decorators copy the attribute outwards (``functools.wraps``)."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, method.lower(), None)
    return getattr(view, _ATTRIBUTE, None)


def has_permission(permission: str, role: str | None = None) -> bool:
    """Whether ``role`` (default: the caller's) has ``permission`` in the app's matrix."""
    from crmcore.app import crm_state

    role = role if role is not None else g.get("role")
    return role in crm_state().permissions.get(permission, ())


def lacks_message(permission: str) -> str:
    return f"your role ({g.get('role')}) lacks the permission {permission}"


# --------------------------------------------------------------------------- the matrix


def collect_matrix(host: Any) -> dict[str, tuple[str, ...]]:
    """The role matrix from every plugin's ``crm_permissions``, checked.

    Built-in plugins come first and may name any area (``records:``, ``privacy:`` ...):
    those areas are the core's. Any other plugin's names are ``<plugin>:<action>``. A
    name declared twice, a badly formed name or an unknown role is a startup error."""
    builtin = {name for name, info in host.infos.items() if info.source == "builtin"}
    contributions = sorted(host.call_startup("crm_permissions"), key=lambda kv: kv[0] not in builtin)
    matrix: dict[str, tuple[str, ...]] = {}
    core_areas: set[str] = set()
    for plugin, permissions in contributions:
        for perm in permissions:
            area, _, action = perm.name.partition(":")
            if perm.name in matrix:
                raise PluginError(f"plugin {plugin!r}: permission {perm.name!r} is already declared")
            if plugin in builtin:
                if not area or not action:
                    raise PluginError(f"plugin {plugin!r}: permission {perm.name!r} must be named '<area>:<action>'")
                core_areas.add(area)
            elif area != plugin or not action:
                raise PluginError(f"plugin {plugin!r}: permission {perm.name!r} must be named '{plugin}:<action>'")
            elif area in core_areas:
                raise PluginError(f"plugin {plugin!r}: the area {area!r} is the core's; a plugin with this name cannot declare permissions")
            unknown = set(perm.roles) - set(ROLES)
            if unknown:
                raise PluginError(f"plugin {plugin!r}: permission {perm.name!r} names unknown roles {sorted(unknown)}")
            matrix[perm.name] = tuple(perm.roles)
    return matrix


# --------------------------------------------------------------------------- operations


def api_operations(app: Flask, api_blueprints: Iterable[str]) -> Iterable[tuple[Any, str, str]]:
    """(rule, top blueprint, method) of every operation of the API blueprints."""
    api_blueprints = set(api_blueprints)
    for rule in app.url_map.iter_rules():
        top = rule.endpoint.split(".")[0]
        if top in api_blueprints:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule, top, method


def check_api_operations(app: Flask, crm: Any) -> dict[tuple[str, str], str]:
    """Every API operation's declared permission, by (endpoint, method); a startup
    error listing every operation that declares none or names an unknown permission."""
    declared: dict[tuple[str, str], str] = {}
    problems = []
    for rule, top, method in api_operations(app, crm.api_blueprints):
        permission = declared_permission(app.view_functions[rule.endpoint], method)
        where = f"plugin {crm.blueprint_plugins.get(top, '?')!r}, blueprint {top!r}: {method} {rule.rule}"
        if permission is None:
            problems.append(f"{where} declares no permission: decorate it with @require('<permission>'), or @public if anyone may call it")
        elif permission != PUBLIC and permission not in crm.permissions:
            problems.append(f"{where} requires {permission!r}, which no plugin declares (crm_permissions)")
        else:
            declared[(rule.endpoint, method)] = permission
    if problems:
        raise PluginError("API operations without a valid permission:\n  " + "\n  ".join(problems))
    return declared


def refusal(crm: Any) -> tuple[int, str] | None:
    """Before an API request: (status, message) if the caller may not call the matched
    operation, else None. An operation missing from the startup map is refused too."""
    rule = request.url_rule
    if rule is None:
        return None  # no such route or method: routing answers 404/405
    method = "GET" if request.method == "HEAD" else request.method
    needed = crm.operation_permissions.get((rule.endpoint, method))
    if needed == PUBLIC:
        return None
    if g.get("token") is None and g.get("user") is None:
        return 401, "authentication required: send Authorization: Bearer <token>"
    if method == "OPTIONS":
        return None  # Flask answers with the allowed methods; no view runs
    if needed is None:
        return 403, "this operation declares no permission"
    if g.get("role") not in crm.permissions.get(needed, ()):
        return 403, lacks_message(needed)
    return None
