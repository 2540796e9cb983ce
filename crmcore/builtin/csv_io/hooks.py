"""Hook implementations of the built-in ``csv`` plugin."""

from __future__ import annotations

import importlib

from crmcore import hookimpl

#: The modules of crmcore.api whose ``blp`` this plugin registers (the core's own scan
#: leaves them out: see crmcore.builtin.hooks.claimed_api_modules).
API_MODULES = ("csv_io",)


@hookimpl(trylast=True)
def crm_api_blueprints():
    return [importlib.import_module(f"crmcore.api.{name}").blp for name in API_MODULES]
