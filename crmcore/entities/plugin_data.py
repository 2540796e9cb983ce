"""Calling the plugins that store data about the core's records, for privacy requests and
merges (hooks ``crm_privacy_export``, ``crm_privacy_erase``, ``crm_merge_records``).

The other runtime hooks are called contained (``CRM.call``: a raising plugin is
logged and left out). That is wrong for an erase or a merge: leaving a plugin out there
means a person half erased, or a merged record whose chats lost their link, reported as
done. So :func:`call_strict` lets the first failure through as :class:`PluginDataError`
naming the plugin, and the caller's transaction rolls everything back. An export only
reads, so :func:`call_reporting` keeps going and reports which plugins failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from crmcore import db
from crmcore.entities import context

log = logging.getLogger("crmcore.entities.plugin_data")


class PluginDataError(Exception):
    """A plugin's erase or merge hook failed; the whole operation was refused (503)."""

    def __init__(self, plugin: str, hook: str, exc: BaseException):
        self.plugin = plugin
        self.hook = hook
        # The exception's type only: its text may hold the data being erased.
        super().__init__(f"plugin {plugin!r} failed in {hook} ({type(exc).__name__}); nothing was changed")


def _implementations(hook_name: str) -> Iterator[tuple[str, Any]]:
    """(plugin name, implementation) of the current tenant's enabled plugins, in pluggy's
    call order."""
    plugins = context.current().plugins
    if plugins is None:  # no adapter set a context: no plugin is asked
        return
    caller = plugins.hook(db.current_tenant(), hook_name)
    for impl in reversed(caller.get_hookimpls()):
        yield impl.plugin_name, impl


def _run(impl: Any, kwargs: dict[str, Any]) -> Any:
    return impl.function(*[kwargs[a] for a in impl.argnames])


def call_strict(hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call the hook for the current tenant's plugins: ``[(plugin, result), ...]`` without
    None results. The first implementation that raises stops the call with
    :class:`PluginDataError` (logged with its traceback)."""
    results = []
    for plugin, impl in _implementations(hook_name):
        try:
            result = _run(impl, kwargs)
        except Exception as exc:
            log.exception("plugin %r: hook %s failed; the operation is refused", plugin, hook_name)
            raise PluginDataError(plugin, hook_name, exc) from exc
        if result is not None:
            results.append((plugin, result))
    return results


def call_reporting(hook_name: str, /, **kwargs: Any) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """Call the hook for the current tenant's plugins, each contained: the answers as
    :func:`call_strict` gives them, and ``{plugin: message}`` for those that raised."""
    results, errors = [], {}
    for plugin, impl in _implementations(hook_name):
        try:
            result = _run(impl, kwargs)
        except Exception as exc:
            log.exception("plugin %r: hook %s failed; its part is left out", plugin, hook_name)
            errors[plugin] = f"{hook_name} failed ({type(exc).__name__}); this plugin's data is missing from the export"
            continue
        if result is not None:
            results.append((plugin, result))
    return results, errors


def add_counts(counts: dict[str, int], answers: list[tuple[str, Any]], hook_name: str) -> None:
    """Add the plugins' ``{table: count}`` answers to ``counts`` (zero counts left out). A
    malformed answer is the plugin's bug: refused like a raising implementation, since
    the caller cannot tell what was done."""
    for plugin, answer in answers:
        if not isinstance(answer, dict) or not all(isinstance(k, str) and type(v) is int for k, v in answer.items()):
            log.error("plugin %r: hook %s answered %r, not {table: count}; the operation is refused", plugin, hook_name, answer)
            raise PluginDataError(plugin, hook_name, TypeError(f"expected dict[str, int], got {answer!r}"))
        for key, value in answer.items():
            if value:
                counts[key] = counts.get(key, 0) + value
