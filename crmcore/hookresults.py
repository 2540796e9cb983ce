"""What a runtime hook must return, read from its hookspec's return annotation.

A hookspec declares the shape of its answers where it is declared::

    @hookspec
    def crm_nav_items(tenant, user) -> list[NavItem]: ...

    @hookspec(firstresult=True)
    def crm_chat_assistant_reply(tenant, conversation, message, history) -> AssistantReply | None: ...

:func:`checker_for` turns the annotation into a check, once per hook, that the contained
call applies to every answer (so it must be cheap: a few ``isinstance``). Understood:
classes, ``list[X]``, ``tuple[X, ...]``, ``dict[K, V]``, ``X | Y`` (``Optional``) and
``Any``; a hook annotated ``-> None`` (or not at all) is not checked. The annotation is
evaluated in the hookspec's module, so the types it names must be imported there at run
time (not only under ``TYPE_CHECKING``); one that cannot be resolved is logged once and
the hook is not checked.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Callable
from typing import Any

log = logging.getLogger("crmcore.plugins")

#: result -> None if it fits, else a short description of what came instead
Check = Callable[[Any], "str | None"]


def describe(value: Any) -> str:
    """A value's type, as named in an error message ("a dict")."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def compile_check(annotation: Any) -> Check | None:
    """A check for values of ``annotation``, or None when anything goes."""
    if annotation is Any or annotation is None or annotation is type(None) or annotation is object:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        arms = [compile_check(arg) for arg in args if arg is not type(None)]
        allows_none = type(None) in args
        if any(arm is None for arm in arms):
            return None

        def union(value: Any) -> str | None:
            if value is None and allows_none:
                return None
            problems = [arm(value) for arm in arms]  # type: ignore[misc]
            return None if any(p is None for p in problems) else problems[0]

        return union
    if origin in (list, tuple, set, frozenset) or (origin is not None and isinstance(origin, type) and issubclass(origin, (list, tuple))):
        container = origin
        item_args = [a for a in args if a is not Ellipsis]
        item = compile_check(item_args[0]) if len(item_args) == 1 else None

        def sequence(value: Any) -> str | None:
            if not isinstance(value, container):
                return describe(value)
            if item is not None:
                for index, element in enumerate(value):
                    problem = item(element)
                    if problem is not None:
                        return f"{describe(value)} whose item {index} is {problem}"
            return None

        return sequence
    if origin is dict or annotation is dict:
        key = compile_check(args[0]) if args else None
        val = compile_check(args[1]) if len(args) > 1 else None

        def mapping(value: Any) -> str | None:
            if not isinstance(value, dict):
                return describe(value)
            for k, v in value.items():
                problem = key(k) if key is not None else None
                if problem is not None:
                    return f"a dict with key {k!r}, {problem}"
                problem = val(v) if val is not None else None
                if problem is not None:
                    return f"a dict whose {k!r} is {problem}"
            return None

        return mapping
    if origin is not None:  # another generic (type[X], Callable ...): check the container only
        annotation = origin
    if isinstance(annotation, type):
        expected = annotation

        def instance(value: Any) -> str | None:
            return None if isinstance(value, expected) else describe(value)

        return instance
    return None


def checker_for(spec_function: Callable[..., Any] | None, hook_name: str) -> tuple[Check | None, str]:
    """(check, expected as written) for a hookspec, from its return annotation."""
    if spec_function is None:
        return None, ""
    written = getattr(spec_function, "__annotations__", {}).get("return")
    if written is None:
        return None, ""
    annotation = written
    if isinstance(written, str):
        try:
            annotation = eval(written, getattr(spec_function, "__globals__", {}), {})  # the hookspec's own annotation
        except Exception as exc:
            log.warning(
                "hook %s: return annotation %r cannot be resolved (%s: %s); its results are not "
                "type-checked (import the types at run time in the hookspec module)",
                hook_name, written, type(exc).__name__, exc,
            )
            return None, ""
    text = written if isinstance(written, str) else getattr(annotation, "__name__", repr(annotation))
    return compile_check(annotation), text
