"""Contained hook calls through pluggy (crmcore.hookcalls) and result types (crmcore.hookresults).

Runtime hooks are called by pluggy itself, so wrappers, ``firstresult``, monitoring and
tracing work, while an implementation that raises, or answers with the wrong type, is
logged with its own plugin's name and the others still answer.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from crmcore import NavItem, hookimpl, hookspec
from crmcore.plugins import PluginError, PluginHost

from .test_hooks import nav_labels


@pytest.fixture
def app(sample_env):
    """The sample environment's app (alpha has the sample plugin on, beta does not)."""
    return sample_env.app


def errors_naming(caplog, plugin: str, hook: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and f"plugin {plugin!r}: hook {hook}" in r.getMessage()]


def signed_in(env, slug: str = "alpha") -> Any:
    client = env.client(slug)
    env.login(client, slug, role="admin")
    return client


# --------------------------------------------------------------------------- wrappers


def test_wrapper_implementation_sees_the_results_and_the_page_shows(sample_env, register_plugin):
    seen: list[list[str]] = []

    class Wrapping:
        @hookimpl(wrapper=True)
        def crm_nav_items(self, tenant, user):
            results = yield
            seen.append(sorted(item.label for items in results for item in items))
            return [*results, [NavItem(label="Added by a wrapper", endpoint="core.dashboard", order=90)]]

    register_plugin(Wrapping(), name="wrapping")
    page = signed_in(sample_env).get("/app/")
    assert page.status_code == 200
    assert nav_labels(page.get_data(as_text=True)) == ["Dashboard", "Sample", "Added by a wrapper"]
    assert seen and "Sample" in seen[-1]
    # The wrapper's own contribution is attributed to the wrapper's plugin.
    crm = sample_env.crm
    with sample_env.app.app_context():
        alpha = crm.tenant("alpha")
        pairs = crm.call(alpha, "crm_nav_items", tenant=alpha, user=None)
    assert ("wrapping", [NavItem(label="Added by a wrapper", endpoint="core.dashboard", order=90)]) in pairs
    assert "sample" in [plugin for plugin, _ in pairs]


def test_old_style_hookwrapper_works(sample_env, register_plugin):
    outcomes: list[Any] = []

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def crm_nav_items(self, tenant, user):
            outcome = yield
            outcomes.append(outcome.get_result())

    register_plugin(OldStyle(), name="oldstyle")
    page = signed_in(sample_env).get("/app/")
    assert page.status_code == 200 and "Sample" in nav_labels(page.get_data(as_text=True))
    assert outcomes and any(item.label == "Sample" for items in outcomes[-1] for item in items)


@pytest.mark.parametrize("when", ["before", "after"])
def test_raising_wrapper_is_contained(sample_env, register_plugin, caplog, when):
    class BrokenWrapper:
        @hookimpl(wrapper=True)
        def crm_nav_items(self, tenant, user):
            if when == "before":
                raise RuntimeError("wrapper bug before")
            yield
            raise RuntimeError("wrapper bug after")

    register_plugin(BrokenWrapper(), name="brokenwrapper")
    page = signed_in(sample_env).get("/app/")
    assert page.status_code == 200
    # Before its yield: as if it were not there; after: the inner results are kept.
    assert nav_labels(page.get_data(as_text=True)) == ["Dashboard", "Sample"]
    assert errors_naming(caplog, "brokenwrapper", "crm_nav_items")
    assert f"wrapper bug {when}" in caplog.text


# --------------------------------------------------------------------------- containment


def test_raising_implementation_is_logged_with_its_own_name_and_others_answer(sample_env, register_plugin, caplog):
    class Raising:
        @hookimpl(tryfirst=True)
        def crm_nav_items(self, tenant, user):
            raise RuntimeError("first one broke")

    class Fine:
        @hookimpl
        def crm_nav_items(self, tenant, user):
            return [NavItem(label="Fine", endpoint="core.dashboard", order=50)]

    register_plugin(Raising(), name="raising")
    register_plugin(Fine(), name="fine")
    page = signed_in(sample_env).get("/app/")
    assert page.status_code == 200
    assert nav_labels(page.get_data(as_text=True)) == ["Dashboard", "Fine", "Sample"]
    (message,) = set(errors_naming(caplog, "raising", "crm_nav_items"))
    assert "failed" in message
    assert not errors_naming(caplog, "fine", "crm_nav_items")


def test_direct_hook_call_keeps_pluggy_semantics(sample_env, register_plugin):
    class Raising:
        @hookimpl
        def crm_nav_items(self, tenant, user):
            raise RuntimeError("direct")

    register_plugin(Raising(), name="raising")
    crm = sample_env.crm
    with sample_env.app.app_context():
        alpha = crm.tenant("alpha")
        with pytest.raises(RuntimeError, match="direct"):
            crm.hook(alpha, "crm_nav_items")(tenant=alpha, user=None)


class FirstSpecs:
    @hookspec(firstresult=True)
    def crm_test_pick(self, tenant) -> str | None:
        """A firstresult hook declared by a test."""

    @hookspec
    def crm_test_numbers(self, tenant) -> list[int]:
        """A hook whose answers must be lists of ints."""

    @hookspec
    def crm_test_unresolvable(self, tenant) -> list[NotImportedHere]:  # noqa: F821 - on purpose
        """A hook whose return annotation cannot be resolved."""


def test_call_first_moves_on_past_a_raising_implementation(sample_env, register_plugin, caplog):
    host = sample_env.crm.host
    host.pm.add_hookspecs(FirstSpecs)
    calls: list[str] = []

    class Raises:
        @hookimpl(tryfirst=True)
        def crm_test_pick(self, tenant):
            calls.append("raises")
            raise RuntimeError("pick bug")

    class WrongType:
        @hookimpl
        def crm_test_pick(self, tenant):
            calls.append("wrongtype")
            return 42

    class Answers:
        @hookimpl(trylast=True)
        def crm_test_pick(self, tenant):
            calls.append("answers")
            return "the answer"

    class Never:
        @hookimpl(trylast=True)
        def crm_test_pick(self, tenant):
            calls.append("never")
            return "too late"

    register_plugin(Answers(), name="answers")  # pluggy asks the trylast ones first-registered first
    register_plugin(Never(), name="never")
    register_plugin(WrongType(), name="wrongtype")
    register_plugin(Raises(), name="raises")
    crm = sample_env.crm
    with sample_env.app.app_context():
        alpha = crm.tenant("alpha")
        assert crm.call_first(alpha, "crm_test_pick", tenant=alpha) == ("answers", "the answer")
        assert crm.call(alpha, "crm_test_pick", tenant=alpha) == [("answers", "the answer")]
    assert calls == ["raises", "wrongtype", "answers"] * 2  # firstresult: "never" is not asked
    assert "pick bug" in caplog.text
    (wrong,) = set(errors_naming(caplog, "wrongtype", "crm_test_pick"))
    assert "returned an int, expected str | None" in wrong


def test_monitoring_and_tracing_see_runtime_calls(sample_env):
    host = sample_env.crm.host
    called: list[tuple[str, list[str]]] = []
    undo = host.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: called.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: None,
    )
    try:
        page = signed_in(sample_env).get("/app/")
    finally:
        undo()
    assert page.status_code == 200
    names = {name for name, _ in called}
    assert {"crm_nav_items", "crm_template_context", "crm_dashboard_widgets"} <= names
    nav_plugins = next(plugins for name, plugins in called if name == "crm_nav_items")
    assert "sample" in nav_plugins

    traced: list[str] = []
    host.pm.trace.root.setwriter(traced.append)
    undo = host.pm.enable_tracing()
    try:
        signed_in(sample_env).get("/app/")
    finally:
        undo()
        host.pm.trace.root.setwriter(None)
    assert any("crm_nav_items" in line for line in traced)


# --------------------------------------------------------------------------- result types


def test_wrong_result_type_is_dropped_with_an_error_naming_the_plugin(sample_env, register_plugin, caplog):
    class Loose:
        @hookimpl
        def crm_nav_items(self, tenant, user):
            return [{"label": "A dict", "endpoint": "core.dashboard"}]

        @hookimpl
        def crm_template_context(self, tenant, user):
            return ["not", "a", "dict"]

        @hookimpl
        def crm_dashboard_widgets(self, tenant, user):
            return "a widget?"

    register_plugin(Loose(), name="loose")
    client = signed_in(sample_env)
    page = client.get("/app/")
    assert page.status_code == 200
    assert nav_labels(page.get_data(as_text=True)) == ["Dashboard", "Sample"]  # the others still answer
    (nav,) = set(errors_naming(caplog, "loose", "crm_nav_items"))
    assert "returned a list whose item 0 is a dict, expected list[NavItem]" in nav
    (context,) = set(errors_naming(caplog, "loose", "crm_template_context"))
    assert "returned a list, expected dict[str, Any]" in context
    (widgets,) = set(errors_naming(caplog, "loose", "crm_dashboard_widgets"))
    assert "returned a str, expected list[DashboardWidget]" in widgets


def test_template_context_keys_must_be_strings(sample_env, register_plugin, caplog):
    class IntKeys:
        @hookimpl
        def crm_template_context(self, tenant, user):
            return {1: "one"}

    register_plugin(IntKeys(), name="intkeys")
    assert signed_in(sample_env).get("/app/").status_code == 200
    assert "with key 1, an int" in " ".join(errors_naming(caplog, "intkeys", "crm_template_context"))


def test_plugin_declared_hooks_are_checked_from_their_annotation(sample_env, register_plugin, caplog):
    host = sample_env.crm.host
    host.pm.add_hookspecs(FirstSpecs)

    class Numbers:
        @hookimpl
        def crm_test_numbers(self, tenant):
            return [1, 2]

        @hookimpl
        def crm_test_unresolvable(self, tenant):
            return ["anything"]

    class Strings:
        @hookimpl
        def crm_test_numbers(self, tenant):
            return ["1"]

    register_plugin(Numbers(), name="numbers")
    register_plugin(Strings(), name="strings")
    crm = sample_env.crm
    with sample_env.app.app_context():
        alpha = crm.tenant("alpha")
        assert crm.call(alpha, "crm_test_numbers", tenant=alpha) == [("numbers", [1, 2])]
        # Not checked (and said so once) rather than failing every call.
        assert crm.call(alpha, "crm_test_unresolvable", tenant=alpha) == [("numbers", ["anything"])]
    assert "returned a list whose item 0 is a str, expected list[int]" in " ".join(errors_naming(caplog, "strings", "crm_test_numbers"))
    assert "crm_test_unresolvable: return annotation" in caplog.text


def test_bundled_plugin_hookspecs_declare_resolvable_return_types():
    from crmcore.hookresults import checker_for

    host = PluginHost()
    host.discover()
    runtime_hooks = ("crm_nav_items", "crm_dashboard_widgets", "crm_record_panels", "crm_list_columns", "crm_template_context")
    for name in (*runtime_hooks, "crm_scoring_factors", "crm_kanban_card_badges", "crm_chat_assistant_reply"):
        check, expected = checker_for(getattr(host.pm.hook, name).spec.function, name)
        assert check is not None and expected, name


# --------------------------------------------------------------------------- startup hooks


def test_startup_hook_wrapper_works_and_a_raising_one_is_a_plugin_error(crm_env):
    host = PluginHost()
    host.discover(entry_points=False)
    seen: list[Any] = []

    class Wrapping:
        @hookimpl(wrapper=True)
        def crm_migrations(self):
            results = yield
            seen.append(len(results))
            return results

    host.pm.register(Wrapping(), name="wrapping")
    assert [plugin for plugin, _ in host.call_startup("crm_migrations")] == ["core"]
    assert seen == [1]

    class Broken:
        @hookimpl
        def crm_migrations(self):
            raise RuntimeError("bad migrations")

    host.pm.register(Broken(), name="broken")
    with pytest.raises(PluginError, match="plugin 'broken': hook crm_migrations failed: bad migrations"):
        host.call_startup("crm_migrations")
