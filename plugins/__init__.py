"""The bundled plugins (kanban, chat, scoring ...), importable as ``crm_plugins.<name>``.

Each registers through the ``crm.plugins`` entry point group in pyproject.toml, exactly as
a third-party plugin does, so they double as reference examples for plugin authors.
"""
