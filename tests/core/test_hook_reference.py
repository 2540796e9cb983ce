"""The meta-test (as Datasette's test_plugin_hooks_have_tests): every hook in
crmcore.hookspecs is documented in docs/hooks.md and has a ``test_hook_<name>`` test,
and docs/hooks.md documents no hook that does not exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from crmcore import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MD = ROOT / "docs" / "hooks.md"
TESTS = ROOT / "tests"


def declared_hooks() -> set[str]:
    return {
        name
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("crm_") and func.__module__ == hookspecs.__name__
    }


def documented_hooks() -> set[str]:
    return set(re.findall(r"^## (crm_\w+)\s*$", HOOKS_MD.read_text(), flags=re.MULTILINE))


def hooks_with_tests() -> set[str]:
    found: set[str] = set()
    for path in TESTS.rglob("*.py"):
        found.update(re.findall(r"^\s*def test_hook_(crm_\w+)\s*\(", path.read_text(), flags=re.MULTILINE))
    return found


def test_there_are_hooks():
    assert len(declared_hooks()) >= 10, declared_hooks()


def test_every_hook_is_documented():
    missing = sorted(declared_hooks() - documented_hooks())
    assert not missing, f"docs/hooks.md has no '## <name>' section for: {', '.join(missing)}"


def test_every_hook_has_a_test():
    missing = sorted(declared_hooks() - hooks_with_tests())
    assert not missing, "no `def test_hook_<name>` under tests/ for: " + ", ".join(missing)


def test_docs_document_only_existing_hooks():
    unknown = sorted(documented_hooks() - declared_hooks())
    assert not unknown, f"docs/hooks.md documents hooks that crmcore.hookspecs does not declare: {', '.join(unknown)}"


# --- hooks that bundled plugins declare for each other (plugins/<name>/hookspecs.py) ---


def plugin_hookspecs() -> dict[str, set[str]]:
    """``{plugin: {hook names}}`` for every bundled plugin that declares hooks."""
    import importlib

    found: dict[str, set[str]] = {}
    for spec_file in sorted((ROOT / "plugins").glob("*/hookspecs.py")):
        plugin = spec_file.parent.name
        module = importlib.import_module(f"crm_plugins.{plugin}.hookspecs")
        found[plugin] = {
            name
            for name, func in inspect.getmembers(module, inspect.isfunction)
            if name.startswith("crm_") and func.__module__ == module.__name__
        }
    return found


def test_plugin_hooks_are_named_documented_and_tested():
    tested = hooks_with_tests()
    for plugin, names in plugin_hookspecs().items():
        readme = (ROOT / "plugins" / plugin / "README.md").read_text()
        documented = set(re.findall(r"^## (crm_\w+)\s*$", readme, flags=re.MULTILINE))
        for name in names:
            # crm_<plugin> alone: the plugin's one main hook (the channels plugin's crm_channels)
            assert name == f"crm_{plugin}" or name.startswith(f"crm_{plugin}_"), f"{plugin} declares {name}: plugin hooks are crm_{plugin} or crm_{plugin}_*"
            assert name in documented, f"plugins/{plugin}/README.md has no '## {name}' section"
            assert name in tested, f"no `def test_hook_{name}` under tests/ for the {plugin} plugin's hook"
        # docs/hooks.md points plugin authors at each plugin's hooks.
        assert f"plugins/{plugin}/README.md" in HOOKS_MD.read_text(), f"docs/hooks.md does not link plugins/{plugin}/README.md"
