"""Built-in plugin ``csv``: CSV import and export of leads, contacts, companies and deals
(the API in :mod:`crmcore.api.csv_io`; the rules in :mod:`crmcore.entities.csvio`, which
``crm import`` uses too). Metadata only."""

from crmcore import __version__
from crmcore.contrib import Plugin

plugin = Plugin(name="csv", version=__version__, summary="CSV import and export of leads, contacts, companies and deals.", requires=("core",), hooks="crmcore.builtin.csv_io.hooks")
