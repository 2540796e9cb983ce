"""Built-in plugin ``demo``: the demo data of ``crm run --demo`` (users, leads, deals,
activities, tasks; the seeder is :mod:`crmcore.builtin.demo.seed`). Metadata only."""

from crmcore import __version__
from crmcore.contrib import Plugin

plugin = Plugin(name="demo", version=__version__, summary="Demo data for `crm run --demo`: a living CRM to try.", requires=("core",), hooks="crmcore.builtin.demo.hooks")
