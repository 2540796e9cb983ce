"""The core's built-in plugins, registered like outside ones but always on.

This package is itself the plugin named ``core`` (the kernel's tables, sign-in, the
dashboard page, the shared entities with their API and pages); its sub-packages listed in
:data:`BUILTIN_PLUGINS` are the other built-ins (CSV, merge and privacy, demo data, the
dashboard's figures ...). Every built-in implementation is ``trylast`` (except demo data)
so an installed plugin can come before it."""

from marshmallow import Schema, fields, validate

from crmcore import __version__
from crmcore.contrib import Plugin


class CoreSettings(Schema):
    """``[settings.core]`` in a tenant file."""

    #: Agents see only the records they own or that nobody owns.
    agents_see_own_only = fields.Boolean(load_default=False)
    #: Region for phone numbers typed without a country code (ISO 3166 code, e.g. "DE").
    default_phone_region = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    #: Lead sources beyond the core's (form, manual, referral, email, sms, import, api) and
    #: those of the tenant's plugins (chat ...).
    extra_lead_sources = fields.List(fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,29}$")), load_default=list)
    #: Currency of new deals (ISO 4217).
    default_currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))


plugin = Plugin(name="core", version=__version__, summary="Tenants, users, sign-in, the dashboard page, CRM entities with their API and pages.", hooks="crmcore.builtin.hooks", settings=CoreSettings)


#: The built-in plugins' packages, registered in this order by ``PluginHost.discover()``,
#: always on. Adding a built-in is one line here (and its package in pyproject.toml).
BUILTIN_PLUGINS: list[str] = [
    "crmcore.builtin",  # core
    "crmcore.builtin.permissions",  # permissions: the core's role matrix
    "crmcore.builtin.csv_io",  # csv
    "crmcore.builtin.privacy",  # privacy
    "crmcore.builtin.demo",  # demo
    "crmcore.builtin.dashboard",  # dashboard
]
