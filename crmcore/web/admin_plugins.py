"""/app/admin/plugins: which plugins are installed, which are on for this tenant, and
this tenant's effective settings for each, with secrets masked; a plugin is turned on or
off here, and its settings edited in a form generated from its settings schema
(:mod:`crmcore.web.settings_form`).

Both write ``config/tenants/<slug>.toml`` through :mod:`crmcore.tenant_files`: the file
keeps its comments and layout, the edit is validated exactly as a hand edit is (refused
with the messages, the file untouched), and the running configuration reloads at once.
The file stays the source of truth. A value is masked when
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

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

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
    fingerprint = None
    if tc is not None and unreadable is None:
        from crmcore.tenant_files import fingerprint as text_fingerprint

        try:
            fingerprint = text_fingerprint(tc.path.read_text(encoding="utf-8"))
        except OSError:
            fingerprint = None
    return render_template("crm/admin/plugins.html", plugins=plugins, rel_path=rel_path, path=tc.path if tc else None,
                           unreadable=unreadable, problems=problems, mask=MASK, secret_words=SECRET_WORDS, fingerprint=fingerprint)


def _editable_plugin(name: str) -> Any:
    from crmcore.app import crm_state

    crm = crm_state()
    info = crm.host.infos.get(name)
    if info is None:
        abort(404)
    return crm, info


def _saved_message(reload_error: Any, what: str) -> None:
    if reload_error is None:
        flash(f"{what} Saved to config/tenants/{g.tenant.slug}.toml and applied.", "success")
    else:
        flash(f"{what} Saved to config/tenants/{g.tenant.slug}.toml, but the configuration could not be reloaded "
              f"(it applies once this is fixed): {reload_error}", "error")


@bp.route("/<name>/", methods=["GET", "POST"])
def settings(name: str):
    """The plugin's settings as a form; saving validates the whole tenant file."""
    from crmcore import tenant_files
    from crmcore.web.settings_form import changes_from_form, field_errors, form_fields

    crm, info = _editable_plugin(name)
    if info.settings is None or info.error:
        abort(404)
    try:
        current = tenant_files.read(crm.config_store.config_dir / "tenants" / f"{g.tenant.slug}.toml")
    except Exception as exc:  # unreadable or not TOML: the page says so, nothing is written
        return render_template("crm/admin/plugin_settings.html", plugin=info, fields=[], broken=f"{exc.__class__.__name__}: {exc}",
                               other_errors=[], fingerprint="", enabled=name in crm.enabled(g.tenant), rel_path=f"config/tenants/{g.tenant.slug}.toml"), 409
    raw = current.raw_settings(name)
    errors: dict[str, list[str]] = {}
    other: list[str] = []
    status = 200
    if request.method == "POST":
        changes, errors = changes_from_form(info.settings, request.form, raw, info.defaults)
        if not errors and changes:
            try:
                reload_error = tenant_files.save(crm.config_store, g.tenant.slug, lambda doc: tenant_files.with_settings(doc, name, changes),
                                                 request.form.get("fingerprint") or None)
            except tenant_files.StaleFile:
                other = ["The tenant file was changed by someone else since this page was opened: nothing was saved. Reload the page to see the file as it is now."]
                status = 409
            except tenant_files.RefusedEdit as exc:
                errors, other = field_errors(exc.problems, name)
                status = 422
            else:
                _saved_message(reload_error, f"Settings of {name} saved.")
                return redirect(url_for(".settings", name=name))
        elif not errors:
            flash("Nothing changed.", "success")
            return redirect(url_for(".settings", name=name))
        else:
            status = 422
    effective = crm.settings(g.tenant, name)
    shown = form_fields(info.settings, effective, raw, errors, request.form if request.method == "POST" else None)
    return render_template("crm/admin/plugin_settings.html", plugin=info, fields=shown, broken=None, other_errors=other,
                           fingerprint=current.fingerprint, enabled=info.always_on or name in crm.enabled(g.tenant),
                           rel_path=f"config/tenants/{g.tenant.slug}.toml"), status


@bp.post("/<name>/enabled")
def set_enabled(name: str):
    """Turn the plugin on (``on=1``) or off for this tenant: the ``plugins`` list of the file."""
    from crmcore import tenant_files

    crm, info = _editable_plugin(name)
    if info.always_on:
        abort(404)
    on = request.form.get("on") == "1"
    try:
        reload_error = tenant_files.save(crm.config_store, g.tenant.slug, lambda doc: tenant_files.with_plugin(doc, name, on),
                                         request.form.get("fingerprint") or None)
    except tenant_files.StaleFile:
        flash("The tenant file was changed by someone else since this page was opened: nothing was saved. Try again.", "error")
        return redirect(url_for(".index"), code=303)
    except tenant_files.RefusedEdit as exc:
        reasons = "; ".join(p.reason if p.key in ("plugins", "") or p.key.startswith("plugins[") else f"{p.key}: {p.reason}" for p in exc.problems)
        flash(f"{name} was not turned {'on' if on else 'off'}: {reasons}", "error")
        return redirect(url_for(".index"), code=303)
    _saved_message(reload_error, f"{name} turned {'on' if on else 'off'}.")
    return redirect(url_for(".index"))
