"""Plugin discovery, dependency order and per-tenant hook callers.

Plugins come from three places, registered the same way:

* the core's built-in plugins (``crmcore.builtin.BUILTIN_PLUGINS``, always on);
* the ``crm.plugins`` entry-point group (the bundled plugins and any ``pip install``-ed
  one): the entry point names the plugin's *package*, whose ``plugin = Plugin(...)`` is
  its metadata, and whose ``hooks`` module is registered with pluggy;
* an optional plugins directory of packages with the same shape.

Per-tenant enablement uses pluggy's ``subset_hook_caller``: a live proxy of a hook
without the plugins a tenant has not enabled. They are cached per (hook, disabled set),
as pytest caches its FSHookProxy, because building one per call would leak (pluggy #346).

Calls go through pluggy itself (wrappers, ``firstresult``, monitoring and tracing all
work), with each implementation contained (:mod:`crmcore.hookcalls`) and its answers
checked against the hookspec's return annotation (:mod:`crmcore.hookresults`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy
from marshmallow import Schema

from crmcore import hookspecs
from crmcore.contrib import Plugin
from crmcore.hookcalls import ContainedCall, ContainingPluginManager, PluginError
from crmcore.hookresults import Check, checker_for

log = logging.getLogger("crmcore.plugins")

ENTRY_POINT_GROUP = "crm.plugins"
CORE = "core"


__all__ = ["PluginError", "PluginHost", "PluginInfo"]


@dataclass
class PluginInfo:
    """What the core knows about one installed plugin."""

    name: str
    version: str
    summary: str
    requires: tuple[str, ...]
    settings: type[Schema] | None
    package: str
    source: str  # "builtin", "entry point (dist x.y)", "plugins dir"
    hooks_module: ModuleType | None = None
    error: str | None = None
    always_on: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)


def _load_package(package: ModuleType, source: str, always_on: bool = False) -> tuple[PluginInfo, ModuleType | None]:
    meta = getattr(package, "plugin", None)
    if not isinstance(meta, Plugin):
        raise PluginError(f"{package.__name__}: no `plugin = crmcore.Plugin(...)` metadata in the package")
    info = PluginInfo(
        name=meta.name,
        version=meta.version,
        summary=meta.summary,
        requires=tuple(meta.requires),
        settings=meta.settings,
        package=package.__name__,
        source=source,
        always_on=always_on,
    )
    if meta.hookspecs:
        info_specs = importlib.import_module(meta.hookspecs)
    else:
        info_specs = None
    hooks = importlib.import_module(meta.hooks or f"{package.__name__}.hooks")
    info.hooks_module = hooks
    if meta.settings is not None:
        info.defaults = meta.settings().load({})
    return info, info_specs


class PluginHost:
    """The plugin manager plus what the core knows of each plugin."""

    def __init__(self) -> None:
        self.pm: pluggy.PluginManager = ContainingPluginManager("crm")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._subset_cache: dict[tuple[str, frozenset[str]], Any] = {}
        self._checks: dict[str, tuple[Check | None, str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ discovery

    def discover(self, plugins_dir: Path | None = None, entry_points: bool = True) -> None:
        """Find and register every plugin: built-in, entry points, plugins directory."""
        from crmcore.builtin import BUILTIN_PLUGINS

        for package in BUILTIN_PLUGINS:
            self._add(importlib.import_module(package), "builtin", always_on=True)
        if entry_points:
            for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
                try:
                    package = ep.load()
                except Exception as exc:  # a broken plugin must not stop the instance
                    self._broken(ep.name, f"entry point ({dist})", exc)
                    continue
                self._add(package, f"entry point ({dist})", expected_name=ep.name, dist_version=ep.dist.version if ep.dist else None)
        if plugins_dir and plugins_dir.is_dir():
            if str(plugins_dir) not in sys.path:
                sys.path.insert(0, str(plugins_dir))
            for child in sorted(plugins_dir.iterdir()):
                if (child / "__init__.py").exists():
                    try:
                        package = importlib.import_module(child.name)
                    except Exception as exc:
                        self._broken(child.name, f"plugins dir {plugins_dir}", exc)
                        continue
                    self._add(package, f"plugins dir {plugins_dir}", expected_name=child.name)
        self._check_requirements()

    def _broken(self, name: str, source: str, exc: BaseException) -> None:
        log.error("plugin %r (%s) failed to load:\n%s", name, source, "".join(traceback.format_exception(exc)))
        self.infos[name] = PluginInfo(name, "?", "", (), None, "?", source, error=f"{type(exc).__name__}: {exc}")

    def _add(self, package: ModuleType, source: str, *, always_on: bool = False, expected_name: str | None = None, dist_version: str | None = None) -> None:
        try:
            info, specs = _load_package(package, source, always_on)
        except Exception as exc:
            self._broken(expected_name or package.__name__, source, exc)
            return
        if expected_name and info.name != expected_name:
            self._broken(expected_name, source, PluginError(f"entry point {expected_name!r} names plugin {info.name!r}: they must match"))
            return
        if info.name in self.infos:
            raise PluginError(f"two plugins are named {info.name!r}: {self.infos[info.name].source} and {source}")
        if dist_version and info.version == "0.0.0":
            info.version = dist_version
        try:
            if specs is not None:
                self.pm.add_hookspecs(specs)
            self.pm.register(info.hooks_module, name=info.name)
        except Exception as exc:  # e.g. pluggy rejecting a misspelt hook argument
            self._broken(info.name, source, exc)
            return
        self.infos[info.name] = info

    def register(self, package: ModuleType, source: str = "registered") -> PluginInfo:
        """Register one more plugin package at run time (tests; embedding)."""
        self._add(package, source)
        self._check_requirements()
        self._subset_cache.clear()
        self._checks.clear()  # the plugin may have declared hookspecs
        return self.infos[package.plugin.name]

    def unregister(self, name: str) -> None:
        info = self.infos.pop(name)
        if info.hooks_module is not None and self.pm.is_registered(info.hooks_module):
            self.pm.unregister(info.hooks_module)
        self._subset_cache.clear()

    def _check_requirements(self) -> None:
        for info in self.infos.values():
            if info.error:
                continue
            missing = [r for r in info.requires if r not in self.infos or self.infos[r].error]
            if missing:
                info.error = f"requires plugin(s) not installed or broken: {', '.join(missing)}"
                log.error("plugin %r %s", info.name, info.error)
                # A plugin that cannot work contributes nothing (no routes, receivers ...).
                if info.hooks_module is not None and self.pm.is_registered(info.hooks_module):
                    self.pm.unregister(info.hooks_module)

    # ------------------------------------------------------------------ order

    def ordered(self) -> list[PluginInfo]:
        """Working plugins in dependency order (requirements first, then by name)."""
        done: list[PluginInfo] = []
        seen: set[str] = set()
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            if name in visiting:
                raise PluginError(f"plugin dependency cycle through {name!r}")
            visiting.add(name)
            for req in sorted(self.infos[name].requires):
                visit(req)
            visiting.discard(name)
            seen.add(name)
            done.append(self.infos[name])

        working = sorted(n for n, i in self.infos.items() if not i.error)
        for name in [CORE] + [n for n in working if n != CORE] if CORE in working else working:
            visit(name)
        return done

    def working(self) -> set[str]:
        return {n for n, i in self.infos.items() if not i.error}

    def plugin_of(self, impl_plugin: Any) -> str:
        return self.pm.get_name(impl_plugin) or "?"

    # ------------------------------------------------------------------ calling

    def call_startup(self, hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a startup hook on every plugin, through pluggy; results as (plugin, result)
        in dependency order. A raising implementation is a startup error naming the plugin."""
        call = ContainedCall(hook_name, startup=True)
        caller = getattr(self.pm.hook, hook_name)
        outcome = call.run(caller, kwargs)
        results = dict(call.pairs(outcome, self._firstresult(caller)))
        order = {info.name: i for i, info in enumerate(self.ordered())}
        return sorted(results.items(), key=lambda kv: order.get(kv[0], len(order)))

    def hook_for(self, enabled: Iterable[str], hook_name: str) -> Any:
        """The subset hook caller of ``hook_name`` without plugins outside ``enabled``
        (the core is always included). Cached per (hook, disabled set). Calling it
        directly has plain pluggy semantics: the first raising implementation propagates."""
        disabled = frozenset(n for n, i in self.infos.items() if n not in enabled and not i.always_on and i.hooks_module is not None)
        key = (hook_name, disabled)
        caller = self._subset_cache.get(key)
        if caller is None:
            with self._lock:
                caller = self._subset_cache.get(key)
                if caller is None:
                    modules = [self.infos[n].hooks_module for n in disabled]
                    caller = self.pm.subset_hook_caller(hook_name, remove_plugins=modules)
                    self._subset_cache[key] = caller
        return caller

    def call_contained(self, enabled: Iterable[str], hook_name: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a runtime hook for the enabled plugins through pluggy, each implementation
        contained: one that raises is logged with its plugin's name and the others still
        answer; an answer that is not of the hookspec's declared return type is logged
        and dropped. Returns ``[(plugin, result), ...]`` in pluggy's call order (for a
        ``firstresult`` hook, at most the one answer)."""
        caller = self.hook_for(enabled, hook_name)
        call = self._contained_call(caller, hook_name)
        outcome = call.run(caller, kwargs)
        return call.pairs(outcome, self._firstresult(caller))

    def call_first(self, enabled: Iterable[str], hook_name: str, /, **kwargs: Any) -> tuple[str, Any] | None:
        """The first answer of a runtime hook as ``(plugin, result)``, or None.

        Contained as :meth:`call_contained`: an implementation that raises (or answers
        with the wrong type) is logged and the next one answers. For a ``firstresult``
        hook pluggy stops at that answer; for another hook all are asked."""
        pairs = self.call_contained(enabled, hook_name, **kwargs)
        return pairs[0] if pairs else None

    def _contained_call(self, caller: Any, hook_name: str) -> ContainedCall:
        checked = self._checks.get(hook_name)
        if checked is None:
            spec = caller.spec
            checked = self._checks[hook_name] = checker_for(spec.function if spec else None, hook_name)
        return ContainedCall(hook_name, check=checked[0], expected=checked[1])

    @staticmethod
    def _firstresult(caller: Any) -> bool:
        spec = caller.spec
        return bool(spec and spec.opts.get("firstresult"))
