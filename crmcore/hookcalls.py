"""Hook calls through pluggy, with each implementation's failure kept to itself.

pluggy's own call stops at the first implementation that raises and hands the exception
to the caller, so one broken plugin would break every page. Calling the implementations
one by one instead (as the core once did) loses what pluggy gives: wrappers
(``wrapper=True`` / ``hookwrapper=True``), ``firstresult``, call monitoring and tracing.

So the core keeps pluggy's call and contains each implementation instead:
:class:`ContainingPluginManager` wraps every implementation's function when a plugin is
registered. Outside a contained call the wrapper only passes through (``crm.hook(...)``
keeps pluggy's semantics). Inside one (a :class:`ContainedCall` in a contextvar):

* an implementation that raises is logged with *its* plugin's name and answers None,
  which pluggy skips (a ``firstresult`` call moves on to the next implementation);
* an answer of the wrong type (see :mod:`crmcore.hookresults`) is logged and dropped;
* every answer is recorded with its plugin, so the caller gets ``(plugin, result)`` pairs;
* a wrapper that raises before its ``yield`` is left out of the call (as if it were not
  there); one that raises after it leaves the call with the results of the
  implementations inside it.

A startup call (:meth:`ContainedCall.startup`) turns an exception into a
:class:`PluginError` naming the plugin instead, which stops the app from being built.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pluggy

log = logging.getLogger("crmcore.plugins")

#: The contained call in progress in this context, or None (plain pluggy semantics).
_current: contextvars.ContextVar[ContainedCall | None] = contextvars.ContextVar("crm_contained_call", default=None)

#: Marks a function this module already wrapped (a plugin registered twice, re-verified).
_CONTAINED = "__crm_contained__"


class PluginError(RuntimeError):
    """A plugin is malformed or its startup hook failed (names the plugin)."""


@dataclass(slots=True)
class ContainedCall:
    """The state of one contained hook call: what was answered, by whom."""

    hook_name: str
    #: result -> None when it has the declared shape, else a description of what came
    check: Callable[[Any], str | None] | None = None
    expected: str = ""
    startup: bool = False
    #: (plugin, result) of each accepted answer, in pluggy's call order
    answers: list[tuple[str, Any]] = field(default_factory=list)
    #: plugins whose wrappers ran, outermost first
    wrappers: list[str] = field(default_factory=list)

    def run(self, caller: Any, kwargs: dict[str, Any]) -> Any:
        """Call ``caller`` (a pluggy hook caller) with this call in progress."""
        token = _current.set(self)
        try:
            return caller(**kwargs)
        finally:
            _current.reset(token)

    def failed(self, plugin: str, what: str, exc: Exception) -> None:
        """An implementation raised: a startup error, or logged and skipped."""
        if self.startup:
            raise PluginError(f"plugin {plugin!r}: hook {self.hook_name} failed: {exc}") from exc
        log.error("plugin %r: hook %s failed%s; its contribution is skipped", plugin, self.hook_name, what, exc_info=exc)

    def accept(self, plugin: str, result: Any) -> bool:
        """Whether ``result`` has the hook's declared shape (if not, it is logged)."""
        if self.check is None:
            return True
        problem = self.check(result)
        if problem is None:
            return True
        log.error("plugin %r: hook %s returned %s, expected %s; its contribution is skipped", plugin, self.hook_name, problem, self.expected)
        return False

    def pairs(self, outcome: Any, firstresult: bool) -> list[tuple[str, Any]]:
        """pluggy's outcome as (plugin, result) pairs.

        Without wrappers that is exactly what was recorded. A wrapper may filter, reorder
        or replace results: each result is then paired with the plugin that answered it,
        and one a wrapper made up with the outermost wrapper (and checked)."""
        if not self.wrappers:
            return self.answers[:1] if firstresult else list(self.answers)
        values = ([] if outcome is None else [outcome]) if firstresult else list(outcome or [])
        by_id: dict[int, list[str]] = {}
        for plugin, result in self.answers:
            by_id.setdefault(id(result), []).append(plugin)
        pairs = []
        for value in values:
            owners = by_id.get(id(value))
            if owners:
                pairs.append((owners.pop(0), value))
            elif self.accept(self.wrappers[0], value):
                pairs.append((self.wrappers[0], value))
        return pairs


def _contain_function(function: Callable[..., Any], plugin: str, hook_name: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def contained(*args: Any, **kwargs: Any) -> Any:
        call = _current.get()
        if call is None or call.hook_name != hook_name:
            return function(*args, **kwargs)
        token = _current.set(None)  # a hook this one calls is not part of this call
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            call.failed(plugin, "", exc)
            return None
        finally:
            _current.reset(token)
        if result is None or not call.accept(plugin, result):
            return None
        call.answers.append((plugin, result))
        return result

    setattr(contained, _CONTAINED, True)
    return contained


def _contain_wrapper(function: Callable[..., Generator[Any, Any, Any]], plugin: str, hook_name: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def contained(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        call = _current.get()
        if call is None or call.hook_name != hook_name:
            return (yield from function(*args, **kwargs))
        token = _current.set(None)
        try:
            inner = function(*args, **kwargs)
            next(inner)
        except Exception as exc:  # StopIteration too: a wrapper that did not yield
            call.failed(plugin, " (wrapper, before the call)", exc)
            inner = None
        finally:
            _current.reset(token)  # before yielding: the inner implementations are this call
        if inner is None:
            return (yield)  # left out: the inner outcome passes through unchanged
        call.wrappers.append(plugin)
        try:
            outcome = yield
        except BaseException as exc:
            # Only reachable for what is not contained (a startup error, KeyboardInterrupt):
            # the wrapper sees it as it would under plain pluggy.
            try:
                inner.throw(exc)
            except StopIteration as stop:
                return stop.value
            raise RuntimeError(f"plugin {plugin!r}: wrapper of {hook_name} has a second yield")
        token = _current.set(None)
        try:
            inner.send(outcome)
        except StopIteration as stop:
            return stop.value  # new-style: the wrapper's result; old-style: pluggy ignores it
        except Exception as exc:
            call.failed(plugin, " (wrapper, after the call; the inner results are kept)", exc)
            return outcome
        finally:
            _current.reset(token)
        inner.close()
        log.error("plugin %r: wrapper of hook %s yielded twice; the inner results are kept", plugin, hook_name)
        return outcome

    setattr(contained, _CONTAINED, True)
    return contained


def contain(impl: pluggy.HookImpl, hook_name: str) -> None:
    """Wrap ``impl``'s function so that contained calls contain it (idempotent)."""
    if getattr(impl.function, _CONTAINED, False):
        return
    if impl.wrapper or impl.hookwrapper:
        impl.function = _contain_wrapper(impl.function, impl.plugin_name, hook_name)  # type: ignore[misc]
    else:
        impl.function = _contain_function(impl.function, impl.plugin_name, hook_name)  # type: ignore[misc]


class ContainingPluginManager(pluggy.PluginManager):
    """pluggy's manager whose registered implementations can be contained (see module)."""

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None:
            for caller in self.get_hookcallers(plugin) or []:
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        contain(impl, caller.name)
        return registered
