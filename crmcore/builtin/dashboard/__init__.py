"""Built-in plugin ``dashboard``: the dashboard's core figures (open leads, open deals,
pipeline value, my tasks) as ``crm_dashboard_widgets`` contributions, like any plugin's
widgets. The dashboard page itself (``core.dashboard``) is the core's. Metadata only."""

from crmcore import __version__
from crmcore.contrib import Plugin

plugin = Plugin(name="dashboard", version=__version__, summary="The dashboard's figures: open leads and deals, pipeline value, my tasks.", requires=("core",), hooks="crmcore.builtin.dashboard.hooks")
