"""The OpenAPI document as one tenant sees it: without the paths of plugins it has off.

The full document is built once per app, on first use (apispec's ``to_dict`` resolves
every schema: about a second), then cut per set of enabled plugins, each cut cached as
JSON text (tenants with the same plugins share one). Every operation carries
``x-crm-plugin`` (set by :class:`crmcore.api_docs.CrmSpecPlugin`), which is what the cut
reads. Tags and components that only removed operations used are left out too, so a
tenant learns nothing of a plugin it does not have; the cut stays valid OpenAPI 3
because only whole operations and unreferenced components go.
"""

from __future__ import annotations

import json
import threading
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
COMPONENTS = "#/components/"


class TenantDocuments:
    """The full OpenAPI document of an ``Api`` and its per-plugin-set cuts."""

    def __init__(self, api: Any):
        self.api = api
        self._full: dict[str, Any] | None = None
        self._cuts: dict[frozenset[str], str] = {}
        self._lock = threading.Lock()

    def full(self) -> dict[str, Any]:
        """The whole document (every plugin's paths); built once. Do not change it."""
        if self._full is None:
            with self._lock:
                if self._full is None:
                    # A JSON round trip: a plain copy that shares nothing with apispec.
                    self._full = json.loads(json.dumps(self.api.spec.to_dict()))
        return self._full

    def json_for(self, enabled: frozenset[str]) -> str:
        """The document for a tenant whose enabled plugins are ``enabled``, as JSON."""
        text = self._cuts.get(enabled)
        if text is None:
            text = json.dumps(cut(self.full(), enabled), indent=2)
            self._cuts[enabled] = text  # one per distinct plugin set: a few at most
        return text


def cut(doc: dict[str, Any], enabled: frozenset[str]) -> dict[str, Any]:
    """``doc`` without the operations of plugins outside ``enabled`` (an operation that
    names no plugin goes too), nor the tags and components only they used."""
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        kept = {key: value for key, value in item.items() if key not in METHODS or value.get("x-crm-plugin") in enabled}
        if any(key in METHODS for key in kept):
            paths[path] = kept
    out = dict(doc, paths=paths)
    used_tags = {tag for item in paths.values() for key, op in item.items() if key in METHODS for tag in op.get("tags", ())}
    if "tags" in doc:
        out["tags"] = [tag for tag in doc["tags"] if tag.get("name") in used_tags]
    if "components" in doc:
        out["components"] = _used_components(doc["components"], paths)
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _component(components: dict[str, Any], ref: str) -> Any:
    kind, _, name = ref[len(COMPONENTS):].partition("/")
    return components.get(kind, {}).get(name.replace("~1", "/").replace("~0", "~"))


def _used_components(components: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """The components reachable from ``paths`` (references followed through components);
    security schemes are kept whole (they are named, not referenced)."""
    reached: set[str] = set()
    _refs(paths, reached)
    pending = list(reached)
    while pending:
        found: set[str] = set()
        _refs(_component(components, pending.pop()), found)
        pending += sorted(found - reached)
        reached |= found
    out: dict[str, Any] = {}
    for kind, entries in components.items():
        if kind == "securitySchemes":
            out[kind] = entries
            continue
        kept = {name: value for name, value in entries.items() if f"{COMPONENTS}{kind}/{name.replace('~', '~0').replace('/', '~1')}" in reached}
        if kept:
            out[kind] = kept
    return out
