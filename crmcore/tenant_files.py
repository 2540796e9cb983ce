"""Editing a tenant file, config/tenants/<slug>.toml, from the admin pages.

The file stays the source of truth: an edit is made on the file's own text with tomlkit
(a round-tripping TOML library, so comments, order and layout survive), the new text is
validated by :func:`crmcore.config.load_tenant` exactly as a hand edit is, and only then
replaces the file (atomically: a temporary file renamed over it) and the config store
reloads, so the running configuration and the page never disagree with the file. Saves
of one file are serialised (a thread lock, and ``flock`` on ``.<slug>.toml.lock`` between
processes), and each checks the fingerprint of the text the page showed.

``{ "$env" = "NAME" }`` values are left as written; nothing here resolves them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import tomlkit
from tomlkit.exceptions import TOMLKitError

from crmcore.config import ConfigError, ConfigStore, Problem, load_tenant

#: Given as a setting's new value: remove the key from the file (its default applies).
REMOVE = object()

_write_lock = threading.Lock()


class StaleFile(Exception):
    """The file changed since the page was rendered (someone else saved or edited it)."""


class RefusedEdit(Exception):
    """The edited file would not validate; ``problems`` are load_tenant's, by key."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.key}: {p.reason}" for p in problems))


@dataclass(frozen=True)
class TenantFile:
    path: Path
    text: str
    document: tomlkit.TOMLDocument

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.text)

    def raw_settings(self, plugin: str) -> Mapping[str, Any]:
        """The plugin's table as written (plain Python values, ``$env`` tables kept)."""
        table = self.document.get("settings", {}).get(plugin)
        return table.unwrap() if hasattr(table, "unwrap") else (table or {})

    def plugins(self) -> list[str]:
        listed = self.document.get("plugins")
        return [str(p) for p in listed] if isinstance(listed, list) else []


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read(path: Path) -> TenantFile:
    """Read and parse the tenant file; raises OSError or tomlkit's ParseError."""
    text = Path(path).read_text(encoding="utf-8")
    return TenantFile(Path(path), text, tomlkit.parse(text))


def with_plugin(document: tomlkit.TOMLDocument, plugin: str, on: bool) -> None:
    """Add ``plugin`` to (or remove it from) the ``plugins`` array, in place."""
    listed = document.get("plugins")
    if not isinstance(listed, list):
        document["plugins"] = [plugin] if on else []
        return
    names = [str(p) for p in listed]
    if on and plugin not in names:
        listed.append(plugin)
    elif not on:
        for index in reversed([i for i, name in enumerate(names) if name == plugin]):
            del listed[index]


def with_settings(document: tomlkit.TOMLDocument, plugin: str, changes: Mapping[str, Any]) -> None:
    """Set (or, for :data:`REMOVE`, delete) keys of ``[settings.<plugin>]``, in place;
    the tables are created when needed and an emptied plugin table is dropped."""
    settings = document.get("settings")
    if settings is None:
        settings = tomlkit.table(is_super_table=True)
        document.add(tomlkit.nl())
        document["settings"] = settings
    table = settings.get(plugin)
    if table is None:
        if all(value is REMOVE for value in changes.values()):
            return
        table = tomlkit.table()
        settings[plugin] = table
    for key, value in changes.items():
        if value is REMOVE:
            if key in table:
                del table[key]
        else:
            table[key] = _inline(value)
    if len(table) == 0 and not table.trivia.comment:
        del settings[plugin]


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock between processes (web processes of one instance saving the
    same tenant file at once); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _inline(value: Any) -> Any:
    """Tables inside a setting's value written inline (``key = { "$env" = "NAME" }``), as
    people write them, not as a ``[settings.plugin.key]`` section of their own."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({k: _inline(v) for k, v in value.items()})
        return table
    if isinstance(value, list):
        return [_inline(v) for v in value]
    return value


def validate(text: str, slug: str, store: ConfigStore) -> list[Problem]:
    """load_tenant's problems with ``text`` as the tenant file (an empty list: valid)."""
    problems: list[Problem] = []
    try:
        tomlkit.parse(text)
    except TOMLKitError as exc:
        return [Problem(f"{slug}.toml", "", f"not valid TOML: {exc}")]
    with tempfile.TemporaryDirectory(prefix="crm-tenant-") as tmp:
        candidate = Path(tmp) / f"{slug}.toml"
        candidate.write_text(text, encoding="utf-8")
        env = os.environ if store.env is None else store.env
        load_tenant(candidate, store.plugins, env, problems)
    return [Problem(str(store.config_dir / "tenants" / f"{slug}.toml"), p.key, p.reason) for p in problems]


def save(store: ConfigStore, slug: str, edit: Any, expected: str | None) -> ConfigError | None:
    """Apply ``edit(document)`` to the tenant file, validate, write, reload.

    ``expected`` is the fingerprint the page was rendered with (None: do not check).
    Raises :class:`StaleFile` or :class:`RefusedEdit` (the file untouched). Returns the
    reload's error when the reload itself failed for another reason (crm.toml broken):
    the file is then saved and applies once that is fixed."""
    path = store.config_dir / "tenants" / f"{slug}.toml"
    with _write_lock, _file_lock(path.parent / f".{slug}.toml.lock"):
        current = read(path)
        if expected is not None and current.fingerprint != expected:
            raise StaleFile(str(path))
        edit(current.document)
        text = tomlkit.dumps(current.document)
        problems = validate(text, slug, store)
        if problems:
            raise RefusedEdit(problems)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{slug}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    try:
        store.reload()
    except ConfigError as exc:
        return exc
    return None
