"""Built-in plugin ``privacy``: merging duplicate records and privacy requests (export or
erase what is stored about a person), the API in :mod:`crmcore.api.merge` and
:mod:`crmcore.api.privacy` over :mod:`crmcore.entities.merge` / ``privacy``. Metadata only."""

from crmcore import __version__
from crmcore.contrib import Plugin

plugin = Plugin(name="privacy", version=__version__, summary="Merge duplicates; export or erase a person's data.", requires=("core",), hooks="crmcore.builtin.privacy.hooks")
