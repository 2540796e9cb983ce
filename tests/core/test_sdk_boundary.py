"""The public SDK is the only door into the core: a bundled plugin imports ``crmcore.sdk``
and nothing else of the core, and of another plugin only its contract module
(``crm_plugins.<other>.contrib``). Outside plugins get the same promise, so the bundled
ones must not rely on more."""

from __future__ import annotations

import ast
from pathlib import Path

import crmcore.sdk as sdk

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_CORE = {"crmcore.sdk"}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in a file; ``import x`` has no names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names)
    return found


def boundary_violations(plugins_dir: Path) -> list[str]:
    """Every import in ``plugins_dir`` that reaches past the SDK or another plugin's contract."""
    bad = []
    for path in sorted(plugins_dir.rglob("*.py")):
        own = path.relative_to(plugins_dir).parts[0]
        for line, module, names in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module == "crmcore":
                if names != ["sdk"]:
                    bad.append(f"{where}: from crmcore import {', '.join(names) or '(module)'}")
            elif module.startswith("crmcore.") and module not in ALLOWED_CORE:
                bad.append(f"{where}: {module}")
            elif module.startswith("crm_plugins."):
                other = module.split(".")[1]
                if other != own and module != f"crm_plugins.{other}.contrib":
                    bad.append(f"{where}: {module} (another plugin's internals; only its .contrib)")
    return bad


def test_bundled_plugins_import_only_the_sdk():
    assert boundary_violations(ROOT / "plugins") == []


def test_the_sample_plugin_imports_only_the_sdk():
    assert boundary_violations(ROOT / "tests" / "sample_plugin") == []


def test_the_checker_catches_a_private_import(tmp_path):
    plugin = tmp_path / "sneaky"
    plugin.mkdir()
    (plugin / "hooks.py").write_text("from crmcore.api.common import _decode\nfrom crmcore import db\nimport crmcore.app\nfrom crm_plugins.chat import service\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = boundary_violations(tmp_path)
    finally:
        ROOT = saved
    assert len(found) == 4, found


def test_every_sdk_name_exists_and_is_documented():
    guide = (ROOT / "docs" / "plugin-guide.md").read_text()
    missing = [name for name in sdk.__all__ if not hasattr(sdk, name)]
    assert missing == []
    undocumented = [name for name in sdk.__all__ if f"`{name}`" not in guide and f"`{name}(" not in guide]
    assert undocumented == [], f"docs/plugin-guide.md does not document: {undocumented}"
