"""/app/admin/plugins: which plugins are installed, which are on for this tenant, and
this tenant's effective settings for each, read-only, with secrets masked.

Settings are edited in ``config/tenants/<slug>.toml``, not here. A value is masked when
its key (at any depth) contains secret, token, password or key, and when the tenant file
gives it as ``{ "$env" = "NAME" }``. The loaded configuration does not remember where a
value came from, so the page reads the tenant file again to find the ``$env`` values;
when that file cannot be read, or has changed into one the running configuration
refused, every value not known to be a plain default is masked.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Blueprint, g, render_template

from crmcore.web.admin import admin_only

bp = admin_only(Blueprint("admin_plugins", __name__, url_prefix="/app/admin/plugins"))

SECRET_WORDS = ("secret", "token", "password", "key")
MASK = "••••••••"
_MISSING = object()


@dataclass(frozen=True)
class SettingRow:
    """One setting as the page shows it."""

    key: str  # dotted for nested tables: smtp.password
    display: str  # the value (JSON-like) or the mask
    masked: bool
    origin: str  # "file", "default", "$env NAME", "unknown"


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def env_name(raw: Any) -> str | None:
    """``NAME`` when ``raw`` is ``{"$env": "NAME"}``."""
    if isinstance(raw, dict) and set(raw) == {"$env"}:
        return str(raw["$env"])
    return None


def mentions_env(raw: Any) -> bool:
    """Whether ``raw`` holds an ``$env`` reference anywhere inside."""
    if env_name(raw) is not None:
        return True
    if isinstance(raw, dict):
        return any(mentions_env(v) for v in raw.values())
    if isinstance(raw, list):
        return any(mentions_env(v) for v in raw)
    return False


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def masked_settings(values: Mapping[str, Any], raw: Mapping[str, Any] | None, *, trusted: bool = True, prefix: str = "", secret_parent: bool = False) -> list[SettingRow]:
    """The rows for a plugin's effective ``values``.

    ``raw`` is the plugin's table as written in the tenant file (None: no table there);
    ``trusted`` is False when the file could not be read or may not be the running
    configuration, so that origins are unknown and every value is masked."""
    rows: list[SettingRow] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        raw_value = raw.get(key, _MISSING) if isinstance(raw, Mapping) else _MISSING
        secret = secret_parent or is_secret_key(str(key))
        env = env_name(raw_value)
        if not trusted:
            origin = "unknown"
        elif env is not None:
            origin = f"$env {env}"
        elif raw_value is _MISSING:
            origin = "default"
        else:
            origin = "file"
        if isinstance(value, Mapping) and value and env is None:
            rows.extend(masked_settings(value, raw_value if isinstance(raw_value, Mapping) else None, trusted=trusted, prefix=f"{name}.", secret_parent=secret))
            continue
        hide = secret or not trusted or mentions_env(raw_value)
        if hide and value in (None, ""):
            rows.append(SettingRow(name, "(not set)", False, origin))
        else:
            rows.append(SettingRow(name, MASK if hide else show(value), hide, origin))
    return rows


def tenant_file_settings(path: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The ``settings`` table of the tenant file as written, or (None, why not)."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return None, f"the tenant file could not be read ({exc.__class__.__name__})"
    settings = raw.get("settings", {})
    return (settings if isinstance(settings, dict) else {}), None


@bp.route("/")
def index():
    """Every installed plugin, on or off here, with its effective settings."""
    from crmcore.app import crm_state

    crm = crm_state()
    tc = crm.tenant_config(g.tenant)
    enabled = crm.enabled(g.tenant)
    file_settings, unreadable = tenant_file_settings(tc.path) if tc is not None else (None, "no tenant file")
    error = crm.config_store.last_error
    problems = [p for p in (error.problems if error else []) if tc is not None and p.file == str(tc.path)]
    trusted = unreadable is None and not problems
    plugins = []
    for name, info in sorted(crm.host.infos.items(), key=lambda item: (not item[1].always_on, item[0])):
        rows: list[SettingRow] = []
        if info.settings is not None and not info.error:
            values = crm.settings(g.tenant, name)
            raw = (file_settings or {}).get(name) if trusted else None
            rows = masked_settings(values, raw if isinstance(raw, dict) else None, trusted=trusted)
        plugins.append({
            "name": name, "version": info.version, "summary": info.summary, "source": info.source, "error": info.error,
            "always_on": info.always_on, "enabled": name in enabled, "requires": info.requires,
            "has_settings": info.settings is not None, "settings": rows,
        })
    rel_path = f"config/tenants/{g.tenant.slug}.toml"
    return render_template("crm/admin/plugins.html", plugins=plugins, rel_path=rel_path, path=tc.path if tc else None,
                           unreadable=unreadable, problems=problems, mask=MASK, secret_words=SECRET_WORDS)
